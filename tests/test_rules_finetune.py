"""The fine-tuning scorecard rules (claims 6 and 7) on synthetic run directories: the paper's
model holds, and each wrong model is named and rejected with the verdict it earns."""

import json
import math
import pathlib

import pytest

from bioknow.analysis import runs as R
from bioknow.claims import figures, rules, rules_finetune

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "company", "current_city")
# The small sweep's grid: new people without replay, replay at 100 new people, celebrities.
SIZES = (50, 100, 200)
WEIGHTS = (8, 2, 1 / 2, 1 / 8)
N_CELEBRITIES, N_SEEN = 40, 600


def _write_run(path: pathlib.Path, leaves: dict, records: list[dict], summary: dict) -> dict:
  """A finished run directory as the library writes it, loaded back as the scorecard reads it."""
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps({"leaves": leaves}))
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  (path / "summary.json").write_text(json.dumps(summary))
  return R.load_run(path)


# Claim 6: fine-tuning the language model -----------------------------------------------------


def _finetune_run(
  path,
  seed,
  n_new,
  weight,
  lost,
  *,
  before=0.8,
  half_step=30,
  steps=400,
  learned_at_half=0.1,
  linear=False,
  by_attribute=None,
) -> dict:
  """A run on n_new new people: pre-training accuracy from `before` down by `lost`, at 0.45 of
  the drop one evaluation (10 steps) before half_step and 0.55 at it, the rest by the end
  (linear: evenly over the run, evaluated every 20 steps); the new people's accuracy from 0 to
  0.9, at learned_at_half of that at half_step. by_attribute ({attribute: accuracy lost}):
  each attribute's from 0.9 at step 0 to 0.9 minus its loss at the end."""
  low = before - lost
  if linear:
    old = [(s, before - lost * s / steps) for s in range(0, steps + 1, 20)]
  else:
    at = [(0, 0.0), (half_step - 10, 0.45), (half_step, 0.55), (steps, 1.0)]
    old = [(s, before - lost * x) for s, x in at]
  half = steps / 2 if linear else half_step
  new = lambda s: 0.9 * min(1.0, learned_at_half * s / half)
  records = [
    {"step": s, "pretrain/attribute_accuracy": a, "finetune/attribute_accuracy": new(s)}
    for s, a in old
  ]
  records[-1]["finetune/attribute_accuracy"] = 0.9
  for a, x in (by_attribute or {}).items():
    records[0] |= {f"pretrain/attribute_accuracy/{a}": 0.9, f"no_knowledge_baseline/{a}": 2.8}
    records[-1] |= {f"pretrain/attribute_accuracy/{a}": 0.9 - x, f"no_knowledge_baseline/{a}": 2.8}
  summary = {
    "experiment": "finetune",
    "n_finetune": n_new,
    "weight_replay": weight,
    "pretrain_accuracy_before_finetune": before,
    "min_pretrain_accuracy": low,
    "step": steps,
  }
  leaves = {
    "n_finetune": n_new,
    "weight_replay": weight,
    "train.seed": seed,
    "train.n_steps": steps,
    "finetune_ids": None,
    "eval_groups": None,
  }
  return _write_run(path, leaves, records, summary)


def _seen_run(path, seed, celebrities_lost, groups=True) -> dict:
  """A run on the 560 rare non-celebrities of a 600-people celebrities run: the celebrities
  lose `celebrities_lost` of their 0.95 accuracy while the non-celebrities go from 0.2 to 0.9,
  so the whole population (the summary's pretrain_accuracy_*) only rises. groups=False: the
  default groups, which report no group of people kept out of fine-tuning."""
  population = lambda c, r: (N_CELEBRITIES * c + (N_SEEN - N_CELEBRITIES) * r) / N_SEEN
  start, end = population(0.95, 0.2), population(0.95 - celebrities_lost, 0.9)
  records = [
    {"step": 0, "attribute_accuracy": start, "celebrities/attribute_accuracy": 0.95},
    {
      "step": 400,
      "attribute_accuracy": end,
      "celebrities/attribute_accuracy": 0.95 - celebrities_lost,
    },
  ]
  summary = {
    "experiment": "finetune",
    "n_finetune": 0,
    "weight_replay": 0.0,
    "finetune_ids": [N_CELEBRITIES, N_SEEN],
    "pretrain_accuracy_before_finetune": start,
    "min_pretrain_accuracy": start,
    "celebrities/attribute_accuracy_start": 0.95,
    "celebrities/attribute_accuracy_min": 0.95 - celebrities_lost,
    "non_celebrities/attribute_accuracy_start": 0.2,
    "non_celebrities/attribute_accuracy_min": 0.2,
  }
  default = [["pretrain", 0, N_SEEN], ["finetune", N_CELEBRITIES, N_SEEN]]
  split = [["celebrities", 0, N_CELEBRITIES], ["non_celebrities", N_CELEBRITIES, N_SEEN]]
  leaves = {
    "n_finetune": 0,
    "weight_replay": 0.0,
    "train.seed": seed,
    "train.n_steps": 400,
    "finetune_ids": [N_CELEBRITIES, N_SEEN],
    "eval_groups": split if groups else default,
  }
  return _write_run(path, leaves, records, summary)


