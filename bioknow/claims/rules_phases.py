"""Claim 1's phases and law and claim 5 (hallucinations) as measurements on runs: three_phases,
plateau_law and hallucination, each with the rule that gives its verdict (rules.Score, the
verdicts and the helpers they share are bioknow.claims.rules'). The thresholds are module
constants, each with its reason."""

import collections
import math

import numpy as np

from bioknow.analysis import ends as E
from bioknow.analysis import runs as R
from bioknow.claims import attributes as A
from bioknow.claims.rules import (
  CONTRADICTED,
  HOLDS,
  KNOWS_FRACTION,
  NO_RUNS,
  NOT_SHOWN,
  WEAK,
  Score,
  best_lr,
  finished,
  fmt,
  spread,
)

# Three phases: over the plateau (between the two ends) loss / baseline stays in the band the
# phase rules themselves allow there (at most FIRST_PHASE_FACTOR once the first phase has
# ended, at least PLATEAU_FACTOR until the plateau ends), widened by twice the evaluation
# noise; a narrower band would fail a plateau resting at 1.04 by construction (docs/claims.md).
PLATEAU_BAND = (E.PLATEAU_FACTOR - 2 * E.NOISE, E.FIRST_PHASE_FACTOR + 2 * E.NOISE)
# ... and it ends in a kink: the band alone admits a steady fall through the floor (gradual
# learning, no plateau). Knowledge must leave the floor (from PLATEAU_FACTOR down to
# KNOWS_FRACTION) at least KINK x as fast per step as the least-squares line over the plateau
# falls: a steady fall gives 1, one that slows as it goes less; the paper's plateau is a
# resting level and knowledge a sharp fall from it. The level may settle within the band
# (a value prior still being fitted, 1.05 -> 1.00): "at the no knowledge baseline" is the band.
KINK = 4.0
# Plateau law: the paper's sentence is "grows almost linearly"; the whole 95% interval of the
# fitted exponent k must lie in this range. 0.5, the square root, is where a law stops being
# closer to linear than to no growth at all. 1.1: the paper's fit is sub-linear, so a clearly
# super-linear law is against it, but "almost linearly" admits a law that is exactly linear,
# and the interval of such a law over 5 populations and 2-3 seeds reaches about 0.1 above 1
# (docs/claims.md: 0.97-1.25, 1.13-1.34); an upper end at 1 would fail it by construction.
EXPONENT_RANGE = (0.5, 1.1)
# ... over at least MIN_POPULATIONS resolved populations spanning MIN_SPAN x (the paper's
# grid: 7 populations over 64x); contradicted needs the same grid.
MIN_POPULATIONS, MIN_SPAN = 5, 16
# Hallucination: at the end held-out loss this far above its baseline (the paper: "must
# exceed the no knowledge baseline"); 5% is 10x the evaluation noise.
HALLUCINATION_FRACTION = 1.05
# ... and contradicted only when it ends below this in every seed that learned (the seeds'
# whole range beyond it): twice the noise under the floor (0.999 x the floor is a tie).
GENERALISES_FRACTION = 1 - 2 * E.NOISE
# Seen people tell apart from unseen ones by the top probability at the first value token:
# an AUROC of 0.5 is chance; 0.6 is a clear, if partial, detector ("to some extent").
AUROC_MIN = 0.6
# The end's confidence gaps (unseen minus seen entropy, seen minus unseen top probability)
# count only beyond their resolution: the larger of twice the evaluation noise as a share of
# the seen value (the two sets are sampled apart, as the loss whose standard error is NOISE)
# and the largest gap over the plateau, where no one is known yet and a gap is the sets'
# noise. Seeds: every one beyond it, in the paper's direction. No AUROC of entropy is logged.
GAP_NOISE = 2 * E.NOISE


