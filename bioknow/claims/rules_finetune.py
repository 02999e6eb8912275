"""The fine-tuning claims in the shape of rules.py: claim 6 (`finetune`, the language model)
and claim 7 (`toy_memory`, the toy associative memory).

Forgetting is accuracy lost. Settings (sizes, replay weights) differ only when their means
differ by more than both margins, each ACCURACY_RESOLUTION or half the spread over seeds, the
larger (`compare`); closer, they tie, and a tie never holds. Each part of a rule holds, is not
shown (a tie, too few settings, nothing recorded) or is contradicted (measured beyond the
margins opposite to the paper). A rule holds when every part holds; is contradicted when any
part is (each part is a sentence of the paper's: all are central); is weak when all parts but
one hold and every part ran (a part whose runs the grid lacks, such as the quick check's rare
seen people, could go either way); is not shown otherwise."""

import fractions
import math
from typing import NamedTuple

import numpy as np

from bioknow.analysis import runs as R
from bioknow.claims import attributes as A
from bioknow.claims.rules import (
  CONTRADICTED,
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

# Accuracy differences below this are not read, however well seeds agree: about one binomial
# standard error over the ~2,000 predictions the small sweeps evaluate an accuracy on.
ACCURACY_RESOLUTION = 0.01
# "A large portion of the pre-training knowledge is erased": each run without replay loses this
# share of its accuracy or more (small sweeps: ~0.7 of ~0.9; toy, 0.36-0.64 of 1): not drift.
LARGE_SHARE = 0.25
# "Rapid collapse ... (first few hundred steps)" of 4k, "on the order of a hundred steps" (F.3):
# half of the drop within this fraction of the run (paper: under 10%; small sweep: 5-8%, step
# 20-30 of 400). A linear decline reaches half at 1/2: a collapse is 4x as front-loaded.
FAST_FRACTION = 1 / 8
# "... with very little corresponding acquisition of new knowledge": when half of the drop is
# done, the new people have gained less than this share of their gain in the run; learning on
# a longer time-scale than forgetting (Appendix F.3), not old facts traded one for one.
LEARNED_AT_HALF_DROP = 0.5
# "A larger number of fine-tuning individuals intensifies this effect": the most new items must
# forget more than the fewest beyond the seeds' spread and by at least this much, so forgetting
# that has saturated (all erased at every size, creeping up by 0.03) is not growth.
GROWTH_MARGIN = 0.05
# Sizes and replay weights a trend is read over: two points make a difference, not a trend.
MIN_SIZES, MIN_WEIGHTS = 3, 3
# "Partially mitigates": the heaviest replay keeps at least this share of the forgetting away
# (against no replay at the same size, seed by seed); fine-tuning seen rare people costs the
# others at most 1 - KEPT_AWAY of what the fewest new people cost ("no such degradation").
KEPT_AWAY = 0.5
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}


class Part(NamedTuple):
  state: str  # HOLDS, NOT_SHOWN or CONTRADICTED
  why: str  # the clause that decided it
  ran: bool = True  # False: the grid lacks the runs the part reads (it cannot go either way)


def margin(s: dict) -> float:
  """How far a setting's mean may sit from the truth: ACCURACY_RESOLUTION or half its range."""
  return max(ACCURACY_RESOLUTION, (s["max"] - s["min"]) / 2)


def compare(a: dict, b: dict) -> int:
  """+1 when spread a's mean exceeds b's by more than both margins, -1 when it falls short by
  more, 0 for a tie or when either has no value."""
  if not (a["n"] and b["n"]):
    return 0
  difference = a["mean"] - b["mean"]
  if abs(difference) <= margin(a) + margin(b):
    return 0
  return 1 if difference > 0 else -1


def weight_text(w: float) -> str:
  return str(fractions.Fraction(w).limit_denominator(1_000)) if w else "none"


def listing(by: dict) -> str:
  """'key: mean (min-max, n seeds), ...' of {key: spread}; 'none run' when empty."""
  return ", ".join(f"{k}: {fmt(s, 2)}" for k, s in by.items()) or "none run"


