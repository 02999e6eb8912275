"""The paper's claims as measurements on runs, each with the rule that gives its verdict.

Every function takes runs as bioknow.figures.runs loads them (dicts of records, summary and
config leaves; no JAX) and returns a `Score`: the numbers measured (mean and spread over
seeds), one line saying them, and a verdict from the rule in its docstring. The thresholds are
module constants, so a reader sees every margin in one place. A claim that sweeps the learning
rate scores only the runs at its best lr (best_lr). The patching, curricula
and templates claims are in rules_patching, rules_curricula and rules_templates.
"""

import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from bioknow.claims import attributes as A
from bioknow.figures import population
from bioknow.figures import runs as R

HOLDS, WEAK, FAILS, NO_RUNS = "holds", "weak", "does not hold", "not run"

# Three phases: the run must end this far below the baseline to count as knowing.
KNOWS_FRACTION = 0.9
# Plateau law: the paper's "almost linear, sub-linear" exponent, read generously.
EXPONENT_RANGE = (0.5, 1.1)
MIN_POPULATIONS, MIN_SPAN = 5, 16
# Hallucination: held-out loss this far above the baseline, and seen people this separable
# from unseen ones by the model's top probability.
HALLUCINATION_FRACTION = 1.05
AUROC_MIN = 0.6
# Fine-tuning (toy memory and language model): replay, and fine-tuning on rare seen people,
# must keep this share of the forgetting away.
KEPT_AWAY = 0.5
# "More new items, more forgetting": the largest size must forget this much more accuracy
# than the smallest, above the 0.02-0.04 that seeds of one size differ by at the CPU scale,
# so forgetting that has saturated (everything erased at every size) does not count as growth.
GROWTH_MARGIN = 0.05
# Fine-tuning: "within the first few hundred steps" (the paper), read as half of the forgetting.
FAST_STEPS = 300


class Score(NamedTuple):
  verdict: str
  measured: str  # one line: the numbers behind the verdict
  values: dict  # the numbers, for claims.json


def spread(values: Sequence[float]) -> dict:
  """Mean, min, max and count of the finite values."""
  v = [float(x) for x in values if x is not None and math.isfinite(x)]
  if not v:
    return {"mean": math.nan, "min": math.nan, "max": math.nan, "n": 0}
  return {"mean": float(np.mean(v)), "min": min(v), "max": max(v), "n": len(v)}


def fmt(s: dict, digits: int = 3) -> str:
  """'mean (min-max, n seeds)' of a spread()."""
  if not s["n"]:
    return "none"
  if s["n"] == 1:
    return f"{s['mean']:.{digits}g} (1 seed)"
  return f"{s['mean']:.{digits}g} ({s['min']:.{digits}g}-{s['max']:.{digits}g}, {s['n']} seeds)"


def seed_of(run: dict) -> int:
  """The run's seed: train.seed where the config has it, else its name's _seedK, else 0."""
  for key in ("train.seed", "seed"):
    if R.is_number(run["config"].get(key)):
      return int(run["config"][key])
  match = re.search(r"seed(\d+)", run["name"])
  return int(match.group(1)) if match else 0


def finished(runs: list[dict], kind: str) -> list[dict]:
  """The runs of that experiment kind that wrote their summary."""
  return [r for r in runs if r["summary"] and R.experiment(r) == kind]


def setting_of(name: str) -> str:
  """The sweep point a run or point name repeats: the name without the _lrxF and _seedK
  suffixes that the claims catalog adds, so a point's lr copies and seeds share it."""
  return re.sub(r"_seed\d+", "", re.sub(r"_lrx[0-9.e+-]+", "", name))


def point_setting(run: dict) -> str:
  """setting_of the run's name."""
  return setting_of(run["name"])


