"""The power-law curriculum claim (claim 3) as a measurement on runs, in the shape of rules.py.

Population, budget and alpha are read from each run's config (data.n_individuals,
train.n_steps, schedule.alpha), not from its name, so a rule works on whatever grid the sweep
yields. Every rule scores only the runs at their setting's best lr (rules.best_lr).
"""

import math
from collections.abc import Iterable

from bioknow.analysis import ends as E
from bioknow.analysis import runs as R
from bioknow.claims import attributes as A
from bioknow.claims.rules import (
  CONTRADICTED,
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
from bioknow.claims.rules_templates import compare


def _mean(values: Iterable[float]) -> float:
  return spread(list(values))["mean"]


# Power-law alpha (claim 3) ---------------------------------------------------------------------

# The paper: "the optimal alpha minimizing plateau length lies between 0.6 and 0.8,
# irrespective of the population size" (PAPER.md restores the numbers).
PAPER_RANGE = (0.6, 0.8)


def _plateau_end(run: dict, attribute: str | None = None) -> E.End:
  """The run's interpolated plateau end; a plateau that never ends counts as the run's last
  evaluated step, not reached (a lower bound, so runs stuck on the plateau are ranked)."""
  return E.resolved_ends(run, attribute)[1] or E.End(math.inf, 0.0, False)


def _shortest(by_alpha: dict[float, list[dict]], attribute: str | None = None) -> tuple:
  """({alpha: Ends over its seeds}, the alphas tied with the shortest mean plateau)."""
  ends = {a: E.over_seeds([_plateau_end(r, attribute) for r in g]) for a, g in by_alpha.items()}
  return ends, E.tied_with_first(ends)


def _best_loss(by_alpha: dict[float, list[dict]]) -> tuple[float, list[float]]:
  """(the alpha with the lowest mean final attribute loss / baseline, the alphas not told
  apart from it). Two alphas differ only when their means differ by more than both margins,
  each the larger of NOISE (one evaluation's standard error, as a share of the baseline) and
  half the range over seeds (rules_templates.compare, the Ties rule of docs/claims.md):
  without the noise floor, identical seeds would make a 1e-4 difference real."""
  loss = {
    a: spread([R.final(r, "attribute_loss") / R.baseline(r) for r in g])
    for a, g in by_alpha.items()
  }
  finite = {a: s for a, s in loss.items() if math.isfinite(s["mean"])}
  if not finite:
    return math.nan, []
  best = min(finite, key=lambda a: finite[a]["mean"])
  tied = [a for a, s in finite.items() if compare(s, finite[best], E.NOISE) == 0]
  return best, tied


def _alpha_row(population, budget, runs: list[dict]) -> dict:
  """One (population, budget): per alpha, the plateau ends over seeds (analysis.ends: mean,
  resolution, spread) and the mean final attribute loss; the alphas tied with the shortest
  plateau; the best-loss alpha and those tied with it. Means are over the seeds every alpha
  has, so that a partly run grid compares like with like. The shortest plateau's alphas per
  attribute as well, from each attribute's own plateau end."""
  by_alpha = dict(sorted(R.group_by(runs, lambda r: float(R.param(r, "alpha"))).items()))
  common = set.intersection(*({seed_of(r) for r in g} for g in by_alpha.values()))
  by_alpha = {a: [r for r in g if seed_of(r) in common] for a, g in by_alpha.items()}
  ends, shortest = _shortest(by_alpha)
  best, best_tied = _best_loss(by_alpha)
  return {
    "population": population,
    "budget": budget,
    "alphas": list(by_alpha),
    "plateau_end": [e.mean for e in ends.values()],
    "plateau_end_resolution": [e.margin for e in ends.values()],
    "plateau_end_text": [e.text() for e in ends.values()],
    "final_loss": [_mean(R.final(r, "attribute_loss") for r in g) for g in by_alpha.values()],
    "seeds": [len(g) for g in by_alpha.values()],
    "shortest_plateau_alpha": shortest,
    "best_loss_alpha": best,
    "best_loss_alphas": best_tied,
    "by_attribute": {
      name: {"shortest_plateau_alpha": _shortest(by_alpha, name)[1]} for name in A.names(runs)
    },
  }


def _plateau_level(shortest: list[float]) -> str:
  """Where the shortest plateau lies: 'range' (every tied alpha in PAPER_RANGE), 'inside'
  (every tied alpha strictly inside (0, 1)), 'outside' (every tied alpha at 0 or >= 1: the
  opposite of the claim) or 'tie' (inside and outside alphas cannot be told apart)."""
  if not shortest:
    return "tie"
  if all(PAPER_RANGE[0] <= a <= PAPER_RANGE[1] for a in shortest):
    return "range"
  if all(0 < a < 1 for a in shortest):
    return "inside"
  return "outside" if not any(0 < a < 1 for a in shortest) else "tie"


def _trend(rows: list[dict], along: str, across: str, sign: int) -> str:
  """How sign x best-loss alpha moves as `along` grows, at each value of `across` run at two
  or more values of `along`: 'holds' (at least one real step the paper's way, none the other
  way), 'contradicted' (real steps only the other way), 'tie' (no real step), 'untested'. A
  step is real when every alpha tied with the best at one regime lies beyond every one at
  the next (_best_loss)."""
  up = down = tested = 0
  for group in R.group_by(rows, lambda row: row[across]).values():
    group = sorted(group, key=lambda row: R.order(row[along]))
    for a, b in zip(group, group[1:]):
      tested += 1
      before = [sign * x for x in a["best_loss_alphas"]]
      after = [sign * x for x in b["best_loss_alphas"]]
      up += bool(before and after) and min(after) > max(before)
      down += bool(before and after) and max(after) < min(before)
  if not tested:
    return "untested"
  return "holds" if up and not down else "contradicted" if down and not up else "tie"


def _range_part(levels: list[str]) -> str:
  """Part (a) from the regimes' levels: 'holds' (in PAPER_RANGE at every regime),
  'contradicted' (at alpha 0 or >= 1 at some regime, told apart from every alpha inside
  (0, 1)) or 'tie' (inside (0, 1) but not in the range, or tied, somewhere)."""
  if all(level == "range" for level in levels):
    return "holds"
  return "contradicted" if "outside" in levels else "tie"


def _alpha_verdict(parts: dict[str, str], levels: list[str]) -> tuple[str, str]:
  """(verdict, why) from the three parts ('holds', 'contradicted', 'tie' or 'untested'):
  contradicted when one goes the other way; holds when all three hold; weak when a strict
  majority hold and every part was tested (an untested part, such as the trends on a
  one-regime grid, could go either way); not shown otherwise."""
  tested = [p for p in parts.values() if p != "untested"]
  held = tested.count("holds")
  clause = (
    f"shortest plateau in {PAPER_RANGE} at {levels.count('range')} of {len(levels)} regimes "
    f"(inside (0, 1) at {levels.count('inside')} more, tied at {levels.count('tie')}); "
    f"best-loss alpha grows with N: {parts['grows_with_population']}, shrinks with the "
    f"budget: {parts['shrinks_with_budget']}"
  )
  if parts["range"] == "contradicted":
    return CONTRADICTED, "the shortest plateau lies at alpha 0 or >= 1 at some regime"
  if "contradicted" in tested:
    return CONTRADICTED, f"a best-loss trend goes the other way; {clause}"
  if held == len(parts):
    return HOLDS, f"shortest plateau in {PAPER_RANGE} at every regime; both trends real"
  count = f"{held} of {len(tested)} tested parts hold"
  untested = len(parts) - len(tested)
  if untested:
    count += f" ({untested} the grid cannot test)"
  return (WEAK if 2 * held > len(parts) and not untested else NOT_SHOWN), f"{count}: {clause}"


def alpha(runs: list[dict]) -> Score:
  """Claim 3. The paper: "the optimal alpha minimizing plateau length lies between 0.6 and
  0.8, irrespective of the population size"; "The distribution that optimizes the final
  amount of knowledge stored within the network weights should therefore become increasingly
  more imbalanced as the plateau takes a larger portion of training time, i.e., when the
  number of training steps decreases or when the number of individuals increases."

  Power-law runs at the best lr, per (population, budget): each alpha's plateau ends over
  seeds (analysis.ends: interpolated, with resolution), the alphas tied with the shortest
  (ends.compare: a difference within both resolutions and seed spreads is a tie), and the
  alphas tied with the lowest mean final attribute loss / baseline (_best_loss: a difference
  within both margins, each the larger of ends.NOISE, one evaluation's standard error, and
  half the seeds' range, is a tie). Parts: (a) the shortest plateau lies in PAPER_RANGE at
  every regime, beyond resolution and spread from every alpha outside it; (b) the best-loss
  alpha grows with the population and (c) shrinks with the budget, each with at least one
  real step and none the other way (_trend; a grid with one regime per budget, or per
  population, cannot test it). Contradicted when at some regime the shortest plateau lies at
  alpha 0 or >= 1, told apart from every alpha inside (0, 1), or a trend goes the other way
  only; holds when (a), (b) and (c) hold; weak when a strict majority hold and the grid
  tests every part (an untested part could go either way: the quick grid's one regime is at
  most not shown); not shown otherwise (_alpha_verdict). Beside the
  verdict, per attribute: whether its own shortest plateau lies inside (0, 1) at every
  regime.
  Rejects (tests/test_rules_curricula.py): a best alpha that never moves (not shown: only
  (a) holds); plateau ends the evaluations cannot tell apart; the shortest plateau at the
  uniform distribution; the shortest plateau at alpha 0.25, outside the paper's range; a
  trend made of ties; trends within the evaluation noise (a 1e-4 loss difference with
  identical seeds); trends a one-regime grid cannot test (never holds)."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  power = [r for r in runs if R.schedule_kind(r) == "powerlaw"]
  rows = [
    _alpha_row(population, budget, group)
    for (population, budget), group in sorted(
      R.group_by(power, R.regime_of).items(),
      key=lambda item: (R.order(item[0][1]), R.order(item[0][0])),
    )
  ]
  # A regime counts with two or more alphas sharing at least one seed.
  rows = [row for row in rows if len(row["alphas"]) >= 2 and all(row["seeds"])]
  if not rows:
    return Score(NO_RUNS, "no population and budget with two or more finished alphas", {})
  levels = [_plateau_level(row["shortest_plateau_alpha"]) for row in rows]
  with_population = _trend(rows, "population", "budget", +1)
  with_budget = _trend(rows, "budget", "population", -1)
  values = {
    "by_regime": rows,
    "plateau_level_by_regime": levels,
    "best_alpha_grows_with_population": with_population,
    "best_alpha_shrinks_with_budget": with_budget,
    "lr": lrs_of(lrs, power),
  }
  values["parts"] = parts = {
    "range": _range_part(levels),
    "grows_with_population": with_population,
    "shrinks_with_budget": with_budget,
  }
  verdict, why = _alpha_verdict(parts, levels)
  measured = []
  for row in rows:
    shortest = "/".join(f"{a:g}" for a in row["shortest_plateau_alpha"]) or "none"
    ends = ", ".join(f"{a:g}: {x}" for a, x in zip(row["alphas"], row["plateau_end_text"]))
    measured.append(
      f"N={R.fmt_count(row['population'])}, {R.fmt_count(row['budget'])} steps: plateau "
      f"shortest at alpha {shortest} (end by alpha {ends}), final loss lowest at "
      f"{'/'.join(f'{a:g}' for a in row['best_loss_alphas'])}"
    )
  values["attribute_holds"] = held = {
    name: all(
      _plateau_level(row["by_attribute"].get(name, {}).get("shortest_plateau_alpha", []))
      in ("range", "inside")
      for row in rows
    )
    for name in A.names(power)
  }
  measured.append(
    f"best-loss alpha grows with N: {with_population}, shrinks with the budget: "
    f"{with_budget}; plateau shortest inside (0, 1) at every regime, {A.clause(held)}"
  )
  return Score(verdict, "; ".join(measured), values, why)
