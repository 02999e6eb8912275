"""The phase ends with their resolution (analysis.ends) against values computed by hand, and the
three_phases, plateau_law and hallucination rules against a right model and the wrong models
each must reject, on synthetic run directories."""

import json
import math
import pathlib

import numpy as np
import pytest

from bioknow.analysis import ends as E
from bioknow.analysis import runs as R
from bioknow.claims import rules

BASELINE = 2.0
EVERY = 50


def _run(path: pathlib.Path, seed: int, ratios, n: int = 800, **series) -> dict:
  """A finished pretraining run evaluated every EVERY steps, whose attribute loss / baseline is
  `ratios`; each keyword is another recorded series (a list as long as `ratios`, or one
  value for every evaluation)."""
  records = []
  for i, x in enumerate(ratios):
    record = {"step": EVERY * i, "attribute_loss": x * BASELINE, "no_knowledge_baseline": BASELINE}
    for key, values in series.items():
      record[key] = values[i] if isinstance(values, (list, np.ndarray)) else values
    records.append(record)
  path.mkdir(parents=True)
  leaves = {"data.n_individuals": n, "data.seed": seed, "train.seed": seed, "optimizer.lr": 8e-3}
  (path / "config.json").write_text(json.dumps({"leaves": leaves}))
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  summary = records[-1] | {"experiment": "pretrain", "wall_seconds": 1.0}
  (path / "summary.json").write_text(json.dumps(summary))
  return R.load_run(path)


def _phases(first: int, plateau: int, final: float, after: int = 6, start: float = 3.0):
  """loss / baseline per evaluation: a straight fall from `start` to 1 over `first`
  evaluations, `plateau` evaluations at 1, then a straight fall to `final` over 4
  evaluations and `after` - 4 more at it."""
  fall = list(np.linspace(start, 1.0, first + 1))[:-1]
  drop = list(np.linspace(1.0, final, 5))[1:]
  return np.array(fall + [1.0] * plateau + drop + [final] * max(after - 4, 0))


# analysis.ends ---------------------------------------------------------------------------------


def test_a_crossing_is_interpolated_and_carries_its_resolution():
  # 1.00 at step 100, 0.90 at step 150: 0.99 is crossed a tenth of the way, at step 105. The
  # slope is 0.1 / 50 steps, so the noise (0.005) spans 2.5 steps; half the spacing (25) is
  # the floor of the resolution.
  steps, ratio = np.array([0, 50, 100, 150, 200]), np.array([1.2, 1.0, 1.0, 0.9, 0.8])
  end = E.crossing(steps, ratio, 0.99)
  assert end == E.End(pytest.approx(105.0), pytest.approx(25.0), True)
  # 1.0 -> 0.985 over 50 steps: noise / slope = 16.7 steps, under half the spacing (25). A
  # slow crossing, 1.0 -> 0.9975 over 50 steps: noise / slope = 100 steps, capped at the
  # spacing.
  shallow = E.crossing(steps, np.array([1.2, 1.0, 1.0, 0.985, 0.98]), 0.99)
  assert shallow.step == pytest.approx(100 + 50 * 0.01 / 0.015)
  assert shallow.resolution == pytest.approx(25.0)
  slow = E.crossing(np.array([0, 50, 100]), np.array([1.0, 0.9975, 0.98]), 0.999)
  assert slow.resolution == pytest.approx(50.0)
  # Never crossed: the last step, not reached; crossed once then back: not confirmed.
  assert E.crossing(steps, np.ones(5), 0.99) == E.End(200.0, 0.0, False)
  assert not E.crossing(steps, np.array([1.2, 0.9, 1.0, 1.0, 1.0]), 0.99).reached


def test_ties_are_differences_within_resolution_or_seed_spread():
  a = E.over_seeds([E.End(100.0, 10.0, True), E.End(110.0, 10.0, True)])
  assert (a.mean, a.low, a.high, a.resolution, a.n, a.reached) == (105.0, 100.0, 110.0, 10.0, 2, 2)
  assert a.text() == "105 +- 10 (100-110, 2 seeds)"
  close = E.over_seeds([E.End(125.0, 10.0, True)])
  far = E.over_seeds([E.End(126.0, 10.0, True)])
  assert E.compare(a, close) == 0  # 20 apart, margins 10 + 10
  assert E.compare(a, far) == -1 and E.compare(far, a) == 1
  spread_out = E.over_seeds([E.End(50.0, 1.0, True), E.End(250.0, 1.0, True)])
  assert E.compare(spread_out, E.over_seeds([E.End(240.0, 1.0, True)])) == 0  # within the spread
  assert E.tied_with_first({"x": a, "y": close, "z": far}) == ["x", "y"]