def best_lr(runs: list[dict]) -> tuple[list[dict], dict[str, float]]:
  """The paper's lr pick. Per setting (point_setting), the lr whose final training loss,
  averaged over the seeds every lr of the setting has, is lowest (a diverged run counts as
  infinite; ties go to the lower lr). Returns the runs (every seed) at their setting's lr, in
  input order, and {setting: chosen lr}. Runs of one lr only come back as they are."""
  kept = R.best_lr(runs, key=point_setting, seed=seed_of)
  return kept, {point_setting(r): R.learning_rate(r) for r in kept}


def lrs_of(lrs: dict, runs: list[dict]) -> dict:
  """The chosen lrs of these runs' settings only."""
  names = {point_setting(r) for r in runs}
  return {k: v for k, v in lrs.items() if k in names}


def lr_at_top(runs: list[dict]) -> tuple[list[str], int]:
  """(settings, n): of the n settings run at two lrs or more, those whose best_lr pick is the
  highest lr run (a run that diverged at a higher lr brackets it); their grid does not bracket
  the best lr, which may lie higher still."""
  choices = R.best_lr_choices([r for r in runs if r["summary"]], key=point_setting, seed=seed_of)
  swept = {
    s: c for s, c in choices.items() if len(c[1]) > 1 and all(map(math.isfinite, c[1]))
  }  # a run without an lr (nan) sweeps nothing
  diverged: dict[str, float] = {}
  for r in runs:
    if r.get("diverged"):
      diverged[point_setting(r)] = max(
        diverged.get(point_setting(r), -math.inf), R.learning_rate(r)
      )
  return [
    s
    for s, (lr, scores) in swept.items()
    if lr == max(scores) and not diverged.get(s, -math.inf) > lr
  ], len(swept)