GROWING = {50: 0.4, 100: 0.5, 200: 0.6}  # accuracy lost by new people, no replay
GRADED = {8: 0.02, 2: 0.05, 1 / 2: 0.15, 1 / 8: 0.3}  # lost at 100 new people, by replay weight


def _finetune_grid(
  root, lost_by_n=GROWING, lost_by_weight=GRADED, celebrities_lost=0.02, seeds=2, **shape
) -> list[dict]:
  """The sweep's runs, each seed's losses 0.01 apart (seed spread 0.01); `shape` goes to
  every run on new people without replay (how its drop unfolds)."""
  runs = []
  for seed in range(seeds):
    jitter = 0.01 * seed
    for n, lost in lost_by_n.items():
      runs.append(_finetune_run(root / f"new{n}_{seed}", seed, n, 0.0, lost + jitter, **shape))
    for w, lost in lost_by_weight.items():
      path = root / f"new100_replay{w:g}_{seed}"
      runs.append(_finetune_run(path, seed, 100, w, lost + jitter))
    runs.append(_seen_run(root / f"celebrities_finetune_{seed}", seed, celebrities_lost))
  return runs


def test_finetune_holds_for_the_papers_model(tmp_path):
  score = rules_finetune.finetune(_finetune_grid(tmp_path))
  assert score.verdict == rules.HOLDS and score.why == "all four parts hold"
  assert set(score.values["parts"].values()) == {rules.HOLDS}
  assert score.values["forgetting_by_n_new"]["200"]["mean"] == pytest.approx(0.605)
  assert score.values["replay_weight"] == 8
  assert score.values["share_saved_by_replay"]["mean"] == pytest.approx(1 - 0.025 / 0.505, abs=1e-3)
  by_weight = score.values["forgetting_by_replay_weight"]
  assert list(by_weight) == ["8", "2", "1/2", "1/8"]
  # The celebrities' own accuracy, not the population's (which rises).
  assert score.values["rare_seen_forgetting"]["mean"] == pytest.approx(0.02)
  assert score.values["half_forgotten_by_step"]["mean"] == 30
  assert score.values["half_forgotten_fraction"]["max"] == pytest.approx(30 / 400)
  assert "half of it by step 30 (30-30, 6 runs)" in score.measured


def test_finetune_reads_the_fine_tuning_length_from_the_config(tmp_path):
  """Half of the drop by step 300: fast in a 4k-step run (7.5%), slow in a 400-step one."""
  long = rules_finetune.finetune(_finetune_grid(tmp_path / "l", half_step=300, steps=4000))
  assert long.verdict == rules.HOLDS
  short = rules_finetune.finetune(_finetune_grid(tmp_path / "s", half_step=300, steps=400))
  assert short.verdict == rules.WEAK
  assert short.why == "collapse: half of the drop by 75% of the steps, not within 12.5%"


