"""The attention-patching claim (claim 2) as a measurement on runs, in the shape of rules.py."""

import math

import numpy as np

from bioknow.claims.rules import (
  HOLDS,
  NO_RUNS,
  NOT_SHOWN,
  WEAK,
  Score,
  finished,
  fmt,
  seed_of,
  spread,
)
from bioknow.figures import runs as R

# Patching: final-checkpoint patterns must remove this share of the reference's plateau, and
# last-layer attention from the first value token to the name must grow this much over it.
PLATEAU_REMOVED = 0.5
ATTENTION_RISE = 1.2


def _by_seed(runs: list[dict]) -> dict[int, list[dict]]:
  return R.group_by(runs, seed_of)


def _last_layer_at(run: dict, key: str, step) -> float:
  steps, values = R.layer_series(run["records"], key)
  if step is None or not len(steps):
    return math.nan
  return float(values[int(np.argmin(abs(steps - step))), -1])


def patching(runs: list[dict]) -> Score:
  """Claim 2. Per seed, against its unpatched reference (plateau P, first phase F): the share
  of the plateau that the final checkpoint's patterns remove, (P - P_final) / (P - F); the
  plateau end with patterns of checkpoints inside the reference's plateau minus that with
  the initial patterns (> 0: worse than the initial ones, as in the paper); last-layer
  attention from the first value token to the name at P over that at F. Holds when every
  seed removes at least PLATEAU_REMOVED of its plateau and its attention grows by
  ATTENTION_RISE, and plateau-checkpoint patterns do no better than the initial ones on
  average; weak when the first part holds; does not hold otherwise. A patched run whose
  plateau never ends counts as ending at its last step (R.plateau_end_or_budget)."""
  refs = {seed_of(r): r for r in finished(runs, "pretrain") if r["name"].startswith("reference")}
  patched = [r for r in finished(runs, "patching") if not R.param(r, "start_patching")]
  removed, later_than_initial, rise = [], [], []
  for seed, group in _by_seed(patched).items():
    ref = refs.get(seed)
    if ref is None:
      continue
    first, end = R.phase_ends(ref)
    by_step = {R.param(r, "reference_step"): R.plateau_end_or_budget(r) for r in group}
    final_end = by_step[max(by_step)]
    if first is None or end is None or end <= first:
      removed.append(math.nan)
      continue
    removed.append((end - final_end) / (end - first))
    inside = [e for s, e in by_step.items() if first < s < end]
    initial = by_step.get(0)
    if inside and initial is not None:
      later_than_initial.append(float(np.mean(inside)) - initial)
    rise.append(
      _last_layer_at(ref, "attn_value_to_name", end)
      / _last_layer_at(ref, "attn_value_to_name", first)
    )
  if not removed:
    return Score(NO_RUNS, "no reference with patched runs", {})
  values = {
    "plateau_removed_by_final_patterns": spread(removed),
    "plateau_checkpoints_minus_initial_steps": spread(later_than_initial),
    "attention_rise": spread(rise),
  }
  strong = all(x >= PLATEAU_REMOVED for x in removed)
  rises = bool(rise) and all(x >= ATTENTION_RISE for x in rise)
  early_worse = bool(later_than_initial) and np.mean(later_than_initial) >= 0
  verdict = HOLDS if strong and rises and early_worse else WEAK if strong else NOT_SHOWN
  measured = (
    f"final patterns remove {fmt(values['plateau_removed_by_final_patterns'], 2)} of the "
    f"plateau; plateau-checkpoint patterns end it "
    f"{fmt(values['plateau_checkpoints_minus_initial_steps'])} steps after the initial ones; "
    f"value-to-name attention x{fmt(values['attention_rise'], 2)} over the plateau"
  )
  return Score(verdict, measured, values)