# three_phases ----------------------------------------------------------------------------------


def test_three_phases_holds_for_a_flat_plateau_longer_than_the_first_phase(tmp_path):
  runs = [_run(tmp_path / f"a{s}", s, _phases(4, 12 + s, 0.3)) for s in range(3)]
  score = rules.three_phases(runs)
  assert score.verdict == rules.HOLDS, score.why
  assert score.values["first_phase"]["min"] == pytest.approx(4 * EVERY - EVERY * 0.05 / 0.5)
  assert score.values["final_over_baseline"]["max"] == pytest.approx(0.3)


def test_three_phases_rejects_no_learning(tmp_path):
  runs = [_run(tmp_path / f"n{s}", s, _phases(4, 20, 1.0)) for s in range(3)]
  assert rules.three_phases(runs).verdict == rules.NOT_SHOWN


def test_three_phases_rejects_knowledge_with_no_plateau(tmp_path):
  runs = [_run(tmp_path / f"k{s}", s, _phases(4, 0, 0.3)) for s in range(3)]
  assert rules.three_phases(runs).verdict == rules.CONTRADICTED


def test_three_phases_rejects_a_slow_slope_instead_of_a_plateau(tmp_path):
  # From 1.3 to 0.99 in a straight line over 1,000 steps: it passes the floor, never rests on it.
  slope = np.concatenate([np.linspace(3, 1.31, 4), np.linspace(1.3, 0.99, 20), [0.5] * 6])
  runs = [_run(tmp_path / f"s{s}", s, slope) for s in range(3)]
  assert rules.three_phases(runs).verdict != rules.HOLDS


def test_three_phases_rejects_a_plateau_that_leaves_the_floor(tmp_path):
  # Down to the floor, then up to 1.1 x the floor and back before knowledge: no plateau.
  bump = np.concatenate([np.linspace(3, 1.0, 5), [1.0, 1.05, 1.1, 1.1, 1.05] * 2, [0.3] * 6])
  runs = [_run(tmp_path / f"b{s}", s, bump) for s in range(3)]
  score = rules.three_phases(runs)
  assert score.verdict != rules.HOLDS
  assert score.values["plateau_flat"] == [False] * 3


def test_three_phases_rejects_a_plateau_within_the_first_phases_resolution(tmp_path):
  runs = [_run(tmp_path / f"r{s}", s, _phases(8, 8, 0.3)) for s in range(3)]
  assert rules.three_phases(runs).verdict != rules.HOLDS


# plateau_law -----------------------------------------------------------------------------------


def _law(tmp_path, name: str, end_by_n, seeds: int = 3) -> list[dict]:
  """Runs whose plateau ends at end_by_n(n) evaluations (plus one per seed)."""
  return [
    _run(tmp_path / f"{name}{n}_{s}", s, _phases(3, max(end_by_n(n) + s - 3, 0), 0.3), n)
    for n in (100, 200, 400, 800, 1600)
    for s in range(seeds)
  ]


def test_plateau_law_holds_for_a_near_linear_law_over_16x(tmp_path):
  score = rules.plateau_law(_law(tmp_path, "l", lambda n: round(0.3 * n**0.9)))
  assert score.verdict == rules.HOLDS, score.why
  assert 0.8 < score.values["k"] < 1.0
  assert score.values["populations"] == [100, 200, 400, 800, 1600]


def test_plateau_law_rejects_a_plateau_that_does_not_grow(tmp_path):
  score = rules.plateau_law(_law(tmp_path, "f", lambda n: 12))
  assert score.verdict == rules.NOT_SHOWN


def test_plateau_law_rejects_a_quadratic_law(tmp_path):
  score = rules.plateau_law(_law(tmp_path, "q", lambda n: round(4e-4 * n**2) + 4))
  assert score.verdict in (rules.CONTRADICTED, rules.WEAK)
  assert score.values["k"] > 1.1