def three_phases(runs: list[dict]) -> Score:
  """Claim 1, the phases. Per seed: the first phase (steps until the attribute loss first
  reaches the baseline), the plateau (from there until knowledge emerges) and the final loss
  over the baseline, at the best lr (best_lr). Holds when in every seed the plateau lasts
  longer than the first phase and the final loss is below KNOWS_FRACTION x baseline; weak
  when only the means over seeds do; does not hold otherwise."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  if not runs:
    return Score(NO_RUNS, "no finished run", {})
  first, plateau, final = [], [], []
  for run in runs:
    f, p = R.phase_ends(run)
    first.append(float(f) if f is not None else math.nan)
    plateau.append(float(p - f) if p is not None and f is not None else math.nan)
    final.append(R.final(run, "attribute_loss") / R.baseline(run))
  values = {
    "first_phase": spread(first),
    "plateau": spread(plateau),
    "final_over_baseline": spread(final),
    "lr": lrs,
  }
  every = all(p > f and x < KNOWS_FRACTION for f, p, x in zip(first, plateau, final))
  means = (
    values["plateau"]["mean"] > values["first_phase"]["mean"]
    and values["final_over_baseline"]["mean"] < KNOWS_FRACTION
  )
  verdict = HOLDS if every else WEAK if means else FAILS
  measured = (
    f"first phase {fmt(values['first_phase'])} steps, plateau {fmt(values['plateau'])} steps, "
    f"final loss / baseline {fmt(values['final_over_baseline'])}"
  )
  return Score(verdict, measured, values)


def plateau_law(runs: list[dict]) -> Score:
  """Claim 1, the law. plateau_end = c N^k fitted over every seed's plateau end (runs whose
  plateau ends with their first phase are left out: figures.population). Holds when at
  least MIN_POPULATIONS populations spanning MIN_SPAN x ended their plateau in every seed, the
  95% interval of k excludes 0 and k lies in EXPONENT_RANGE; weak when the interval excludes 0
  but the rest fails; does not hold otherwise."""
  laws = population.plateau_law(finished(runs, "pretrain"))
  if not laws:
    return Score(NO_RUNS, "fewer than two populations finished", {})
  law = max(laws, key=lambda w: len(w["n"]))
  values = {
    "populations": [int(n) for n in law["n"]],
    "plateau_end_mean": [float(x) for x in law["plateau"]],
    "plateau_end_low": [float(x) for x in law["low"]],
    "plateau_end_high": [float(x) for x in law["high"]],
    "seeds": [int(x) for x in law["seeds"]],
    "ended": [int(x) for x in law["ended"]],
    "no_plateau": [int(x) for x in law["no_plateau"]],
  }
  if "k" not in law or not math.isfinite(law.get("k_low", math.nan)):
    return Score(FAILS, "too few plateau ends for a fit with an interval", values)
  values |= {"k": law["k"], "k_low": law["k_low"], "k_high": law["k_high"], "c": law["c"]}
  complete = law["n"][law["ended"] == law["seeds"]]
  wide = len(complete) >= MIN_POPULATIONS and complete.max() >= MIN_SPAN * complete.min()
  grows = law["k_low"] > 0
  near_linear = EXPONENT_RANGE[0] <= law["k"] <= EXPONENT_RANGE[1]
  verdict = HOLDS if grows and near_linear and wide else WEAK if grows else FAILS
  pops = ", ".join(
    f"{R.fmt_count(n)}: {m:.0f}" for n, m in zip(law["n"], law["plateau"]) if math.isfinite(m)
  )
  measured = (
    f"k = {law['k']:.2f} (95% CI {law['k_low']:.2f}-{law['k_high']:.2f}) over "
    f"{int(law['ended'].sum())} runs; plateau end by N: {pops}"
  )
  return Score(verdict, measured, values)


def hallucination(runs: list[dict]) -> Score:
  """Claim 5. Per seed, at the end: held-out (never seen) loss over the baseline, and the AUROC
  of the top probability at the first value token telling seen from unseen people, at the
  best lr (best_lr). Holds when every seed ends with held-out loss >= HALLUCINATION_FRACTION
  x baseline and AUROC >= AUROC_MIN; weak when only the loss part holds in every seed; does
  not hold otherwise. Beside the verdict, per attribute: held-out loss over that attribute's
  own baseline, and whether it is >= HALLUCINATION_FRACTION in every seed."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  runs = [r for r in runs if "unseen_attribute_loss" in r["summary"]]
  if not runs:
    return Score(NO_RUNS, "no finished run with held-out people", {})
  ratio = [R.final(r, "unseen_attribute_loss") / R.baseline(r) for r in runs]
  auroc = [R.final(r, "hallucination_auroc") for r in runs]
  by_attribute = A.view(runs, lambda r, a: A.over_baseline(r, "unseen_attribute_loss", a))
  values = {
    "heldout_over_baseline": spread(ratio),
    "auroc": spread(auroc),
    "heldout_over_baseline_by_attribute": {a: spread(v) for a, v in by_attribute.items()},
    "lr": lrs,
  }
  above = {a: all(x >= HALLUCINATION_FRACTION for x in v) for a, v in by_attribute.items()}
  values["attribute_holds"] = above
  loss_part = all(x >= HALLUCINATION_FRACTION for x in ratio)
  verdict = (
    HOLDS if loss_part and all(a >= AUROC_MIN for a in auroc) else WEAK if loss_part else FAILS
  )
  measured = (
    f"held-out loss / baseline {fmt(values['heldout_over_baseline'])}, "
    f"seen-vs-unseen AUROC {fmt(values['auroc'])}; held-out loss >= "
    f"{HALLUCINATION_FRACTION:g} x its own baseline in every seed, {A.clause(above)}"
  )
  return Score(verdict, measured, values)


def _grows(means: list[float]) -> bool:
  """Whether forgetting means by size (ascending) grow with every step up and by at least
  GROWTH_MARGIN from the smallest size to the largest, over at least 3 sizes."""
  return (
    len(means) >= 3
    and all(b > a for a, b in zip(means, means[1:]))
    and means[-1] - means[0] >= GROWTH_MARGIN
  )


