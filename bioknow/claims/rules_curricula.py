"""The curricula claims as measurements on runs, in the shape of rules.py: the power-law
exponent alpha (claim 3) and the warm-up (claim 4).

Population, budget and alpha are read from each run's config (data.n_individuals,
train.n_steps, schedule.alpha), not from its name, so a rule works on whatever grid the sweep
yields. Every rule scores only the runs at their setting's best lr (rules.best_lr).
"""

import functools
import math
from collections.abc import Iterable

from bioknow.claims import attributes as A
from bioknow.claims.rules import (
  HOLDS,
  NO_RUNS,
  NOT_SHOWN,
  WEAK,
  Score,
  best_lr,
  finished,
  lrs_of,
  seed_of,
  spread,
)
from bioknow.figures import curricula
from bioknow.figures import runs as R


def _mean(values: Iterable[float]) -> float:
  return spread(list(values))["mean"]


# Power-law alpha (claim 3) ---------------------------------------------------------------------


def _shortest(by_alpha: dict[float, list[dict]], bounds) -> tuple[list, list, list]:
  """Per alpha, the mean latest and earliest plateau end over its runs (bounds(run) ->
  (earliest, latest)), and the alphas with the shortest mean end or an earliest mean end
  before it (_alpha_row)."""
  plateau = [_mean(bounds(r)[1] for r in g) for g in by_alpha.values()]
  earliest = [_mean(bounds(r)[0] for r in g) for g in by_alpha.values()]
  low = min((p for p in plateau if math.isfinite(p)), default=math.nan)
  shortest = [a for a, p, e in zip(by_alpha, plateau, earliest) if p == low or e < low]
  return plateau, earliest, shortest


def _alpha_row(population, budget, runs: list[dict]) -> dict:
  """One (population, budget): per alpha, the mean plateau end and final attribute loss over
  seeds; the alphas with the shortest plateau, and every alpha the evaluations cannot tell
  from it (its mean earliest possible plateau end, R.plateau_end_bounds, lies before the
  shortest mean end: evaluations 100-200 steps apart cannot rank ends 50 steps apart); the
  alpha with the lowest loss. Means are over the seeds every alpha has, so that a partly run
  grid compares like with like. The same per attribute, from each attribute's own plateau
  end (attributes.plateau_end_bounds)."""
  by_alpha = dict(sorted(R.group_by(runs, lambda r: float(R.param(r, "alpha"))).items()))
  common = set.intersection(*({seed_of(r) for r in g} for g in by_alpha.values()))
  by_alpha = {a: [r for r in g if seed_of(r) in common] for a, g in by_alpha.items()}
  plateau, earliest, shortest = _shortest(by_alpha, R.plateau_end_bounds)
  loss = [_mean(R.final(r, "attribute_loss") for r in g) for g in by_alpha.values()]
  alphas = list(by_alpha)
  by_attribute = {}
  for name in A.names(runs):
    ends, _, at = _shortest(by_alpha, functools.partial(A.plateau_end_bounds, name=name))
    by_attribute[name] = {"plateau_end": ends, "shortest_plateau_alpha": at}
  lowest = [(x if math.isfinite(x) else math.inf, a) for a, x in zip(alphas, loss)]
  return {
    "population": population,
    "budget": budget,
    "alphas": alphas,
    "plateau_end": plateau,
    "plateau_end_earliest": earliest,
    "final_loss": loss,
    "seeds": [len(g) for g in by_alpha.values()],
    "shortest_plateau_alpha": shortest,
    "best_loss_alpha": min(lowest)[1],
    "by_attribute": by_attribute,
  }


def _inside(alphas: list[float] | None) -> bool:
  """Whether there are shortest-plateau alphas and all lie strictly inside (0, 1)."""
  return alphas is not None and len(alphas) > 0 and all(0 < a < 1 for a in alphas)