def plain_by_size(runs: list[dict], size: str) -> dict[int, list[dict]]:
  """The runs without replay on new items, grouped by their `size` new items, fewest first."""
  plain = [r for r in runs if not R.param(r, "weight_replay") and (R.param(r, size) or 0) > 0]
  return dict(sorted(R.group_by(plain, lambda r: int(R.param(r, size))).items()))


def growth(by_size: dict, items: str) -> Part:
  """Forgetting without replay ({size: spread}, fewest first) grows with the new `items`.
  Holds over at least MIN_SIZES sizes when the most forget more than the fewest beyond both
  margins and by GROWTH_MARGIN, and no larger size forgets less than a smaller one beyond them
  (neighbours may tie); contradicted when the most forget less than the fewest beyond them."""
  sizes = [n for n, s in by_size.items() if s["n"]]
  if len(sizes) < 2:
    return Part(NOT_SHOWN, f"forgetting measured at {len(sizes)} number of new {items}", False)
  fewest, most = by_size[sizes[0]], by_size[sizes[-1]]
  gain, pair = most["mean"] - fewest["mean"], f"{sizes[-1]} against {sizes[0]} new {items}"
  if compare(most, fewest) < 0:
    return Part(CONTRADICTED, f"{pair} forget {gain:+.3f}, less beyond the seeds' spread")
  if len(sizes) < MIN_SIZES:
    return Part(NOT_SHOWN, f"{len(sizes)} numbers of new {items} run ({MIN_SIZES} needed)", False)
  for i, small in enumerate(sizes):
    for large in sizes[i + 1 :]:
      if compare(by_size[large], by_size[small]) < 0:
        return Part(NOT_SHOWN, f"{large} new {items} forget less than {small} beyond spread")
  if compare(most, fewest) == 0:
    return Part(NOT_SHOWN, f"{pair} forget {gain:+.3f}, a tie within the seeds' spread")
  if gain < GROWTH_MARGIN:
    return Part(NOT_SHOWN, f"{pair} forget {gain:+.3f}, under {GROWTH_MARGIN:g}")
  return Part(HOLDS, f"{pair} forget {gain:+.3f}, beyond the seeds' spread")