def test_finetune_rejects_celebrities_forgotten_while_the_population_rises(tmp_path):
  """Fine-tuning the rare people erases the 40 celebrities (0.95 -> 0.15) while the 560 rare
  ones are learned: the whole population's accuracy only rises, so reading it would show no
  forgetting at all. The celebrities' own group shows more than 50 new people cost."""
  runs = _finetune_grid(tmp_path, celebrities_lost=0.8)
  seen = [r for r in runs if r["name"].startswith("celebrities")]
  summary = seen[0]["summary"]
  assert summary["min_pretrain_accuracy"] == summary["pretrain_accuracy_before_finetune"]
  assert R.final(seen[0], "attribute_accuracy") > summary["pretrain_accuracy_before_finetune"]
  score = rules_finetune.finetune(runs)
  assert score.verdict == rules.CONTRADICTED
  assert score.values["parts"]["rare"] == rules.CONTRADICTED
  assert score.why == "rare: seen people cost those kept out 0.80, 50 new people cost 0.41"


def test_finetune_rejects_a_seen_run_without_a_group_kept_out(tmp_path):
  """The default groups (pretrain, finetune) both hold fine-tuned people: nothing to read."""
  runs = [r for r in _finetune_grid(tmp_path) if not r["name"].startswith("celebrities")]
  runs += [_seen_run(tmp_path / f"c{s}", s, 0.02, groups=False) for s in range(2)]
  score = rules_finetune.finetune(runs)
  assert score.verdict == rules.NOT_SHOWN  # the other three hold, but rare could go either way
  assert score.why == "rare: no run on seen people reports a group it keeps out"


def test_finetune_rejects_slow_linear_forgetting(tmp_path):
  """The same drop, spread evenly over the run: half of it at step 200 of 400."""
  score = rules_finetune.finetune(_finetune_grid(tmp_path, linear=True))
  assert score.verdict == rules.WEAK
  assert score.values["half_forgotten_fraction"]["min"] == pytest.approx(0.5)
  assert score.why == "collapse: half of the drop by 50% of the steps, not within 12.5%"


def test_finetune_rejects_new_people_learned_as_fast_as_old_ones_are_forgotten(tmp_path):
  score = rules_finetune.finetune(_finetune_grid(tmp_path, learned_at_half=0.6))
  assert score.verdict == rules.WEAK
  assert score.why.startswith("collapse: ") and score.why.endswith("learned: as fast as forgotten")


def test_finetune_rejects_mild_drift(tmp_path):
  """0.05-0.11 of 0.8 lost (growing, replay graded, celebrities kept): no large collapse."""
  drift = {50: 0.05, 100: 0.08, 200: 0.11}
  graded = {8: 0.0, 2: 0.01, 1 / 2: 0.03, 1 / 8: 0.06}
  score = rules_finetune.finetune(_finetune_grid(tmp_path, drift, graded, celebrities_lost=0.0))
  assert score.verdict == rules.WEAK
  assert score.why == "collapse: a run loses 0.06 of its old accuracy (0.25)"


def test_finetune_rejects_replay_that_does_not_grade_with_its_weight(tmp_path):
  """Every weight keeps the same 0.95 of the forgetting away: replay helps, it does not grade."""
  flat = dict.fromkeys(WEIGHTS, 0.025)
  score = rules_finetune.finetune(_finetune_grid(tmp_path, lost_by_weight=flat))
  assert score.verdict == rules.WEAK
  assert score.why == "replay: weight 1/8 keeps away no less than weight 8"


def test_finetune_without_three_sizes_or_rare_seen_people_is_not_weak(tmp_path):
  """The right model on a cut grid: two sizes (100 and 200), or no run on seen people at all
  (the quick grid). Each missing part could go either way, so even this model is not shown."""
  two = {n: x for n, x in GROWING.items() if n in (100, 200)}
  score = rules_finetune.finetune(_finetune_grid(tmp_path / "two", lost_by_n=two))
  assert score.values["parts"]["grows"] == rules.NOT_SHOWN
  assert score.verdict == rules.NOT_SHOWN
  assert score.why == "grows: 2 numbers of new people run (3 needed)"
  runs = [r for r in _finetune_grid(tmp_path / "quick") if "celebrities" not in r["name"]]
  score = rules_finetune.finetune(runs)
  assert score.verdict == rules.NOT_SHOWN and score.why == "rare: no run on seen people"


def test_finetune_rejects_replay_at_one_weight(tmp_path):
  score = rules_finetune.finetune(_finetune_grid(tmp_path, lost_by_weight={8: 0.02}))
  assert score.verdict == rules.NOT_SHOWN
  assert score.why == "replay: replay at 1 weight(s), 3 needed"