def _never_falls(rows: list[dict], along: str, across: str, sign: int) -> bool | None:
  """Whether sign x best-loss alpha never falls as `along` grows, at every value of `across`
  with two or more values of `along`; None where no such value exists (untested)."""
  tested = False
  for group in R.group_by(rows, lambda row: row[across]).values():
    group = sorted(group, key=lambda row: R.order(row[along]))
    if len(group) < 2:
      continue
    tested = True
    best = [sign * row["best_loss_alpha"] for row in group]
    if any(b < a for a, b in zip(best, best[1:])):
      return False
  return True if tested else None


def alpha(runs: list[dict]) -> Score:
  """Claim 3. Power-law runs at the best lr; per (population, budget) and alpha, the means
  over seeds of the plateau end step (the summary's plateau_end_step, else from the records;
  a plateau that never ends counts as the budget) and of the final attribute loss. Holds when
  at every (population, budget) with two or more alphas the alphas with the shortest mean
  plateau (with those the evaluations cannot tell from it: _alpha_row) all lie strictly
  inside (0, 1), and the alpha with the lowest mean final loss never decreases as the
  population grows (at each budget run at two or more populations) and never increases as
  the budget grows (at each population run at two or more budgets), both trends tested.
  Weak when the plateau part holds and a trend fails or the grid cannot test it (one
  population or one budget), or when it holds at some regimes and at the others an alpha
  inside (0, 1) ties with one outside it; does not hold otherwise (an alpha outside (0, 1)
  is the shortest, told apart from every alpha inside, at some regime, or no regime shows
  the claim). Beside the verdict, per attribute: whether its own shortest plateau lies
  inside (0, 1) at every regime."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  power = [r for r in runs if R.schedule_kind(r) == "powerlaw"]
  rows = [
    _alpha_row(population, budget, group)
    for (population, budget), group in sorted(
      R.group_by(power, curricula.regime_of).items(),
      key=lambda item: (R.order(item[0][1]), R.order(item[0][0])),
    )
  ]
  # A regime counts with two or more alphas sharing at least one seed.
  rows = [row for row in rows if len(row["alphas"]) >= 2 and all(row["seeds"])]
  if not rows:
    return Score(NO_RUNS, "no population and budget with two or more finished alphas", {})
  inner = [[0 < a < 1 for a in row["shortest_plateau_alpha"]] for row in rows]
  inside = all(row and all(row) for row in inner)
  # Some regimes inside, the others ties between an alpha inside (0, 1) and one outside.
  unresolved = not inside and all(any(row) for row in inner) and any(all(row) for row in inner)
  with_population = _never_falls(rows, "population", "budget", +1)
  with_budget = _never_falls(rows, "budget", "population", -1)
  values = {
    "by_regime": rows,
    "best_alpha_grows_with_population": with_population,
    "best_alpha_shrinks_with_budget": with_budget,
    "lr": lrs_of(lrs, power),
  }
  if inside:
    verdict = HOLDS if with_population and with_budget else WEAK
  else:
    verdict = WEAK if unresolved else NOT_SHOWN
  parts = []
  for row in rows:
    shortest = "/".join(f"{a:g}" for a in row["shortest_plateau_alpha"]) or "none"
    if len(row["shortest_plateau_alpha"]) > 1:
      shortest += ", not told apart by the evaluations,"
    ends = ", ".join(f"{a:g}: {p:.0f}" for a, p in zip(row["alphas"], row["plateau_end"]))
    parts.append(
      f"N={R.fmt_count(row['population'])}, {R.fmt_count(row['budget'])} steps: plateau "
      f"shortest at alpha {shortest} (end by alpha {ends}), final loss lowest at "
      f"{row['best_loss_alpha']:g}"
    )
  values["attribute_holds"] = held = {
    name: all(
      _inside(row["by_attribute"].get(name, {}).get("shortest_plateau_alpha")) for row in rows
    )
    for name in A.names(power)
  }
  said = {True: "yes", False: "no", None: "untested"}
  parts.append(
    f"best-loss alpha grows with N: {said[with_population]}, shrinks with the budget: "
    f"{said[with_budget]}; plateau shortest inside (0, 1) at every regime, {A.clause(held)}"
  )
  return Score(verdict, "; ".join(parts), values)