def _plain_by_size(runs: list[dict], size: str) -> dict[int, list[dict]]:
  """The runs without replay, grouped by their `size` new items, smallest first."""
  plain = [r for r in runs if not R.param(r, "weight_replay")]
  return dict(sorted(R.group_by(plain, lambda r: int(R.param(r, size))).items()))


def _forgetting_grid(runs: list[dict], size: str, forgetting) -> tuple:
  """What the fine-tuning claims share, over runs with `size` new items: the forgetting by
  size without replay ({size: spread}), whether its mean grows with every step up and by at
  least GROWTH_MARGIN from the smallest size to the largest (at least 3 sizes), the heaviest
  replay weight, the share of forgetting it keeps away against no replay
  at the same size and seed (spread), and whether that share reaches KEPT_AWAY in every run."""
  by_n = _plain_by_size(runs, size)
  plain = [r for g in by_n.values() for r in g]
  drops = {n: spread([forgetting(r) for r in g]) for n, g in by_n.items()}
  grows = _grows([d["mean"] for d in drops.values()])
  replayed = [r for r in runs if R.param(r, "weight_replay")]
  top = max((R.param(r, "weight_replay") for r in replayed), default=None)
  saved = []
  for r in (r for r in replayed if R.param(r, "weight_replay") == top):
    twins = [p for p in plain if R.param(p, size) == R.param(r, size)]
    twins = [p for p in twins if seed_of(p) == seed_of(r)] or twins
    if twins and forgetting(twins[0]) > 0:
      saved.append(1 - forgetting(r) / forgetting(twins[0]))
  return drops, grows, top, spread(saved), bool(saved) and all(x >= KEPT_AWAY for x in saved)


def toy_memory(runs: list[dict]) -> Score:
  """Claim 7. Forgetting = old-pair accuracy before fine-tuning minus after it. Holds when the mean
  forgetting without replay grows with every step up in the number of new pairs, by GROWTH_MARGIN
  from the fewest to the most (at least 3 sizes) and the most replayed run keeps at least KEPT_AWAY
  of the forgetting away (against no replay at the same number of new pairs) in every seed; weak
  when one of the two holds; does not hold otherwise."""
  runs = finished(runs, "toy_memory")
  if not runs:
    return Score(NO_RUNS, "no finished run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain/accuracy_before_finetune"] - s["pretrain/accuracy"]

  grid = _forgetting_grid(runs, "n_new", forgetting)
  drops, grows, top, kept_away, replay_helps = grid
  values = {
    "forgetting_by_n_new": {str(n): d for n, d in drops.items()},
    "replay_weight": top,
    "share_saved_by_replay": kept_away,
  }
  verdict = HOLDS if grows and replay_helps else WEAK if grows or replay_helps else FAILS
  by_n_text = ", ".join(f"{n}: {fmt(d, 2)}" for n, d in drops.items())
  measured = (
    f"old-pair accuracy lost by new pairs {by_n_text}; replay at weight {top:g} keeps "
    f"{fmt(kept_away, 2)} of it"
    if top is not None
    else f"old-pair accuracy lost by new pairs {by_n_text}; no replay run"
  )
  return Score(verdict, measured, values)


def half_drop_step(run: dict) -> float:
  """The first evaluated fine-tuning step at which pre-training accuracy has lost half of its
  drop (before fine-tuning minus its lowest value); NaN without that series or without a drop."""
  s = run["summary"]
  before, low = s["pretrain_accuracy_before_finetune"], s["min_pretrain_accuracy"]
  steps, accuracy = R.series(run["records"], "pretrain/attribute_accuracy")
  reached = steps[accuracy <= before - 0.5 * (before - low)] if before > low else steps[:0]
  return float(reached[0]) if len(reached) else math.nan