def test_finetune_rejects_replay_at_two_weights(tmp_path):
  """Replay graded over 8 and 2 only: two points make a difference, not a grading."""
  score = rules_finetune.finetune(_finetune_grid(tmp_path, lost_by_weight={8: 0.02, 2: 0.05}))
  assert score.verdict == rules.NOT_SHOWN
  assert score.why == "replay: replay at 2 weight(s), 3 needed"


def test_finetune_rejects_saturated_forgetting(tmp_path):
  """Every size erases ~0.7 of 0.8; the means creep up by 0.03, beyond both margins (0.01
  each) but under GROWTH_MARGIN: saturated, not intensified."""
  saturated = {50: 0.7, 100: 0.72, 200: 0.73}
  score = rules_finetune.finetune(_finetune_grid(tmp_path, saturated))
  assert score.verdict != rules.HOLDS
  assert score.verdict == rules.WEAK
  assert score.why == "grows: 200 against 50 new people forget +0.030, under 0.05"


def test_finetune_rejects_replay_that_makes_forgetting_worse(tmp_path):
  worse = {8: 0.7, 2: 0.6, 1 / 2: 0.55, 1 / 8: 0.5}
  score = rules_finetune.finetune(_finetune_grid(tmp_path, lost_by_weight=worse))
  assert score.verdict == rules.CONTRADICTED
  assert score.why == "replay: weight 8 forgets more than 1/8 beyond spread"


def test_finetune_rejects_no_forgetting(tmp_path):
  none = dict.fromkeys(SIZES, 0.0)
  score = rules_finetune.finetune(
    _finetune_grid(tmp_path, none, dict.fromkeys(WEIGHTS, 0.0), celebrities_lost=0.0)
  )
  assert score.verdict == rules.NOT_SHOWN
  assert set(score.values["parts"].values()) == {rules.NOT_SHOWN}


def test_finetune_rejects_forgetting_that_shrinks_with_more_new_people(tmp_path):
  shrinking = {50: 0.6, 100: 0.5, 200: 0.4}
  score = rules_finetune.finetune(_finetune_grid(tmp_path, shrinking))
  assert score.verdict == rules.CONTRADICTED
  assert (
    score.why == "grows: 200 against 50 new people forget -0.200, less beyond the seeds' spread"
  )


