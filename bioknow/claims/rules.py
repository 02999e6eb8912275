"""The paper's claims as measurements on runs, each with the rule that gives its verdict.

Every function takes runs as bioknow.figures.runs loads them (dicts of records, summary and
config leaves; no JAX) and returns a `Score`: the numbers measured (mean and spread over
seeds), one line saying them, and a verdict from the rule in its docstring. The thresholds are
module constants, so a reader sees every margin in one place.
"""

import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

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
# Toy memory: replay must keep at least this share of the forgetting away.
REPLAY_SAVES = 0.5


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


def _finished(runs: list[dict], kind: str) -> list[dict]:
  return [r for r in runs if r["summary"] and R.experiment(r) == kind]


def three_phases(runs: list[dict]) -> Score:
  """Claim 1, the phases. Per seed: the first phase (steps until the attribute loss first
  reaches the baseline), the plateau (from there until knowledge emerges) and the final loss
  over the baseline. Holds when in every seed the plateau lasts longer than the first phase
  and the final loss is below KNOWS_FRACTION x baseline; weak when only the means over seeds
  do; does not hold otherwise."""
  runs = _finished(runs, "pretrain")
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
  """Claim 1, the law. plateau_end = c N^k fitted over every seed's plateau end. Holds when at
  least MIN_POPULATIONS populations spanning MIN_SPAN x ended their plateau in every seed, the
  95% interval of k excludes 0 and k lies in EXPONENT_RANGE; weak when the interval excludes 0
  but the rest fails; does not hold otherwise."""
  laws = population.plateau_law(_finished(runs, "pretrain"))
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
  of the top probability at the first value token telling seen from unseen people. Holds when
  every seed ends with held-out loss >= HALLUCINATION_FRACTION x baseline and AUROC >=
  AUROC_MIN; weak when only the loss part holds in every seed; does not hold otherwise."""
  runs = [r for r in _finished(runs, "pretrain") if "unseen_attribute_loss" in r["summary"]]
  if not runs:
    return Score(NO_RUNS, "no finished run with held-out people", {})
  ratio = [R.final(r, "unseen_attribute_loss") / R.baseline(r) for r in runs]
  auroc = [R.final(r, "hallucination_auroc") for r in runs]
  values = {"heldout_over_baseline": spread(ratio), "auroc": spread(auroc)}
  loss_part = all(x >= HALLUCINATION_FRACTION for x in ratio)
  verdict = (
    HOLDS if loss_part and all(a >= AUROC_MIN for a in auroc) else WEAK if loss_part else FAILS
  )
  measured = (
    f"held-out loss / baseline {fmt(values['heldout_over_baseline'])}, "
    f"seen-vs-unseen AUROC {fmt(values['auroc'])}"
  )
  return Score(verdict, measured, values)


def toy_memory(runs: list[dict]) -> Score:
  """Claim 7. Forgetting = old-pair accuracy before fine-tuning minus after it. Holds when the
  mean forgetting without replay grows with every step up in the number of new pairs (at
  least 3 sizes) and the most replayed run keeps at least REPLAY_SAVES of the forgetting away
  (against no replay at the same number of new pairs) in every seed; weak when one of the two
  holds; does not hold otherwise."""
  runs = _finished(runs, "toy_memory")
  if not runs:
    return Score(NO_RUNS, "no finished run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain/accuracy_before_finetune"] - s["pretrain/accuracy"]

  plain = [r for r in runs if not R.param(r, "weight_replay")]
  by_n = dict(sorted(R.group_by(plain, lambda r: int(R.param(r, "n_new"))).items()))
  drops = {n: spread([forgetting(r) for r in g]) for n, g in by_n.items()}
  means = [d["mean"] for d in drops.values()]
  grows = len(means) >= 3 and all(b > a for a, b in zip(means, means[1:]))
  replayed = [r for r in runs if R.param(r, "weight_replay")]
  saved, top = [], None
  if replayed:
    top = max(R.param(r, "weight_replay") for r in replayed)
    for r in replayed:
      if R.param(r, "weight_replay") != top:
        continue
      twin = [p for p in plain if R.param(p, "n_new") == R.param(r, "n_new")]
      twin = [p for p in twin if seed_of(p) == seed_of(r)] or twin
      if twin and forgetting(twin[0]) > 0:
        saved.append(1 - forgetting(r) / forgetting(twin[0]))
  replay_helps = bool(saved) and all(s >= REPLAY_SAVES for s in saved)
  kept_away = spread(saved)
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