def attribute_forgetting(run: dict, name: str) -> float:
  """One attribute's forgetting, measured as the summary's is for all of them: its pre-training
  accuracy at the first evaluation (before fine-tuning) minus its lowest; NaN without it."""
  _, accuracy = R.series(run["records"], f"pretrain/attribute_accuracy/{name}")
  if not len(accuracy):
    _, accuracy = R.series(run["records"], f"attribute_accuracy/{name}")
  return float(accuracy[0] - accuracy.min()) if len(accuracy) else math.nan


def finetune(runs: list[dict]) -> Score:
  """Claim 6. Forgetting = pre-training accuracy before fine-tuning minus its lowest value during
  it. Holds when (a) the mean forgetting without replay grows with every step up in the number of
  new people, by GROWTH_MARGIN from the fewest to the most (at least 3 sizes), (b) the most replayed
  run keeps at least KEPT_AWAY of the forgetting away (against no replay at the same size, every
  seed), (c) fine-tuning on rare, already-seen people forgets at most (1 - KEPT_AWAY) of what new
  people of the largest size do and (d) every run on new people without replay has lost half of
  its forgetting within FAST_STEPS fine-tuning steps (half_drop_step); weak when two or three of
  the four hold; does not hold otherwise. Beside the verdict, per attribute: the forgetting by
  size without replay (attribute_forgetting) and whether it grows as (a) asks."""
  runs = finished(runs, "finetune")
  if not runs:
    return Score(NO_RUNS, "no finished fine-tuning run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain_accuracy_before_finetune"] - s["min_pretrain_accuracy"]

  new = [r for r in runs if (R.param(r, "n_finetune") or 0) > 0]
  drops, grows, top, kept_away, replay_helps = _forgetting_grid(new, "n_finetune", forgetting)
  means = [d["mean"] for d in drops.values()]
  rare = spread([forgetting(r) for r in runs if not R.param(r, "n_finetune")])
  rare_keeps = bool(rare["n"]) and bool(means) and rare["mean"] <= (1 - KEPT_AWAY) * means[-1]
  half_steps = [half_drop_step(r) for r in new if not R.param(r, "weight_replay")]
  fast = bool(half_steps) and all(step <= FAST_STEPS for step in half_steps)
  values = {
    "forgetting_by_n_new": {str(n): d for n, d in drops.items()},
    "replay_weight": top,
    "share_saved_by_replay": kept_away,
    "rare_seen_forgetting": rare,
    "half_forgotten_by_step": spread(half_steps),
  }
  by_attribute: dict[str, dict[str, dict]] = {}
  for n, group in _plain_by_size(new, "n_finetune").items():
    for a, v in A.view(group, attribute_forgetting).items():
      by_attribute.setdefault(a, {})[str(n)] = spread(v)
  grows_in = {a: _grows([d["mean"] for d in by.values()]) for a, by in by_attribute.items()}
  values |= {
    "forgetting_by_n_new_by_attribute": by_attribute,
    # most minus fewest new people: the size effect without (a)'s every-step-up condition
    "forgetting_most_minus_fewest_by_attribute": {
      a: list(by.values())[-1]["mean"] - list(by.values())[0]["mean"]
      for a, by in by_attribute.items()
    },
    "attribute_holds": grows_in,
  }
  n_true = sum((grows, replay_helps, rare_keeps, fast))
  verdict = HOLDS if n_true == 4 else WEAK if n_true >= 2 else FAILS
  by_n_text = ", ".join(f"{n}: {fmt(d, 2)}" for n, d in drops.items())
  half = values["half_forgotten_by_step"]
  half_text = f"{half['mean']:.0f} ({half['min']:.0f}-{half['max']:.0f}, {half['n']} runs)"
  measured = (
    f"pre-training accuracy lost by new people {by_n_text}, half of it by step "
    f"{half_text if half['n'] else 'none'}; replay (weight {top}) keeps "
    f"{fmt(kept_away, 2)} of it away; rare seen people lose "
    f"{fmt(rare, 2)}; forgetting grows with new people {A.clause(grows_in)}"
  )
  return Score(verdict, measured, values)