def test_finetune_rejects_growth_within_the_seed_spread(tmp_path):
  """Seeds 0.2 apart at every size, means 0.05 apart: every difference is a tie."""
  runs = _finetune_grid(tmp_path / "a", {50: 0.35, 100: 0.4, 200: 0.45}, seeds=1)
  runs += _finetune_grid(tmp_path / "b", {50: 0.55, 100: 0.6, 200: 0.65}, seeds=1)
  for run in runs[len(runs) // 2 :]:
    run["config"]["train.seed"] = 1
  score = rules_finetune.finetune(runs)
  assert score.verdict == rules.WEAK
  assert (
    score.why == "grows: 200 against 50 new people forget +0.100, a tie within the seeds' spread"
  )


def test_finetune_growth_allows_ties_between_neighbours():
  """The CPU sweep's numbers (docs/claims.md, 3 seeds): 400 people forget less than 200 in
  the mean, within the seeds' spread; 800 forget more than 50 beyond it."""
  seeds = {
    50: (0.648, 0.656, 0.697),
    100: (0.667, 0.652, 0.725),
    200: (0.680, 0.654, 0.766),
    400: (0.668, 0.649, 0.776),
    800: (0.715, 0.709, 0.792),
  }
  by_size = {n: rules.spread(v) for n, v in seeds.items()}
  assert rules_finetune.growth(by_size, "people").state == rules.HOLDS
  del by_size[800]  # 400 against 50: +0.031, within the spread
  assert rules_finetune.growth(by_size, "people").state == rules.NOT_SHOWN


def test_finetune_by_attribute(tmp_path):
  """Accuracy lost per attribute at 50, 100, 200 new people: 0.2, 0.3, 0.5 (seed 0) and
  0.2, 0.3, 0.6 (seed 1), except the major's 0.3 at every size, which does not grow: 5 of 6,
  while the verdict (read from the summaries) still holds."""
  runs = _finetune_grid(tmp_path)
  for seed, top in ((0, 0.5), (1, 0.6)):
    for n, x in {50: 0.2, 100: 0.3, 200: top}.items():
      lost = {a: 0.3 if a == "major" else x for a in ATTRIBUTES}
      path = tmp_path / f"attribute{n}_{seed}"
      runs.append(_finetune_run(path, seed, n, 0.0, GROWING[n], by_attribute=lost))
  score = rules_finetune.finetune(
    [r for r in runs if not (r["name"].startswith("new") and "replay" not in r["name"])]
  )
  assert score.verdict == rules.HOLDS
  by = score.values["forgetting_by_n_new_by_attribute"]
  assert list(by) == list(ATTRIBUTES) and list(by["company"]) == ["50", "100", "200"]
  assert by["company"]["200"] == pytest.approx({"mean": 0.55, "min": 0.5, "max": 0.6, "n": 2})
  assert by["major"]["200"]["mean"] == pytest.approx(0.3)
  most_minus_fewest = score.values["forgetting_most_minus_fewest_by_attribute"]
  assert most_minus_fewest == pytest.approx({a: 0.0 if a == "major" else 0.35 for a in ATTRIBUTES})
  assert score.values["attribute_holds"] == {a: a != "major" for a in ATTRIBUTES}
  assert score.measured.endswith(
    "forgetting grows with new people by attribute: 5 of 6 (major not)"
  )
  attribute_run = next(r for r in runs if r["name"] == "attribute50_0")
  assert rules_finetune.attribute_forgetting(attribute_run, "major") == pytest.approx(0.3)
  assert math.isnan(rules_finetune.attribute_forgetting(runs[0], "major"))


# Claim 7: the toy associative memory ---------------------------------------------------------


def _toy_run(path, seed, n_new, weight, before, after) -> dict:
  summary = {
    "experiment": "toy_memory",
    "n_new": n_new,
    "weight_replay": weight,
    "pretrain/accuracy_before_finetune": before,
    "pretrain/accuracy": after,
    "wall_seconds": 10.0,
  }
  leaves = {"n_new": n_new, "weight_replay": weight, "seed": seed}
  return _write_run(path, leaves, [{"step": 0, "phase": "finetune"}], summary)


TOY_GROWING = {16: 0.4, 32: 0.45, 64: 0.6, 256: 0.65}  # old-pair accuracy lost, no replay
TOY_GRADED = {1 / 2: 0.0, 1 / 32: 0.1, 1 / 512: 0.3}  # lost at 32 new pairs, by replay weight


def _toy_grid(root, lost_by_n=TOY_GROWING, lost_by_weight=TOY_GRADED, seeds=3) -> list[dict]:
  """The small sweep's runs from an old-pair accuracy of 1, seeds' losses 0.01 apart."""
  runs = []
  for seed in range(seeds):
    for n, lost in lost_by_n.items():
      runs.append(_toy_run(root / f"new{n}_{seed}", seed, n, 0.0, 1.0, 1.0 - lost - 0.01 * seed))
    for w, lost in lost_by_weight.items():
      path = root / f"replay{w:g}_{seed}"
      runs.append(_toy_run(path, seed, 32, w, 1.0, 1.0 - lost - 0.01 * seed))
  return runs


def test_toy_memory_holds_for_the_papers_model(tmp_path):
  score = rules_finetune.toy_memory(_toy_grid(tmp_path))
  assert score.verdict == rules.HOLDS and score.why == "all three parts hold"
  assert score.values["forgetting_by_n_new"]["64"]["mean"] == pytest.approx(0.61)
  assert score.values["replay_weight"] == 0.5
  assert list(score.values["forgetting_by_replay_weight"]) == ["1/2", "1/32", "1/512"]
  assert score.values["share_saved_by_replay"]["min"] == pytest.approx(1 - 0.02 / 0.47)


def test_toy_memory_rejects_no_forgetting(tmp_path):
  score = rules_finetune.toy_memory(
    _toy_grid(tmp_path, dict.fromkeys(TOY_GROWING, 0.0), dict.fromkeys(TOY_GRADED, 0.0))
  )
  assert score.verdict == rules.NOT_SHOWN
  assert set(score.values["parts"].values()) == {rules.NOT_SHOWN}


def test_toy_memory_rejects_small_forgetting(tmp_path):
  """0.1-0.2 of the old pairs lost, growing, replay graded: not a large portion."""
  small = {16: 0.1, 32: 0.12, 64: 0.18, 256: 0.2}
  score = rules_finetune.toy_memory(
    _toy_grid(tmp_path, small, {1 / 2: 0.0, 1 / 32: 0.03, 1 / 512: 0.08})
  )
  assert score.verdict == rules.WEAK
  assert score.why == "forgets: a run loses 0.10 of its old accuracy (0.25)"


def test_toy_memory_rejects_replay_that_protects_equally_at_every_weight(tmp_path):
  score = rules_finetune.toy_memory(
    _toy_grid(tmp_path, lost_by_weight=dict.fromkeys(TOY_GRADED, 0.05))
  )
  assert score.verdict == rules.WEAK
  assert score.why == "replay: weight 1/512 keeps away no less than weight 1/2"


def test_toy_memory_rejects_replay_at_one_weight(tmp_path):
  score = rules_finetune.toy_memory(_toy_grid(tmp_path, lost_by_weight={1 / 2: 0.05}))
  assert score.verdict == rules.NOT_SHOWN
  assert score.why == "replay: replay at 1 weight(s), 3 needed"


def test_toy_memory_rejects_replay_at_two_weights(tmp_path):
  """Replay graded over 1/2 and 1/32 only: two points make a difference, not a grading."""
  score = rules_finetune.toy_memory(_toy_grid(tmp_path, lost_by_weight={1 / 2: 0.0, 1 / 32: 0.1}))
  assert score.verdict == rules.NOT_SHOWN
  assert score.why == "replay: replay at 2 weight(s), 3 needed"


def test_toy_memory_rejects_replay_that_makes_forgetting_worse(tmp_path):
  """Heavier replay erases more old pairs than lighter replay and than none (0.45 at 32 new
  pairs), beyond the seeds' spread: the opposite of the paper's."""
  worse = {1 / 2: 0.7, 1 / 32: 0.6, 1 / 512: 0.5}
  score = rules_finetune.toy_memory(_toy_grid(tmp_path, lost_by_weight=worse))
  assert score.verdict == rules.CONTRADICTED
  assert score.values["parts"] == {
    "forgets": rules.HOLDS,
    "grows": rules.HOLDS,
    "replay": rules.CONTRADICTED,
  }
  assert score.why == "replay: weight 1/2 forgets more than 1/512 beyond spread"


def test_toy_memory_rejects_growth_within_the_seed_spread(tmp_path):
  """Seeds 0.3 apart, means rising by 0.1 over four sizes: ties, never a step up."""
  runs = []
  for seed, offset in enumerate((0.3, 0.6)):
    lost = {n: offset + 0.1 * i / 3 for i, n in enumerate(TOY_GROWING)}
    runs += _toy_grid(tmp_path / f"s{seed}", lost, seeds=1)
    for run in runs[-7:]:
      run["config"]["seed"] = seed
  score = rules_finetune.toy_memory(runs)
  assert score.verdict == rules.WEAK
  assert score.why.startswith("grows: 256 against 16 new pairs forget +0.100, a tie")


def test_toy_memory_rejects_saturated_forgetting(tmp_path):
  """Every size erases ~0.8; the means creep up by 0.03, beyond the seeds' spread of 0.02
  but under GROWTH_MARGIN."""
  saturated = {16: 0.78, 32: 0.79, 64: 0.8, 256: 0.81}
  score = rules_finetune.toy_memory(_toy_grid(tmp_path, saturated, seeds=1))
  assert score.verdict == rules.WEAK
  assert score.why == "grows: 256 against 16 new pairs forget +0.030, under 0.05"


def test_toy_memory_rejects_forgetting_that_shrinks_with_more_pairs(tmp_path):
  shrinking = {16: 0.65, 32: 0.6, 64: 0.45, 256: 0.4}
  score = rules_finetune.toy_memory(_toy_grid(tmp_path, shrinking))
  assert score.verdict == rules.CONTRADICTED
  assert score.why.startswith("grows: 256 against 16 new pairs forget -0.250")


def test_toy_memory_figure_reads_the_rules_values(tmp_path):
  path = figures.toy_memory(_toy_grid(tmp_path / "runs"), tmp_path / "fig")
  assert path is not None and path.stat().st_size > 500
