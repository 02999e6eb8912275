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
from bioknow.claims import rules, rules_phases

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
  score = rules_phases.three_phases(runs)
  assert score.verdict == rules.HOLDS, score.why
  assert score.values["first_phase"]["min"] == pytest.approx(4 * EVERY - EVERY * 0.05 / 0.5)
  assert score.values["final_over_baseline"]["max"] == pytest.approx(0.3)


def test_three_phases_rejects_no_learning(tmp_path):
  runs = [_run(tmp_path / f"n{s}", s, _phases(4, 20, 1.0)) for s in range(3)]
  assert rules_phases.three_phases(runs).verdict == rules.NOT_SHOWN


def test_three_phases_rejects_knowledge_with_no_plateau(tmp_path):
  runs = [_run(tmp_path / f"k{s}", s, _phases(4, 0, 0.3)) for s in range(3)]
  assert rules_phases.three_phases(runs).verdict == rules.CONTRADICTED


def test_three_phases_rejects_a_slow_slope_instead_of_a_plateau(tmp_path):
  # From 1.3 to 0.99 in a straight line over 1,000 steps: it passes the floor, never rests on it.
  slope = np.concatenate([np.linspace(3, 1.31, 4), np.linspace(1.3, 0.99, 20), [0.5] * 6])
  runs = [_run(tmp_path / f"s{s}", s, slope) for s in range(3)]
  assert rules_phases.three_phases(runs).verdict != rules.HOLDS


def test_three_phases_rejects_a_plateau_that_leaves_the_floor(tmp_path):
  # Down to the floor, then up to 1.1 x the floor and back before knowledge: no plateau.
  bump = np.concatenate([np.linspace(3, 1.0, 5), [1.0, 1.05, 1.1, 1.1, 1.05] * 2, [0.3] * 6])
  runs = [_run(tmp_path / f"b{s}", s, bump) for s in range(3)]
  score = rules_phases.three_phases(runs)
  assert score.verdict != rules.HOLDS
  assert score.values["plateau_flat"] == [False] * 3


def test_three_phases_rejects_a_plateau_within_the_first_phases_resolution(tmp_path):
  runs = [_run(tmp_path / f"r{s}", s, _phases(8, 8, 0.3)) for s in range(3)]
  assert rules_phases.three_phases(runs).verdict != rules.HOLDS


def test_three_phases_rejects_a_steady_fall_through_the_floor_after_a_short_first_phase(
  tmp_path,
):
  # Gradual learning: first phase over by step 200, then one straight fall from 1.05 x the
  # floor through it, at 0.002 a step, down to 0.8: inside the band until the plateau "ends",
  # and knowledge leaves the floor no faster than the loss fell on it (1x, under KINK).
  slope = np.concatenate([np.linspace(3, 1.1, 4), np.linspace(1.05, 0.8, 51)])
  runs = [_run(tmp_path / f"t{s}", s, slope) for s in range(3)]
  score = rules_phases.three_phases(runs)
  assert score.verdict == rules.NOT_SHOWN, score.why
  assert score.values["plateau_flat"] == [False] * 3
  assert score.values["knowledge_over_plateau_fall"]["mean"] == pytest.approx(1.0, rel=0.05)
  assert "no plateau (out of the band, or knowledge under 4x its fall)" in score.why


def test_three_phases_takes_a_plateau_whose_level_settles_within_the_band(tmp_path):
  # A level that settles from 1.04 to 1.00 over the plateau (a value prior still fitted),
  # then knowledge falling from the floor in 4 evaluations: a plateau, then a sharp fall.
  settle = np.concatenate([np.linspace(3, 1.06, 4), np.linspace(1.04, 1.0, 24), [0.9, 0.6]])
  runs = [_run(tmp_path / f"k{s}", s, np.concatenate([settle, [0.3] * 4])) for s in range(3)]
  score = rules_phases.three_phases(runs)
  assert score.verdict == rules.HOLDS, score.why
  assert score.values["knowledge_over_plateau_fall"]["min"] > rules_phases.KINK


def test_three_phases_rejects_a_plateau_tied_with_the_first_phase_as_contradicted(tmp_path):
  # A 363-step plateau beside a 390-step first phase: the plateau is there (beyond both
  # resolutions), its comparison with the first phase a tie: neither holds nor contradicted.
  runs = [_run(tmp_path / f"e{s}", s, _phases(8, 8, 0.3)) for s in range(3)]
  score = rules_phases.three_phases(runs)
  assert score.values["first_phase"]["mean"] == pytest.approx(390.0)
  assert score.values["plateau"]["mean"] == pytest.approx(363, abs=1)
  assert score.verdict == rules.NOT_SHOWN, score.why
  assert "plateau not longer than the first phase beyond resolution in 3" in score.why