def graded_replay(runs: list[dict], size: str, forgetting) -> tuple[Part, dict]:
  """Replay at the size run at the most weights, heaviest first, then no replay (weight 0).
  Holds over at least MIN_WEIGHTS weights when lighter replay forgets no less (no heavier
  weight, or none, forgets more than a lighter one beyond the margins), some lighter weight
  forgets more than a heavier one beyond them, and the heaviest keeps KEPT_AWAY of the
  forgetting away in every seed (against no replay at the same seed, else the mean).
  Contradicted when the heaviest forgets more than the lightest or no replay beyond them."""
  replayed = [r for r in runs if R.param(r, "weight_replay")]
  by_n = R.group_by(replayed, lambda r: int(R.param(r, size)))
  n = max(by_n, key=lambda k: len({R.param(r, "weight_replay") for r in by_n[k]}), default=0)
  groups = R.group_by(by_n.get(n, []), lambda r: float(R.param(r, "weight_replay")))
  by_weight = {w: spread([forgetting(r) for r in groups[w]]) for w in sorted(groups)[::-1]}
  plain = [r for r in runs if not R.param(r, "weight_replay") and R.param(r, size) == n]
  none, weights = spread([forgetting(r) for r in plain]), list(by_weight)
  saved = []
  for r in groups[weights[0]] if weights else []:
    twins = [forgetting(p) for p in plain if seed_of(p) == seed_of(r)] or [none["mean"]]
    saved.append(1 - forgetting(r) / twins[0] if twins[0] > ACCURACY_RESOLUTION else math.nan)
  values = {
    "replay_n_new": n,
    "forgetting_by_replay_weight": {weight_text(w): s for w, s in by_weight.items()},
    "forgetting_without_replay": none,
    "replay_weight": weights[0] if weights else None,
    "share_saved_by_replay": spread(saved),
  }
  if not weights or not none["n"]:
    return Part(NOT_SHOWN, "no replay run with a run without replay beside it", False), values
  if none["mean"] <= ACCURACY_RESOLUTION:
    return Part(NOT_SHOWN, "no forgetting without replay for replay to keep away"), values
  levels = by_weight | {0.0: none}
  heavy, light = weights[0], weights[-1]
  for other in (light, 0.0):
    if compare(levels[heavy], levels[other]) > 0:
      clause = f"weight {weight_text(heavy)} forgets more than {weight_text(other)}"
      return Part(CONTRADICTED, clause + " beyond spread"), values
  if len(weights) < MIN_WEIGHTS:
    clause = f"replay at {len(weights)} weight(s), {MIN_WEIGHTS} needed"
    return Part(NOT_SHOWN, clause, False), values
  ladder = [*weights, 0.0]
  for i, a in enumerate(ladder):
    for b in ladder[i + 1 :]:
      if compare(levels[a], levels[b]) > 0:
        clause = f"weight {weight_text(a)} forgets more than the lighter {weight_text(b)}"
        return Part(NOT_SHOWN, clause + " beyond spread"), values
  pairs = [(a, b) for i, a in enumerate(weights) for b in weights[i + 1 :]]
  if not any(compare(by_weight[b], by_weight[a]) > 0 for a, b in pairs):
    clause = f"weight {weight_text(light)} keeps away no less than weight {weight_text(heavy)}"
    return Part(NOT_SHOWN, clause), values
  worst = min(saved, default=math.nan)
  if not all(x >= KEPT_AWAY for x in saved):
    clause = f"weight {weight_text(heavy)} keeps {worst:.2f} away in its worst seed"
    return Part(NOT_SHOWN, clause + f" (under {KEPT_AWAY:g})"), values
  clause = f"lighter replay forgets more; weight {weight_text(heavy)} keeps >= {worst:.2f} away"
  return Part(HOLDS, clause), values


def verdict(parts: dict[str, Part]) -> tuple[str, str]:
  """(verdict, why) from the parts, as the module docstring says."""
  against = [f"{k}: {p.why}" for k, p in parts.items() if p.state == CONTRADICTED]
  if against:
    return CONTRADICTED, "; ".join(against)
  failing = [f"{k}: {p.why}" for k, p in parts.items() if p.state != HOLDS]
  if not failing:
    return HOLDS, f"all {NUMBER_WORDS.get(len(parts), len(parts))} parts hold"
  weak = len(failing) == 1 and all(p.ran for p in parts.values())
  return WEAK if weak else NOT_SHOWN, "; ".join(failing)


def large_loss(lost: list[float], before: list[float], net: list[float], items: str) -> Part:
  """Every run without replay loses (`lost`) at least LARGE_SHARE of the accuracy it had
  (`before`); contradicted when every one ends more accurate than it started (before minus
  end, `net`, below -ACCURACY_RESOLUTION) without a drop beyond it on the way."""
  if not lost:
    return Part(NOT_SHOWN, f"no run on new {items} without replay", False)
  rose = [n < -ACCURACY_RESOLUTION and x <= ACCURACY_RESOLUTION for x, n in zip(lost, net)]
  if all(rose):
    return Part(CONTRADICTED, f"old accuracy rises while fine-tuning on new {items}")
  shares = [x / b if b > 0 else math.nan for x, b in zip(lost, before)]
  if not all(s >= LARGE_SHARE for s in shares):
    return Part(NOT_SHOWN, f"a run loses {min(shares):.2f} of its old accuracy ({LARGE_SHARE:g})")
  return Part(HOLDS, f"every run loses >= {min(shares):.2f} of its old accuracy")