def test_plateau_law_names_and_drops_populations_it_cannot_resolve(tmp_path):
  # The two smallest populations end their plateau with their first phase: 3 left, over 4x.
  runs = _law(tmp_path, "d", lambda n: 3 if n <= 200 else round(0.3 * n**0.9))
  score = rules.plateau_law(runs)
  assert score.verdict == rules.WEAK
  assert set(score.values["left_out"]) == {"100", "200"}
  assert "N=100 left out: 2 of 3 end it with their first phase" in score.measured
  assert "3 resolved populations over 4x" in score.why


# hallucination ---------------------------------------------------------------------------------


def _heldout(tmp_path, name: str, heldout, seeds: int = 3, auroc=0.8, entropy_gap=0.3) -> list:
  """Runs with the phases of _phases(4, 12, 0.3) and held-out loss / baseline `heldout`."""
  ratios = _phases(4, 12, 0.3)
  return [
    _run(
      tmp_path / f"{name}{s}",
      s,
      ratios,
      unseen_attribute_loss=[h * BASELINE for h in heldout(ratios)],
      hallucination_auroc=auroc,
      seen_entropy=1.0,
      unseen_entropy=1.0 + entropy_gap,
      seen_max_prob=0.6,
      unseen_max_prob=0.6 - entropy_gap / 3,
    )
    for s in range(seeds)
  ]


def _mirror(ratios):
  """Held-out loss on the floor while the seen loss is, rising as it falls below."""
  return [max(x, 1.0) if x >= 1 else 1 + 2 * (1 - x) for x in ratios]


def test_hallucination_holds_when_heldout_loss_leaves_the_floor_with_knowledge(tmp_path):
  score = rules.hallucination(_heldout(tmp_path, "h", _mirror))
  assert score.verdict == rules.HOLDS, score.why
  assert score.values["heldout_over_baseline"]["mean"] == pytest.approx(2.4)
  assert score.values["heldout_plateau_distance_from_floor"]["max"] == pytest.approx(0.0)


def test_hallucination_rejects_no_learning(tmp_path):
  runs = _heldout(tmp_path, "n", lambda r: [max(x, 1.0) for x in r])
  assert rules.hallucination(runs).verdict == rules.NOT_SHOWN


def test_hallucination_rejects_heldout_loss_above_the_floor_from_the_start(tmp_path):
  runs = _heldout(tmp_path, "a", lambda r: [max(x, 1.3) for x in _mirror(r)])
  score = rules.hallucination(runs)
  assert score.verdict == rules.WEAK
  assert score.values["heldout_plateau_distance_from_floor"]["min"] == pytest.approx(0.3)


def test_hallucination_rejects_a_model_as_confident_on_unseen_people(tmp_path):
  runs = _heldout(tmp_path, "c", _mirror, auroc=0.5, entropy_gap=0.0)
  assert rules.hallucination(runs).verdict == rules.WEAK


def test_hallucination_rejects_a_model_that_generalises_to_unseen_people(tmp_path):
  runs = _heldout(tmp_path, "g", lambda r: [min(x, 1.0) if x < 1 else x for x in r])
  assert rules.hallucination(runs).verdict == rules.CONTRADICTED


def test_hallucination_reads_each_attribute_against_its_own_floor(tmp_path):
  """birth_date's floor is 3, the others' 2; held-out loss 1.5x its floor in every attribute
  but birth_date in seed 1 (1.02x), so 5 of 6."""
  runs = _heldout(tmp_path, "b", _mirror)
  for run, bd in zip(runs, (1.5, 1.02, 1.5)):
    for record in run["records"]:
      for a in ("birth_date", "birth_city", "university", "major", "company", "current_city"):
        floor = 3.0 if a == "birth_date" else BASELINE
        record[f"no_knowledge_baseline/{a}"] = floor
        record[f"unseen_attribute_loss/{a}"] = (bd if a == "birth_date" else 1.5) * floor
  score = rules.hallucination(runs)
  assert score.values["heldout_over_baseline_by_attribute"]["birth_date"]["min"] == pytest.approx(
    1.02
  )
  assert score.measured.endswith("by attribute: 5 of 6 (birth_date not)")
  assert math.isfinite(score.values["auroc"]["mean"])
