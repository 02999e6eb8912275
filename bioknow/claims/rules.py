"""The paper's claims as measurements on runs, each with the rule that gives its verdict.

Every function takes runs as bioknow.analysis.runs loads them (dicts of records, summary and
config leaves; no JAX) and returns a `Score`: the numbers measured (mean and spread over
seeds), one line saying them, and a verdict from the rule in its docstring. The thresholds are
module constants, so a reader sees every margin in one place. A claim that sweeps the learning
rate scores only the runs at its best lr (best_lr). The phases, plateau law and hallucination
claims are in rules_phases; patching, curricula, warm-up, fine-tuning and templates in
rules_patching, rules_curricula, rules_warmup, rules_finetune and rules_templates.
"""

import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from bioknow.analysis import runs as R

# Verdicts. contradicted: the effect is measured, beyond its resolution and the spread over
# seeds, in the direction opposite to the paper's; not shown: neither it nor its opposite is.
HOLDS, WEAK, NOT_SHOWN, CONTRADICTED = "holds", "weak", "not shown", "contradicted"
NO_RUNS = "not run"
VERDICTS = (HOLDS, WEAK, NOT_SHOWN, CONTRADICTED, NO_RUNS)

# Learned: the run must end this far below the baseline to count as knowing (10% under the
# floor is 20x the evaluation noise, ends.NOISE); three_phases' and other rules' margin.
KNOWS_FRACTION = 0.9


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