def toy_memory(runs: list[dict]) -> Score:
  """Claim 7. Tests Section 4.2's "With such a model, which has no attention layers at all, we
  are able to reproduce the main qualitative findings of the experiments above" (Appendix F.4:
  "Mirroring Section 4, we conduct two experiments": new pairs without replay, and with replay).
  Forgetting = old-pair accuracy before fine-tuning minus at its end. Three parts: (forgets)
  every run without replay loses at least LARGE_SHARE of its old-pair accuracy; (grows) that
  forgetting grows with the number of new pairs, beyond the seeds' spread (`growth`); (replay)
  replay grades with its weight over at least MIN_WEIGHTS weights and the heaviest keeps
  KEPT_AWAY of the forgetting away (`graded_replay`). Rejects: no forgetting, or a few points of
  drift; forgetting that saturates or whose growth is within the seeds' spread; forgetting that
  shrinks with more pairs (contradicted); replay that protects equally at every weight, or
  run at one or two weights only; replay that makes forgetting worse (contradicted)."""
  runs = finished(runs, "toy_memory")
  if not runs:
    return Score(NO_RUNS, "no finished run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain/accuracy_before_finetune"] - s["pretrain/accuracy"]

  by_n = plain_by_size(runs, "n_new")
  drops = {n: spread([forgetting(r) for r in g]) for n, g in by_n.items()}
  plain = [r for g in by_n.values() for r in g]
  before = [r["summary"]["pretrain/accuracy_before_finetune"] for r in plain]
  lost = [forgetting(r) for r in plain]  # at the end: negative where old accuracy rose
  replay, values = graded_replay(runs, "n_new", forgetting)
  forgets = large_loss(lost, before, lost, "pairs")
  parts = {"forgets": forgets, "grows": growth(drops, "pairs"), "replay": replay}
  values |= {
    "forgetting_by_n_new": {str(n): d for n, d in drops.items()},
    "parts": {k: p.state for k, p in parts.items()},
  }
  by_weight = listing(values["forgetting_by_replay_weight"])
  measured = (
    f"old-pair accuracy lost by new pairs {listing(drops)}; with replay at "
    f"{values['replay_n_new']} new pairs, by weight {by_weight}"
  )
  decided, why = verdict(parts)
  return Score(decided, measured, values, why)


def half_drop_step(run: dict) -> float:
  """The first evaluated fine-tuning step at which pre-training accuracy has lost half of its
  drop (before fine-tuning minus its lowest value); NaN without that series or without a drop."""
  s = run["summary"]
  before, low = s["pretrain_accuracy_before_finetune"], s["min_pretrain_accuracy"]
  steps, accuracy = R.series(run["records"], "pretrain/attribute_accuracy")
  halfway = before - 0.5 * (before - low) + 1e-9  # an accuracy exactly halfway has reached it
  reached = steps[accuracy <= halfway] if before > low else steps[:0]
  return float(reached[0]) if len(reached) else math.nan


def learned_share_at(run: dict, step: float) -> float:
  """The share of its gain over the run that the new people's accuracy has made by `step`
  (0 when they gain nothing beyond ACCURACY_RESOLUTION); NaN without that series."""
  steps, accuracy = R.series(run["records"], "finetune/attribute_accuracy")
  if not len(accuracy) or not math.isfinite(step):
    return math.nan
  gain = accuracy.max() - accuracy[0]
  if gain <= ACCURACY_RESOLUTION:
    return 0.0
  return float((np.interp(step, steps, accuracy) - accuracy[0]) / gain)


def kept_out_forgetting(run: dict) -> float:
  """Accuracy lost by the people a run on seen people keeps out of fine-tuning: the largest,
  over the groups (eval_groups) outside finetune_ids, of NAME/attribute_accuracy_start minus
  _min (summary). NaN without such a group: the default ones both hold fine-tuned people."""
  ids, s = R.param(run, "finetune_ids"), run["summary"]
  lost = [
    s[f"{name}/attribute_accuracy_start"] - s[f"{name}/attribute_accuracy_min"]
    for name, start, stop in R.param(run, "eval_groups") or []
    if ids and (stop <= ids[0] or start >= ids[1]) and f"{name}/attribute_accuracy_min" in s
  ]
  return max(lost, default=math.nan)


