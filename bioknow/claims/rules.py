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

# Verdicts. contradicted: the effect is measured, beyond its resolution and the spread over
# seeds, in the direction opposite to the paper's; not shown: neither it nor its opposite is.
HOLDS, WEAK, NOT_SHOWN, CONTRADICTED = "holds", "weak", "not shown", "contradicted"
NO_RUNS = "not run"
VERDICTS = (HOLDS, WEAK, NOT_SHOWN, CONTRADICTED, NO_RUNS)

# Three phases: the run must end this far below the baseline to count as knowing.
KNOWS_FRACTION = 0.9
# Plateau law: the paper's "almost linear, sub-linear" exponent, read generously.
EXPONENT_RANGE = (0.5, 1.1)
MIN_POPULATIONS, MIN_SPAN = 5, 16
# Hallucination: held-out loss this far above the baseline, and seen people this separable
# from unseen ones by the model's top probability.
HALLUCINATION_FRACTION = 1.05
AUROC_MIN = 0.6


class Score(NamedTuple):
  verdict: str
  measured: str  # one line: the numbers behind the verdict
  values: dict  # the numbers, for claims.json
  why: str = ""  # the clause that decided the verdict, printed beside it in the table


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
  verdict = HOLDS if every else WEAK if means else NOT_SHOWN
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
    return Score(NOT_SHOWN, "too few plateau ends for a fit with an interval", values)
  values |= {"k": law["k"], "k_low": law["k_low"], "k_high": law["k_high"], "c": law["c"]}
  complete = law["n"][law["ended"] == law["seeds"]]
  wide = len(complete) >= MIN_POPULATIONS and complete.max() >= MIN_SPAN * complete.min()
  grows = law["k_low"] > 0
  near_linear = EXPONENT_RANGE[0] <= law["k"] <= EXPONENT_RANGE[1]
  verdict = HOLDS if grows and near_linear and wide else WEAK if grows else NOT_SHOWN
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
    HOLDS if loss_part and all(a >= AUROC_MIN for a in auroc) else WEAK if loss_part else NOT_SHOWN
  )
  measured = (
    f"held-out loss / baseline {fmt(values['heldout_over_baseline'])}, "
    f"seen-vs-unseen AUROC {fmt(values['auroc'])}; held-out loss >= "
    f"{HALLUCINATION_FRACTION:g} x its own baseline in every seed, {A.clause(above)}"
  )
  return Score(verdict, measured, values)
