"""The lr pick in two stages: which of a claim's points run first, which the lr walk adds,
and which the other seeds run (at each setting's picked lr). stages.py runs them."""

import math
import pathlib
import re

from bioknow.claims import rules
from bioknow.claims.catalog import Claim, learning_rate

# A claim that sweeps the lr over several seeds picks each setting's lr on seed 0 and runs its
# other seeds at that lr only: (settings x lrs) + (settings x (seeds - 1)) runs instead of
# settings x lrs x seeds, half the warm-up grid's at 4 lrs and 3 seeds. On the 10 settings
# swept at 3 seeds on the CPU scale (curricula, templates) seed 0 picked the 3-seed mean's lr
# in 8; in the other 2 the two lrs' 3-seed mean final training losses differ by 0.0065 and
# 0.0055 nats (about 1%). Seed 0 itself walks the ladder (lr_start, then lr_neighbours).


def seed_of_point(name: str) -> int:
  """A point's seed from its name's _seedK suffix (seeded copies); 0 without one."""
  match = re.search(r"_seed(\d+)$", name)
  return int(match.group(1)) if match else 0


def lr_factor_of_point(name: str) -> float:
  """A point's lr factor from its name's _lrxF suffix (lr copies); 1 without one."""
  match = re.search(r"_lrx([0-9.]+(?:e[+-]?[0-9]+)?)", name)
  return float(match.group(1)) if match else 1.0


def lr_stages(points: list, claim: Claim) -> tuple[list, list]:
  """(first, rest): with an lr sweep, the seed-0 points at every lr of the ladder and then the
  other seeds' points, of which only those at their setting's picked lr run (at_picked_lrs);
  else (points, [])."""
  if len(claim.lr_factors) < 2:
    return list(points), []
  first = [p for p in points if seed_of_point(p.name) == 0]
  return first, [p for p in points if seed_of_point(p.name) != 0]


def lr_start_points(first: list, claim: Claim) -> list:
  """The seed-0 points every setting runs: those at the claim's lr_start factors (all of them
  without an lr sweep or a start set)."""
  if len(claim.lr_factors) < 2 or not claim.lr_start:
    return list(first)
  start = lambda f: any(math.isclose(f, x, rel_tol=1e-5) for x in claim.lr_start)
  return [p for p in first if start(lr_factor_of_point(p.name))]


def lr_neighbours(first: list, runs: list[dict]) -> list:
  """The seed-0 points to run next on the ladder: per setting, the points just below and just
  above its pick (rules.best_lr over the finished `runs`) that have neither finished nor
  diverged (a diverged run counts as worse than any finished one); where every lr run so far
  diverged, the point just below the lowest. None once every pick is bracketed by two worse
  lrs or sits at the ladder's end."""
  finished = [r for r in runs if r["summary"]]
  _, picked = rules.best_lr(finished)
  done = {r["name"] for r in finished} | {r["name"] for r in runs if r.get("diverged")}
  ladders: dict[str, list] = {}
  for p in first:
    ladders.setdefault(rules.setting_of(p.name), []).append(p)
  wanted = []
  for setting, ladder in ladders.items():
    lrs = [learning_rate(p.cfg) or math.nan for p in ladder]
    if not all(map(math.isfinite, lrs)):
      continue
    order = sorted(range(len(ladder)), key=lambda i: lrs[i])  # ladder positions by lr
    pick = picked.get(setting)
    if pick is not None:
      at = [j for j, i in enumerate(order) if math.isclose(lrs[i], pick, rel_tol=1e-9)]
      steps: tuple[int, ...] = (at[0] - 1, at[0] + 1) if at else ()
    else:  # no finished run: below the lowest lr that diverged, if any did
      tried = [j for j, i in enumerate(order) if ladder[i].name in done]
      steps = (tried[0] - 1,) if tried else ()
    for j in steps:
      if 0 <= j < len(order) and ladder[order[j]].name not in done:
        wanted.append(ladder[order[j]])
  return wanted


def at_picked_lrs(points: list, picked: dict[str, float]) -> list:
  """The points at the lr picked for their setting ({setting: lr}, rules.best_lr); a setting
  with no pick yet (seed 0 has not finished at any lr) keeps none."""
  kept = []
  for p in points:
    lr, pick = learning_rate(p.cfg), picked.get(rules.setting_of(p.name))
    if lr is not None and pick is not None and math.isclose(lr, pick, rel_tol=1e-9):
      kept.append(p)
  return kept


def planned_runs(points: list, claim: Claim, sweep_dir: pathlib.Path | None = None) -> int:
  """How many of the points run: with an lr sweep, the seed-0 points at the start lrs, those
  of the rest of the ladder that have a run directory in sweep_dir (the walk ran them), and
  of the other seeds one lr's worth."""
  first, rest = lr_stages(points, claim)
  start = {p.name for p in lr_start_points(first, claim)}
  walked = [p for p in first if p.name not in start and sweep_dir and (sweep_dir / p.name).is_dir()]
  return len(start) + len(walked) + len(rest) // max(len(claim.lr_factors), 1)