def rare_seen(seen: list[dict], fewest: dict, n_fewest: int) -> tuple[Part, dict]:
  """Fine-tuning rare seen people costs the people it keeps out (kept_out_forgetting) less
  than the fewest new people cost, beyond the margins, and at most 1 - KEPT_AWAY of it in
  every seed; contradicted when it costs more beyond the margins."""
  lost = spread([kept_out_forgetting(r) for r in seen])
  if not seen:
    return Part(NOT_SHOWN, "no run on seen people", False), lost
  if not lost["n"]:
    return Part(NOT_SHOWN, "no run on seen people reports a group it keeps out", False), lost
  if not fewest["n"]:
    return Part(NOT_SHOWN, "no run on new people to compare with", False), lost
  costs = f"seen people cost those kept out {lost['max']:.2f}, {n_fewest} new people"
  costs += f" cost {fewest['mean']:.2f}"
  if compare(lost, fewest) > 0:
    return Part(CONTRADICTED, costs), lost
  if compare(fewest, lost) > 0 and lost["max"] <= (1 - KEPT_AWAY) * fewest["mean"]:
    return Part(HOLDS, costs), lost
  return Part(NOT_SHOWN, costs + f" (at most {1 - KEPT_AWAY:g} of it beyond spread)"), lost


def collapse(plain: list[dict]) -> tuple[Part, dict]:
  """Every run on new people without replay loses at least LARGE_SHARE of its pre-training
  accuracy (large_loss), half of it within FAST_FRACTION of its fine-tuning steps (read from
  its config), by when its new people have made less than LEARNED_AT_HALF_DROP of their gain."""
  half = [half_drop_step(r) for r in plain]
  lengths = [R.n_steps(r) or r["summary"].get("step") for r in plain]
  of_run = [h / n if R.is_number(n) and n > 0 else math.nan for h, n in zip(half, lengths)]
  learned = [learned_share_at(r, h) for r, h in zip(plain, half)]
  keys = ("half_forgotten_by_step", "half_forgotten_fraction", "learned_at_half_drop")
  values = {k: spread(v) for k, v in zip(keys, (half, of_run, learned))}
  before = [r["summary"]["pretrain_accuracy_before_finetune"] for r in plain]
  lost = [b - r["summary"]["min_pretrain_accuracy"] for b, r in zip(before, plain)]
  net = [b - R.final(r, "pretrain/attribute_accuracy") for b, r in zip(before, plain)]
  large = large_loss(lost, before, net, "people")
  if large.state != HOLDS:
    return large, values
  if not all(f <= FAST_FRACTION for f in of_run):
    when = "never" if any(map(math.isnan, of_run)) else f"by {max(of_run):.0%} of the steps"
    return Part(NOT_SHOWN, f"half of the drop {when}, not within {FAST_FRACTION:.1%}"), values
  if any(map(math.isnan, learned)):
    return Part(NOT_SHOWN, "the new people's accuracy is not recorded"), values
  clause = f"half of the drop by {max(of_run):.0%} of the steps, new people {max(learned):.2f}"
  if not all(x < LEARNED_AT_HALF_DROP for x in learned):
    return Part(NOT_SHOWN, f"{clause} learned: as fast as forgotten"), values
  return Part(HOLDS, clause + " learned by then"), values


def attribute_forgetting(run: dict, name: str) -> float:
  """One attribute's forgetting, measured as the summary's is for all of them: its pre-training
  accuracy at the first evaluation (before fine-tuning) minus its lowest; NaN without it."""
  _, accuracy = R.series(run["records"], f"pretrain/attribute_accuracy/{name}")
  if not len(accuracy):
    _, accuracy = R.series(run["records"], f"attribute_accuracy/{name}")
  return float(accuracy[0] - accuracy.min()) if len(accuracy) else math.nan