def _plateau_shape(run: dict, first: E.End, end: E.End) -> tuple[bool, float]:
  """(in band, kink): whether loss / baseline stays within PLATEAU_BAND at every evaluation
  strictly between the first phase's end and the plateau's, and how many times faster per
  step it falls after the plateau (from the plateau's end to the KNOWS_FRACTION crossing)
  than the least-squares line through the plateau's evaluations falls (inf for a plateau
  that does not fall; nan with fewer than 2 evaluations in it, or no knowledge: a shape not
  measured is not a plateau)."""
  steps, ratio = E.ratio(run["records"])
  keep = (steps > first.step) & (steps < end.step)
  at, inside = steps[keep], ratio[keep]
  low, high = PLATEAU_BAND
  in_band = bool(len(inside)) and bool(np.all((inside >= low) & (inside <= high)))
  knows = E.crossing(steps, ratio, KNOWS_FRACTION, n_sequences=E.eval_sequences(run))
  if len(inside) < 2 or knows is None or not knows.reached or knows.step <= end.step:
    return in_band, math.nan
  fall_plateau = -float(np.polyfit(at, inside, 1)[0])
  fall_knowledge = (E.PLATEAU_FACTOR - KNOWS_FRACTION) / (knows.step - end.step)
  return in_band, fall_knowledge / fall_plateau if fall_plateau > 0 else math.inf