def test_three_phases_rejects_a_resolvable_plateau_shorter_than_the_first_phase_as_contradicted(
  tmp_path,
):
  # A first phase of 585 steps, then a flat plateau of 168: shorter, but a plateau.
  runs = [_run(tmp_path / f"o{s}", s, _phases(12, 4, 0.3)) for s in range(3)]
  score = rules_phases.three_phases(runs)
  assert score.values["plateau"]["mean"] == pytest.approx(168, abs=1)
  assert score.verdict == rules.NOT_SHOWN, score.why


# plateau_law -----------------------------------------------------------------------------------

POPULATIONS = (100, 200, 400, 800, 1600)


def _law(tmp_path, name: str, end_by_n, seeds: int = 3, populations=POPULATIONS) -> list[dict]:
  """Runs whose plateau ends at end_by_n(n) evaluations (plus one per seed)."""
  return [
    _run(tmp_path / f"{name}{n}_{s}", s, _phases(3, max(end_by_n(n) + s - 3, 0), 0.3), n)
    for n in populations
    for s in range(seeds)
  ]


def test_plateau_law_holds_for_a_near_linear_law_over_16x(tmp_path):
  score = rules_phases.plateau_law(_law(tmp_path, "l", lambda n: round(0.3 * n**0.9)))
  assert score.verdict == rules.HOLDS, score.why
  assert 0.8 < score.values["k"] < 1.0
  assert 0.5 <= score.values["k_low"] and score.values["k_high"] <= 1.1  # the whole interval
  assert score.values["populations"] == [100, 200, 400, 800, 1600]


def test_plateau_law_rejects_a_plateau_that_does_not_grow(tmp_path):
  # The same plateau at every population, over 5 populations spanning 16x: k's interval lies
  # around 0, wholly below 0.5, on a grid wide enough to say so.
  score = rules_phases.plateau_law(_law(tmp_path, "f", lambda n: 12))
  assert score.values["k_high"] < 0.5
  assert score.verdict == rules.CONTRADICTED, score.why


def test_plateau_law_rejects_a_quadratic_law(tmp_path):
  score = rules_phases.plateau_law(_law(tmp_path, "q", lambda n: round(4e-4 * n**2) + 4))
  assert score.verdict == rules.CONTRADICTED, score.why
  assert score.values["k_low"] > 1.1


def test_plateau_law_rejects_a_superlinear_interval_on_a_small_grid_as_contradicted(tmp_path):
  # The quadratic law over 4 populations spanning 8x: clearly super-linear, but on a grid too
  # small to say the paper's law is wrong.
  quadratic = lambda n: round(4e-4 * n**2) + 4
  score = rules_phases.plateau_law(_law(tmp_path, "s", quadratic, populations=POPULATIONS[:4]))
  assert score.values["k_low"] > 1.1
  assert score.verdict == rules.NOT_SHOWN, score.why
  assert "4 resolved populations over 8x (need 5, 16x)" in score.why


def test_plateau_law_rejects_an_interval_reaching_outside_the_range_as_holding(tmp_path):
  # A linear law whose seeds scatter 3x either way: k near 1, its interval far wider than
  # 0.5-1.1.
  runs = [
    _run(tmp_path / f"w{n}_{s}", s, _phases(3, round(0.1 * n * 3.0 ** (s - 1)), 0.3), n)
    for n in POPULATIONS
    for s in range(3)
  ]
  score = rules_phases.plateau_law(runs)
  assert 0.5 <= score.values["k"] <= 1.1
  assert score.values["k_low"] < 0.5 or score.values["k_high"] > 1.1
  assert score.verdict == rules.WEAK, score.why
  assert "reaches outside" in score.why


def test_plateau_law_names_and_drops_populations_it_cannot_resolve(tmp_path):
  # The two smallest populations end their plateau with their first phase: 3 left, over 4x,
  # too small a grid to read the exponent from even where it is the paper's (0.9).
  runs = _law(tmp_path, "d", lambda n: 3 if n <= 200 else round(0.3 * n**0.9))
  score = rules_phases.plateau_law(runs)
  assert score.verdict == rules.NOT_SHOWN
  assert set(score.values["left_out"]) == {"100", "200"}
  assert "N=100 left out: 2 of 3 end it with their first phase" in score.measured
  assert "3 resolved populations over 4x" in score.why


# hallucination ---------------------------------------------------------------------------------


def _heldout(
  tmp_path, name: str, heldout, seeds: int = 3, auroc=0.8, entropy_gap=0.3, max_prob_gap=None
) -> list:
  """Runs with the phases of _phases(4, 12, 0.3) and held-out loss / baseline `heldout`; the
  entropy and top-probability gaps between held-out and seen people open as knowledge does
  (none until the plateau's end, the full gap at the end)."""
  ratios = _phases(4, 12, 0.3)
  known = [max(1.0 - x, 0.0) / 0.7 for x in ratios]
  max_prob_gap = entropy_gap / 3 if max_prob_gap is None else max_prob_gap
  return [
    _run(
      tmp_path / f"{name}{s}",
      s,
      ratios,
      unseen_attribute_loss=[h * BASELINE for h in heldout(ratios)],
      hallucination_auroc=auroc,
      seen_entropy=1.0,
      unseen_entropy=[1.0 + entropy_gap * k for k in known],
      seen_max_prob=0.6,
      unseen_max_prob=[0.6 - max_prob_gap * k for k in known],
    )
    for s in range(seeds)
  ]