def finetune(runs: list[dict]) -> Score:
  """Claim 6. Tests Section 4.2: "We observe a rapid collapse in performance on pre-training
  data during the initial stages of fine-tuning (first few hundred steps), with very little
  corresponding acquisition of new knowledge. A larger number of fine-tuning individuals
  intensifies this effect. [...] Incorporating replay data about pre-training individuals in
  the fine-tuning set partially mitigates the initial collapse [...]. Finally, we do not
  observe such degradation when fine-tuning on subsets of the pre-training data."
  Forgetting = pre-training accuracy before fine-tuning minus its lowest value during it. Four
  parts: (collapse) large, within FAST_FRACTION of the run, faster than the new people are
  learned (`collapse`); (grows) with the number of new people (`growth`); (replay)
  `graded_replay`; (rare) the celebrities kept out of fine-tuning on the rare people lose
  little, read from their own group, never the whole population's (`rare_seen`). Per
  attribute, beside the verdict: forgetting by size, and whether it grows as (grows) asks.
  Rejects: no forgetting, or a few points of drift; slow, steady (linear) forgetting; new
  people learned as fast as old ones are forgotten; growth within the seeds' spread, or
  saturated; forgetting that shrinks with more new people (contradicted); replay that does not
  grade with its weight, or run at one or two weights; rare seen fine-tuning that erases the
  people it keeps out while the whole population's accuracy rises (contradicted)."""
  runs = finished(runs, "finetune")
  if not runs:
    return Score(NO_RUNS, "no finished fine-tuning run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain_accuracy_before_finetune"] - s["min_pretrain_accuracy"]

  new = [r for r in runs if (R.param(r, "n_finetune") or 0) > 0]
  seen = [r for r in runs if not R.param(r, "n_finetune") and not R.param(r, "weight_replay")]
  by_n = plain_by_size(new, "n_finetune")
  drops = {n: spread([forgetting(r) for r in g]) for n, g in by_n.items()}
  fewest = next(iter(drops), 0)
  collapsed, collapse_values = collapse([r for g in by_n.values() for r in g])
  replay, values = graded_replay(new, "n_finetune", forgetting)
  rare, rare_lost = rare_seen(seen, drops.get(fewest, spread([])), fewest)
  parts = {"collapse": collapsed, "grows": growth(drops, "people"), "replay": replay, "rare": rare}
  values |= collapse_values | {
    "forgetting_by_n_new": {str(n): d for n, d in drops.items()},
    "rare_seen_forgetting": rare_lost,
    "parts": {k: p.state for k, p in parts.items()},
  }
  by_attribute: dict[str, dict[str, dict]] = {}
  for n, group in by_n.items():
    for a, v in A.view(group, attribute_forgetting).items():
      by_attribute.setdefault(a, {})[str(n)] = spread(v)
  grows_in = {a: growth(by, "people").state == HOLDS for a, by in by_attribute.items()}
  values |= {
    "forgetting_by_n_new_by_attribute": by_attribute,
    # most minus fewest new people: the size effect before any tie rule
    "forgetting_most_minus_fewest_by_attribute": {
      a: list(by.values())[-1]["mean"] - list(by.values())[0]["mean"]
      for a, by in by_attribute.items()
    },
    "attribute_holds": grows_in,
  }
  half = values["half_forgotten_by_step"]
  half_text = f"{half['mean']:.0f} ({half['min']:.0f}-{half['max']:.0f}, {half['n']} runs)"
  measured = (
    f"pre-training accuracy lost by new people {listing(drops)}, half of it by step "
    f"{half_text if half['n'] else 'none'}; with replay at {values['replay_n_new']} new "
    f"people, by weight {listing(values['forgetting_by_replay_weight'])}; people kept out of "
    f"a seen-people run lose {fmt(rare_lost, 2)}; forgetting grows with new people "
    f"{A.clause(grows_in)}"
  )
  decided, why = verdict(parts)
  return Score(decided, measured, values, why)