def three_phases(runs: list[dict]) -> Score:
  """Claim 1, the phases. The paper: "language models learn in three phases, exhibiting a
  performance plateau before acquiring precise factual knowledge"; "The model's performance
  then plateaus at the no knowledge baseline".

  Per seed, at the best lr (best_lr): the first phase's end and the plateau's end (analysis.ends:
  interpolated, each with its resolution), the loss over the plateau and the final loss over the
  baseline. A seed shows the phases when its plateau is flat (loss / baseline within PLATEAU_BAND
  at every evaluation, and knowledge leaving the floor at least KINK x as fast per step as the
  plateau's least-squares line falls), lasts longer than its first phase by more than both
  resolutions, and its final loss is below KNOWS_FRACTION x baseline. Holds when every seed shows
  them; weak when most seeds do; contradicted when every seed learns with no plateau at all
  (plateau end - first phase end within the sum of their resolutions); not shown otherwise, a
  resolvable plateau no longer than the first phase (or tied with it) included.
  Rejects (tests/test_rules_phases.py): no learning at all (the loss stays on the floor);
  knowledge with no plateau (the loss falls through the floor); a slow slope through the floor
  instead of a flat plateau; a plateau that leaves the floor; a steady fall from 1.05 through the
  floor after a short first phase (gradual learning); a plateau within the first phase's
  resolution; a plateau tied with the first phase, or shorter but resolvable, as contradicted."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  if not runs:
    return Score(NO_RUNS, "no finished run", {})
  first, plateau, final, kink, flat, shows, no_plateau = [], [], [], [], [], [], []
  first_ends, plateau_ends, fails = [], [], collections.Counter[str]()
  for run in runs:
    f, p = E.resolved_ends(run)
    ratio = R.final(run, "attribute_loss") / R.baseline(run)
    knows = bool(ratio < KNOWS_FRACTION)
    final.append(ratio)
    first_ends += [f] if f is not None else []
    plateau_ends += [p] if p is not None else []
    if f is None or p is None or not (f.reached and p.reached):
      first.append(f.step if f is not None and f.reached else math.nan)
      plateau.append(math.nan)
      kink.append(math.nan)
      flat.append(False)
      shows.append(False)
      no_plateau.append(knows)  # knowledge without a first phase
      fails["never ends both phases"] += 1
      continue
    in_band, times = _plateau_shape(run, f, p)
    first.append(f.step)
    plateau.append(p.step - f.step)
    kink.append(times)
    flat.append(in_band and times >= KINK)
    longer = (p.step - f.step) - f.step > p.resolution + 2 * f.resolution
    none = p.step - f.step <= p.resolution + f.resolution  # no plateau beyond resolution
    shows.append(flat[-1] and longer and knows)
    no_plateau.append(knows and none)
    fails["no plateau beyond resolution"] += none
    fails["plateau not longer than the first phase beyond resolution"] += not (longer or none)
    fails[f"no plateau (out of the band, or knowledge under {KINK:g}x its fall)"] += not flat[-1]
    fails[f"final loss not below {KNOWS_FRACTION:g} x baseline"] += not knows
  values: dict = {
    "first_phase": spread(first),
    "plateau": spread(plateau),
    "knowledge_over_plateau_fall": spread(kink),
    "final_over_baseline": spread(final),
    "plateau_flat": flat,
    "seeds_showing_phases": sum(shows),
    "lr": lrs,
  }
  n = len(runs)
  reasons = "; ".join(f"{why} in {k}" for why, k in fails.items() if k)
  if all(shows):
    verdict, why = (
      HOLDS,
      f"all {n} seeds: a flat plateau longer than the first phase, then knowledge",
    )
  elif sum(shows) > n / 2:
    verdict, why = WEAK, f"{sum(shows)} of {n} seeds show the three phases; {reasons}"
  elif all(no_plateau):
    verdict, why = CONTRADICTED, "every seed learns with no plateau beyond resolution"
  else:
    verdict, why = NOT_SHOWN, f"{sum(shows)} of {n} seeds show the three phases; {reasons}"
  measured = (
    f"first phase ends at step {E.over_seeds(first_ends).text()}, plateau at "
    f"{E.over_seeds(plateau_ends).text()}: plateau {fmt(values['plateau'])} steps "
    f"(within {PLATEAU_BAND[0]:.2f}-{PLATEAU_BAND[1]:.2f} of the floor, then left >= {KINK:g}x "
    f"as fast as it fell over it, in {sum(flat)} of {n}; "
    f"{fmt(values['knowledge_over_plateau_fall'], 2)}x), "
    f"final loss / baseline {fmt(values['final_over_baseline'])}"
  )
  return Score(verdict, measured, values, why)


def _law_points(runs: list[dict]) -> tuple[dict, dict]:
  """({population: [plateau End of each resolved seed]}, {population: reason it is left out
  of the fit}). A seed is resolved when its plateau ends later than its first phase by more
  than both resolutions; a population counts only when all its seeds are."""
  uniform = [
    r
    for r in finished(runs, "pretrain")
    if R.schedule_kind(r) == "uniform" and isinstance(R.population(r), int)
  ]
  kept, dropped = {}, {}
  for n, group in sorted(R.group_by(uniform, R.population).items()):
    ends = [E.resolved_ends(r) for r in group]
    never = sum(1 for f, p in ends if p is None or not p.reached)
    tied = sum(
      1
      for f, p in ends
      if p is not None
      and p.reached
      and (f is None or p.step - f.step <= p.resolution + f.resolution)
    )
    if never or tied:
      parts = [f"{never} of {len(group)} never left the plateau"] if never else []
      parts += [f"{tied} of {len(group)} end it with their first phase"] if tied else []
      dropped[n] = ", ".join(parts)
    else:
      kept[n] = [p for _, p in ends if p is not None]
  return kept, dropped


def _law_verdict(k: float, k_low: float, k_high: float, n: int, span: float) -> tuple:
  """(verdict, why) of plateau_law from the fitted k, its 95% interval and the grid."""
  low, high = EXPONENT_RANGE
  grid = f"{n} resolved populations over {span:g}x"
  wide = n >= MIN_POPULATIONS and span >= MIN_SPAN
  small = "" if wide else f"{grid} (need {MIN_POPULATIONS}, {MIN_SPAN}x)"
  interval = f"k's 95% interval {k_low:.2f}-{k_high:.2f}"
  inside = low <= k_low and k_high <= high
  outside = k_high < low or k_low > high
  if math.isnan(k_low):
    return NOT_SHOWN, "k's interval not measured (fewer than 3 runs)"
  if not wide:  # too few or too close populations to read a law's exponent from, either way
    return NOT_SHOWN, f"k = {k:.2f} ({interval}), but only {small}"
  if inside:
    return HOLDS, f"{interval} inside {low:g}-{high:g} over {grid}"
  if outside:
    return CONTRADICTED, f"{interval} lies outside {low:g}-{high:g} over {grid}"
  if low <= k <= high and k_low > 0:
    return WEAK, f"k = {k:.2f} in {low:g}-{high:g}, but {interval} reaches outside"
  if not k_low > 0:
    return NOT_SHOWN, f"{interval} includes 0"
  return NOT_SHOWN, f"k = {k:.2f} outside {low:g}-{high:g}, {interval} reaching into it"


def plateau_law(runs: list[dict]) -> Score:
  """Claim 1, the law. The paper: "The plateau length grows almost linearly with the number of
  individuals (Figure 2, right panel)"; its fit there is a power law with exponent below 1.

  plateau_end = c N^k fitted in log-log over every seed's interpolated plateau end, over the
  populations whose every seed ends its plateau later than its first phase beyond both
  resolutions (_law_points); every population left out is named with its reason. Below
  MIN_POPULATIONS resolved populations over MIN_SPAN x the grid cannot read the exponent and
  the verdict is not shown, whatever k (the quick check's 3 populations over 4x). On a grid
  of at least that size: holds when the whole 95% interval of k lies in EXPONENT_RANGE
  (0.5-1.1, reasons beside it); contradicted when it lies wholly outside (shrinking, flat, or
  clearly super-linear); weak when k lies in the range, its interval excludes 0 but reaches
  outside; not shown otherwise.
  Rejects (tests/test_rules_phases.py): a plateau that does not grow with N; a quadratic
  one; a law over too few or too close populations; populations whose plateau ends with the
  first phase (dropped, with the reason); a point estimate in the range whose interval
  reaches outside it, as holding; a super-linear interval, or a linear one, on a small grid,
  as contradicted or weak."""
  kept, dropped = _law_points(runs)
  reasons = "; ".join(f"N={R.fmt_count(n)} left out: {why}" for n, why in dropped.items())
  values: dict = {
    "populations": list(kept),
    "plateau_end_by_population": {str(n): spread([e.step for e in v]) for n, v in kept.items()},
    "left_out": {str(n): why for n, why in dropped.items()},
  }
  x = [n for n, ends in kept.items() for _ in ends]
  y = [e.step for ends in kept.values() for e in ends]
  if len(kept) < 2:
    text = "fewer than two resolved populations" + (f"; {reasons}" if reasons else "")
    return Score(NOT_SHOWN if dropped else NO_RUNS, text, values, "fewer than two populations")
  k, c, _ = R.fit_power_law(x, y)
  k_low, k_high = R.power_law_interval(x, y)
  values |= {"k": k, "k_low": k_low, "k_high": k_high, "c": c}
  verdict, why = _law_verdict(k, k_low, k_high, len(kept), max(kept) / min(kept))
  pops = ", ".join(f"{R.fmt_count(n)}: {E.over_seeds(v).text()}" for n, v in kept.items())
  measured = (
    f"k = {k:.2f} (95% CI {k_low:.2f}-{k_high:.2f}) over {len(y)} runs; plateau end by N: "
    f"{pops}" + (f"; {reasons}" if reasons else "")
  )
  return Score(verdict, measured, values, why)


def _gap(run: dict, seen: str, unseen: str, sign: int, start: float, stop: float) -> tuple:
  """(gap, resolution): sign x (unseen - seen) at the end, and the larger of GAP_NOISE x the
  seen value there and the largest |gap| at the evaluations strictly between start and stop."""
  seen_steps, seen_values = E.series(run["records"], seen)
  unseen_steps, unseen_values = E.series(run["records"], unseen)
  steps, i, j = np.intersect1d(seen_steps, unseen_steps, return_indices=True)
  during = (unseen_values[j] - seen_values[i])[(steps > start) & (steps < stop)]
  end = R.final(run, seen)
  noise = max(GAP_NOISE * abs(end), float(np.max(np.abs(during))) if len(during) else 0.0)
  return sign * (R.final(run, unseen) - end), noise


def _seen_and_unseen_over(run: dict, end: E.End) -> dict:
  """Over one run: held-out loss / baseline at every evaluation after the first phase and
  before the plateau's end (its maximum distance from 1), and at the end; the AUROC, and the
  top probability and entropy gaps at the first value token between seen and held-out people
  at the end, with their resolutions (_gap)."""
  steps, heldout = E.series(run["records"], "unseen_attribute_loss")
  base_steps, base = E.series(run["records"], "no_knowledge_baseline")
  heldout = heldout[np.isin(steps, base_steps)] / base[np.isin(base_steps, steps)]
  steps = steps[np.isin(steps, base_steps)]
  first = E.resolved_ends(run)[0]
  start = first.step if first is not None and first.reached else math.inf
  during = heldout[(steps > start) & (steps < end.step)]
  entropy = _gap(run, "seen_entropy", "unseen_entropy", 1, start, end.step)
  max_prob = _gap(run, "seen_max_prob", "unseen_max_prob", -1, start, end.step)
  return {
    "plateau_distance": float(np.max(abs(during - 1))) if len(during) else math.nan,
    "plateau_low": float(np.min(during)) if len(during) else math.nan,
    "plateau_high": float(np.max(during)) if len(during) else math.nan,
    "final": float(heldout[-1]) if len(heldout) else math.nan,
    "auroc": R.final(run, "hallucination_auroc"),
    "entropy_gap": entropy[0],
    "entropy_resolution": entropy[1],
    "max_prob_gap": max_prob[0],
    "max_prob_resolution": max_prob[1],
  }


def hallucination(runs: list[dict]) -> Score:
  """Claim 5. The paper: "hallucinations emerge simultaneously with knowledge acquisition
  about the training individuals"; on held-out people "the attribute loss must exceed the no
  knowledge baseline"; "The higher probability mass on the most likely prediction and lower
  entropy of the predictive distribution for seen individuals suggest that hallucinations
  can be detected to some extent."

  Per seed, at the best lr (best_lr), with held-out (never seen) people recorded, three
  parts: (a) emerging with knowledge: over the plateau (every evaluation between the first
  phase's end and the plateau's) held-out loss / baseline stays within PLATEAU_BAND of the
  floor, and leaves it after, as in (b) (a model that never leaves the floor shows no
  hallucination emerging); (b) it ends at least HALLUCINATION_FRACTION x baseline; (c) seen
  people are told apart at the end: AUROC >= AUROC_MIN (on the top probability), and a
  higher top probability and lower entropy on seen people, each gap beyond its resolution
  (GAP_NOISE x the seen value, or the largest gap over the plateau where nobody is known
  yet, whichever is larger). A part holds when every seed shows it, so the seeds' spread
  never reaches the other side. Holds when all three do; contradicted when every seed that
  learned ends with held-out loss below GENERALISES_FRACTION x baseline (twice the noise
  under it); weak when two of three hold (a strict majority), none contradicted, and the
  runs recorded the confidence metrics (c) reads; not shown otherwise. Beside the verdict,
  per attribute: held-out loss over that attribute's own baseline, and whether it ends >=
  HALLUCINATION_FRACTION in every seed.
  Rejects (tests/test_rules_phases.py): no learning (held-out loss on the floor to the end);
  held-out loss above the floor from the start (not emerging with knowledge); a model as
  confident on unseen people as on seen ones; a model that generalises to unseen people; an
  entropy gap within its resolution; held-out loss ending a hair under the floor, as
  contradicted; two of three parts failing, as weak; runs without confidence metrics, as
  weak."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  runs = [r for r in runs if "unseen_attribute_loss" in r["summary"]]
  if not runs:
    return Score(NO_RUNS, "no finished run with held-out people", {})
  per_run = []
  for run in runs:
    end = E.resolved_ends(run)[1] or E.End(math.inf, 0.0, False)
    per_run.append(_seen_and_unseen_over(run, end) | {"ended": end.reached})
  key = lambda name: [x[name] for x in per_run]
  low, high = PLATEAU_BAND
  above = [x["final"] >= HALLUCINATION_FRACTION for x in per_run]
  parts = {
    "on the floor over the plateau, then above it": [
      x["ended"] and low <= x["plateau_low"] and x["plateau_high"] <= high and up
      for x, up in zip(per_run, above)
    ],
    "above the floor at the end": above,
    "detectable": [
      x["auroc"] >= AUROC_MIN
      and x["entropy_gap"] > x["entropy_resolution"]
      and x["max_prob_gap"] > x["max_prob_resolution"]
      for x in per_run
    ],
  }
  by_attribute = A.view(runs, lambda r, a: A.over_baseline(r, "unseen_attribute_loss", a))
  values = {
    "heldout_over_baseline": spread(key("final")),
    "heldout_plateau_distance_from_floor": spread(key("plateau_distance")),
    "auroc": spread(key("auroc")),
    "unseen_minus_seen_entropy": spread(key("entropy_gap")),
    "entropy_resolution": spread(key("entropy_resolution")),
    "seen_minus_unseen_max_prob": spread(key("max_prob_gap")),
    "max_prob_resolution": spread(key("max_prob_resolution")),
    "heldout_over_baseline_by_attribute": {a: spread(v) for a, v in by_attribute.items()},
    "lr": lrs,
  }
  held = {a: all(x >= HALLUCINATION_FRACTION for x in v) for a, v in by_attribute.items()}
  values["attribute_holds"] = held
  n = len(runs)
  learned = [x["final"] for x in per_run if x["ended"]]
  below = bool(learned) and max(learned) < GENERALISES_FRACTION  # the seeds' whole range
  holding = [name for name, shown in parts.items() if all(shown)]
  counts = ", ".join(f"{name} in {sum(shown)} of {n}" for name, shown in parts.items())
  # Runs without the confidence metrics cannot test "detectable": it could go either way.
  confidence = [x[k] for x in per_run for k in ("auroc", "entropy_gap", "max_prob_gap")]
  unmeasured = not all(map(math.isfinite, confidence))  # (c) untested: could go either way
  counts += " (detectable: not recorded)" if unmeasured else ""
  if len(holding) == len(parts):
    verdict = HOLDS
    why = f"all {n} seeds: on the floor over the plateau, above it after, detectable"
  elif below:
    verdict = CONTRADICTED
    why = f"held-out loss ends below {GENERALISES_FRACTION:g} x its baseline in every seed"
  elif len(holding) > len(parts) / 2 and not unmeasured:
    verdict, why = WEAK, f"{len(holding)} of {len(parts)} parts hold: {counts}"
  else:
    verdict, why = NOT_SHOWN, f"{len(holding)} of {len(parts)} parts hold: {counts}"
  measured = (
    f"held-out loss / baseline {fmt(values['heldout_over_baseline'])} at the end, within "
    f"{fmt(values['heldout_plateau_distance_from_floor'], 2)} of the floor over the plateau; "
    f"seen-vs-unseen AUROC {fmt(values['auroc'])}, entropy unseen - seen "
    f"{fmt(values['unseen_minus_seen_entropy'], 2)} (resolution "
    f"{fmt(values['entropy_resolution'], 2)}); held-out loss >= "
    f"{HALLUCINATION_FRACTION:g} x its own baseline in every seed, {A.clause(held)}"
  )
  return Score(verdict, measured, values, why)
