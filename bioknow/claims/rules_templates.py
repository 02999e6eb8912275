"""The template-diversity claim (Fig. A) as a measurement on runs, in the shape of rules.py.

Template count and sentence order are read from each run's config (data.n_templates_train,
data.shuffle_sentences), not from its name; the rule scores only the runs at their
setting's best lr (rules.best_lr).
"""

import math

from bioknow.claims import attributes as A
from bioknow.claims.rules import (
  HOLDS,
  NO_RUNS,
  NOT_SHOWN,
  WEAK,
  Score,
  best_lr,
  finished,
  fmt,
  lrs_of,
  spread,
)
from bioknow.figures import runs as R

# Templates: the final evaluation-template loss minus the training-template loss, over the
# baseline, must be at least ONE_TEMPLATE_GAP at the fewest templates (memorised sentences:
# the paper's is about one baseline) and at most MANY_TEMPLATES_GAP at the most templates.
ONE_TEMPLATE_GAP = 0.5
MANY_TEMPLATES_GAP = 0.1


def _order(run: dict) -> str:
  """'shuffled' or 'fixed': the run's sentence order (shuffled unless its config says not)."""
  return "fixed" if R.param(run, "shuffle_sentences") is False else "shuffled"


def _by_count(runs: list[dict], measure) -> dict[str, dict[int, dict]]:
  """{sentence order: {training templates per attribute: spread of measure(run)}}."""
  table: dict[str, dict[int, dict]] = {}
  for (order, count), group in R.group_by(
    runs, lambda r: (_order(r), int(R.param(r, "n_templates_train")))
  ).items():
    table.setdefault(order, {})[count] = spread([measure(r) for r in group])
  return {order: dict(sorted(by.items())) for order, by in sorted(table.items(), reverse=True)}


def templates(runs: list[dict]) -> Score:
  """Fig. A. Per run at the best lr, at the end: the gap between the attribute loss on
  evaluation templates and on training templates, over the baseline. Holds when, with
  shuffled sentences, every seed's gap at the fewest training templates (one in the sweep)
  is at least ONE_TEMPLATE_GAP and every seed's gap at the most templates is at most
  MANY_TEMPLATES_GAP; weak when only the means over seeds do; does not hold otherwise. The
  fixed sentence order is measured beside it (final evaluation-template loss over the
  baseline, fixed minus shuffled) but does not enter the verdict. Beside the verdict, per
  attribute: the shuffled gap over that attribute's own baseline at the fewest and the most
  templates, and whether every seed meets both margins there."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  runs = [r for r in runs if math.isfinite(R.final(r, "train_templates_attribute_loss"))]

  def gap(r: dict) -> float:
    return (R.final(r, "attribute_loss") - R.final(r, "train_templates_attribute_loss")) / (
      R.baseline(r)
    )

  gaps = _by_count(runs, gap)
  shuffled = [r for r in runs if _order(r) == "shuffled"]
  counts = sorted({int(R.param(r, "n_templates_train")) for r in shuffled})
  if len(counts) < 2:
    return Score(NO_RUNS, "no shuffled runs at two or more template counts", {})
  few, many = counts[0], counts[-1]
  few_gaps = [gap(r) for r in shuffled if R.param(r, "n_templates_train") == few]
  many_gaps = [gap(r) for r in shuffled if R.param(r, "n_templates_train") == many]
  loss = _by_count(runs, lambda r: R.final(r, "attribute_loss") / R.baseline(r))
  values = {
    "gap_over_baseline": {o: {str(n): s for n, s in by.items()} for o, by in gaps.items()},
    "eval_loss_over_baseline": {o: {str(n): s for n, s in by.items()} for o, by in loss.items()},
    "fewest_templates": few,
    "most_templates": many,
    "lr": lrs_of(lrs, runs),
  }
  every = all(g >= ONE_TEMPLATE_GAP for g in few_gaps) and all(
    g <= MANY_TEMPLATES_GAP for g in many_gaps
  )
  means = (
    gaps["shuffled"][few]["mean"] >= ONE_TEMPLATE_GAP
    and gaps["shuffled"][many]["mean"] <= MANY_TEMPLATES_GAP
  )
  verdict = HOLDS if every else WEAK if means else NOT_SHOWN

  def attribute_gap(r: dict, a: str) -> float:
    return A.over_baseline(r, "attribute_loss", a) - A.over_baseline(
      r, "train_templates_attribute_loss", a
    )

  few_by = A.view([r for r in shuffled if R.param(r, "n_templates_train") == few], attribute_gap)
  many_by = A.view([r for r in shuffled if R.param(r, "n_templates_train") == many], attribute_gap)
  values["gap_over_baseline_by_attribute"] = {
    a: {str(few): spread(few_by.get(a, [])), str(many): spread(many_by.get(a, []))}
    for a in {**few_by, **many_by}
  }
  values["attribute_holds"] = held = {
    a: all(g >= ONE_TEMPLATE_GAP for g in few_by.get(a, [math.nan]))
    and all(g <= MANY_TEMPLATES_GAP for g in many_by.get(a, [math.nan]))
    for a in {**few_by, **many_by}
  }
  fixed_minus_shuffled = ", ".join(
    f"{n}: {s['mean'] - loss['shuffled'][n]['mean']:+.2f}"
    for n, s in loss.get("fixed", {}).items()
    if n in loss["shuffled"]
  )
  measured = (
    f"(evaluation - training-template loss) / baseline, shuffled: {few} template(s) "
    f"{fmt(gaps['shuffled'][few], 2)}, {many} templates {fmt(gaps['shuffled'][many], 2)}; "
    f"final loss / baseline, fixed order minus shuffled, by templates: "
    f"{fixed_minus_shuffled or 'no fixed-order run'}; both margins in every seed, "
    f"{A.clause(held)}"
  )
  return Score(verdict, measured, values)