def _mirror(ratios):
  """Held-out loss on the floor while the seen loss is, rising as it falls below."""
  return [max(x, 1.0) if x >= 1 else 1 + 2 * (1 - x) for x in ratios]


def test_hallucination_holds_when_heldout_loss_leaves_the_floor_with_knowledge(tmp_path):
  score = rules_phases.hallucination(_heldout(tmp_path, "h", _mirror))
  assert score.verdict == rules.HOLDS, score.why
  assert score.values["heldout_over_baseline"]["mean"] == pytest.approx(2.4)
  assert score.values["heldout_plateau_distance_from_floor"]["max"] == pytest.approx(0.0)


def test_hallucination_rejects_no_learning(tmp_path):
  runs = _heldout(tmp_path, "n", lambda r: [max(x, 1.0) for x in r])
  assert rules_phases.hallucination(runs).verdict == rules.NOT_SHOWN


def test_hallucination_rejects_heldout_loss_above_the_floor_from_the_start(tmp_path):
  runs = _heldout(tmp_path, "a", lambda r: [max(x, 1.3) for x in _mirror(r)])
  score = rules_phases.hallucination(runs)
  assert score.verdict == rules.WEAK
  assert score.values["heldout_plateau_distance_from_floor"]["min"] == pytest.approx(0.3)


def test_hallucination_rejects_a_model_as_confident_on_unseen_people(tmp_path):
  runs = _heldout(tmp_path, "c", _mirror, auroc=0.5, entropy_gap=0.0)
  assert rules_phases.hallucination(runs).verdict == rules.WEAK


def test_hallucination_rejects_a_model_that_generalises_to_unseen_people(tmp_path):
  runs = _heldout(tmp_path, "g", lambda r: [min(x, 1.0) if x < 1 else x for x in r])
  assert rules_phases.hallucination(runs).verdict == rules.CONTRADICTED


def test_hallucination_rejects_an_entropy_gap_within_its_resolution(tmp_path):
  # Held-out people's entropy ends 1e-6 nats above seen people's: a sign, not a measurement.
  runs = _heldout(tmp_path, "e", _mirror, entropy_gap=1e-6, max_prob_gap=0.1)
  score = rules_phases.hallucination(runs)
  assert score.verdict == rules.WEAK, score.why
  assert "detectable in 0 of 3" in score.why
  assert score.values["entropy_resolution"]["min"] == pytest.approx(2 * E.NOISE)


def test_hallucination_rejects_heldout_loss_a_hair_under_the_floor_as_contradicted(tmp_path):
  # Held-out loss ends at 0.999 x the floor: a tie with it, not generalisation.
  hair = lambda r: [x if x >= 1 else 0.999 for x in r]
  runs = _heldout(tmp_path, "u", hair, auroc=0.5, entropy_gap=0.0)
  score = rules_phases.hallucination(runs)
  assert score.values["heldout_over_baseline"]["mean"] == pytest.approx(0.999)
  assert score.verdict == rules.NOT_SHOWN, score.why


def test_hallucination_rejects_two_failing_parts_as_weak(tmp_path):
  # Above the floor from the start and as confident on unseen people: 1 part of 3 holds.
  runs = _heldout(
    tmp_path, "w", lambda r: [max(x, 1.3) for x in _mirror(r)], auroc=0.5, entropy_gap=0.0
  )
  score = rules_phases.hallucination(runs)
  assert score.verdict == rules.NOT_SHOWN, score.why
  assert score.why.startswith("1 of 3 parts hold")


def test_hallucination_rejects_runs_without_confidence_metrics_as_weak(tmp_path):
  """Held-out loss leaves the floor with knowledge, but no run recorded the AUROC, entropy or
  top probability: (a) and (b) hold, (c) could go either way."""
  runs = _heldout(tmp_path, "m", _mirror)
  confidence = ("hallucination_auroc", "seen_entropy", "unseen_entropy")
  confidence += ("seen_max_prob", "unseen_max_prob")
  for run in runs:
    for record in [*run["records"], run["summary"]]:
      for key in confidence:
        record.pop(key, None)
  score = rules_phases.hallucination(runs)
  assert score.verdict == rules.NOT_SHOWN, score.why
  assert score.why.endswith("(detectable: not recorded)")


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
  score = rules_phases.hallucination(runs)
  assert score.values["heldout_over_baseline_by_attribute"]["birth_date"]["min"] == pytest.approx(
    1.02
  )
  assert score.measured.endswith("by attribute: 5 of 6 (birth_date not)")
  assert math.isfinite(score.values["auroc"]["mean"])
