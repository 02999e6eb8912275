"""The paper's claims as measurements on runs, each with the rule that gives its verdict.

Every function takes runs as bioknow.analysis.runs loads them (dicts of records, summary and
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

from bioknow.analysis import ends as E
from bioknow.analysis import runs as R
from bioknow.claims import attributes as A

# Verdicts. contradicted: the effect is measured, beyond its resolution and the spread over
# seeds, in the direction opposite to the paper's; not shown: neither it nor its opposite is.
HOLDS, WEAK, NOT_SHOWN, CONTRADICTED = "holds", "weak", "not shown", "contradicted"
NO_RUNS = "not run"
VERDICTS = (HOLDS, WEAK, NOT_SHOWN, CONTRADICTED, NO_RUNS)

# Three phases: the run must end this far below the baseline to count as knowing (10% under
# the floor is 20x the evaluation noise, ends.NOISE).
KNOWS_FRACTION = 0.9
# Three phases: over the plateau (between the two ends) loss / baseline stays in the band the
# phase rules themselves allow there (at most FIRST_PHASE_FACTOR once the first phase has
# ended, at least PLATEAU_FACTOR until the plateau ends), widened by twice the evaluation
# noise; a narrower band would fail a plateau resting at 1.04 by construction (docs/claims.md).
PLATEAU_BAND = (E.PLATEAU_FACTOR - 2 * E.NOISE, E.FIRST_PHASE_FACTOR + 2 * E.NOISE)
# Plateau law: the paper's "almost linear" (a power law, sub-linear), read generously: the
# fitted exponent must lie here, over at least MIN_POPULATIONS resolved populations spanning
# MIN_SPAN x (the paper's grid: 7 populations over 64x).
EXPONENT_RANGE = (0.5, 1.1)
MIN_POPULATIONS, MIN_SPAN = 5, 16
# Hallucination: over the plateau, held-out loss / baseline in the same band as the seen
# people's (PLATEAU_BAND) ...
# ... and at the end this far above its baseline (the paper: "must exceed the no knowledge
# baseline"); 5% is 10x the evaluation noise.
HALLUCINATION_FRACTION = 1.05
# Seen people tell apart from unseen ones by the top probability at the first value token:
# an AUROC of 0.5 is chance; 0.6 is a clear, if partial, detector ("to some extent").
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


def _ends(run: dict, attribute: str | None = None) -> tuple[E.End | None, E.End | None]:
  """(first phase end, plateau end) of a run, interpolated, each with its resolution."""
  return E.first_phase_end(run["records"], attribute), E.plateau_end(run["records"], attribute)


def _plateau_flat(run: dict, first: E.End, end: E.End) -> bool:
  """Whether loss / baseline stays within PLATEAU_BAND at every evaluation strictly
  between the first phase's end and the plateau's."""
  steps, ratio = E.ratio(run["records"])
  inside = ratio[(steps > first.step) & (steps < end.step)]
  low, high = PLATEAU_BAND
  return bool(len(inside)) and bool(np.all((inside >= low) & (inside <= high)))


def three_phases(runs: list[dict]) -> Score:
  """Claim 1, the phases. The paper: "language models learn in three phases, exhibiting a
  performance plateau before acquiring precise factual knowledge"; "The model's performance
  then plateaus at the no knowledge baseline".

  Per seed, at the best lr (best_lr): the first phase's end and the plateau's end
  (analysis.ends: interpolated, each with its resolution), whether the loss stays within
  PLATEAU_BAND of the baseline over the whole plateau, and the final loss over the baseline.
  A seed shows the phases when its plateau is flat, lasts longer than its first phase by more
  than both resolutions, and its final loss is below KNOWS_FRACTION x baseline.
  Holds when every seed shows them; weak when most seeds do; contradicted when every seed
  learns but none has a plateau longer than its first phase beyond resolution (knowledge
  with no plateau); not shown otherwise.
  Rejects (tests/test_rules_phases.py): no learning at all (the loss stays on the floor);
  knowledge with no plateau (the loss falls through the floor); a slow slope through the
  floor instead of a flat plateau; a plateau shorter than the first phase's resolution."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  if not runs:
    return Score(NO_RUNS, "no finished run", {})
  first, plateau, final, flat, shows, no_plateau = [], [], [], [], [], []
  first_ends, plateau_ends = [], []
  for run in runs:
    f, p = _ends(run)
    ratio = R.final(run, "attribute_loss") / R.baseline(run)
    final.append(ratio)
    first_ends += [f] if f is not None else []
    plateau_ends += [p] if p is not None else []
    if f is None or p is None or not (f.reached and p.reached):
      first.append(f.step if f is not None and f.reached else math.nan)
      plateau.append(math.nan)
      flat.append(False)
      shows.append(False)
      no_plateau.append(bool(ratio < KNOWS_FRACTION))  # knowledge without a first phase
      continue
    first.append(f.step)
    plateau.append(p.step - f.step)
    flat.append(_plateau_flat(run, f, p))
    longer = (p.step - f.step) - f.step > p.resolution + 2 * f.resolution
    shows.append(flat[-1] and longer and ratio < KNOWS_FRACTION)
    no_plateau.append(bool(ratio < KNOWS_FRACTION and not longer))
  values: dict = {
    "first_phase": spread(first),
    "plateau": spread(plateau),
    "final_over_baseline": spread(final),
    "plateau_flat": flat,
    "seeds_showing_phases": sum(shows),
    "lr": lrs,
  }
  n = len(runs)
  if all(shows):
    verdict, why = (
      HOLDS,
      f"all {n} seeds: a flat plateau longer than the first phase, then knowledge",
    )
  elif sum(shows) > n / 2:
    verdict, why = WEAK, f"{sum(shows)} of {n} seeds show the three phases"
  elif all(no_plateau):
    verdict, why = CONTRADICTED, "every seed learns with no plateau longer than its first phase"
  else:
    verdict, why = NOT_SHOWN, f"{sum(shows)} of {n} seeds show the three phases"
  measured = (
    f"first phase ends at step {E.over_seeds(first_ends).text()}, plateau at "
    f"{E.over_seeds(plateau_ends).text()}: plateau {fmt(values['plateau'])} steps "
    f"(within {PLATEAU_BAND[0]:.2f}-{PLATEAU_BAND[1]:.2f} of the floor in {sum(flat)} of "
    f"{n}), final loss / "
    f"baseline {fmt(values['final_over_baseline'])}"
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
    ends = [_ends(r) for r in group]
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


def plateau_law(runs: list[dict]) -> Score:
  """Claim 1, the law. The paper: "The plateau length grows almost linearly with the number of
  individuals (Figure 2, right panel)", a power law with exponent below 1.

  plateau_end = c N^k fitted in log-log over every seed's interpolated plateau end, over the
  populations whose every seed ends its plateau later than its first phase beyond both
  resolutions (_law_points); every population left out is named with its reason. Holds when
  at least MIN_POPULATIONS resolved populations span MIN_SPAN x, the 95% interval of k
  excludes 0 and k lies in EXPONENT_RANGE; weak when the interval excludes 0 but the rest
  fails; contradicted when the interval lies wholly below 0 (the plateau shrinks with N) or
  wholly above EXPONENT_RANGE (clearly super-linear); not shown otherwise.
  Rejects (tests/test_rules_phases.py): a plateau that does not grow with N; a quadratic
  one; a law over too few or too close populations; populations whose plateau ends with
  the first phase (dropped, with the reason)."""
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
  span = max(kept) / min(kept)
  wide = len(kept) >= MIN_POPULATIONS and span >= MIN_SPAN
  grows = k_low > 0
  near_linear = EXPONENT_RANGE[0] <= k <= EXPONENT_RANGE[1]
  if grows and near_linear and wide:
    verdict, why = HOLDS, f"k in {EXPONENT_RANGE} over {len(kept)} populations spanning {span:g}x"
  elif k_high < 0 or k_low > EXPONENT_RANGE[1]:
    verdict, why = CONTRADICTED, f"k's interval {k_low:.2f}-{k_high:.2f} excludes growth near 1"
  elif grows:
    fails = [] if near_linear else [f"k outside {EXPONENT_RANGE}"]
    fails += (
      []
      if wide
      else [
        f"{len(kept)} resolved populations over {span:g}x (need {MIN_POPULATIONS}, {MIN_SPAN}x)"
      ]
    )
    verdict, why = WEAK, "grows, but " + " and ".join(fails)
  else:
    verdict, why = NOT_SHOWN, f"k's interval {k_low:.2f}-{k_high:.2f} includes 0"
  pops = ", ".join(f"{R.fmt_count(n)}: {E.over_seeds(v).text()}" for n, v in kept.items())
  measured = (
    f"k = {k:.2f} (95% CI {k_low:.2f}-{k_high:.2f}) over {len(y)} runs; plateau end by N: "
    f"{pops}" + (f"; {reasons}" if reasons else "")
  )
  return Score(verdict, measured, values, why)


def _seen_and_unseen_over(run: dict, end: E.End) -> dict:
  """Over one run: held-out loss / baseline at every evaluation after the first phase and
  before the plateau's end (its maximum distance from 1), and at the end; the top
  probability and entropy at the first value token on seen and held-out people, at the end."""
  steps, heldout = E.series(run["records"], "unseen_attribute_loss")
  base_steps, base = E.series(run["records"], "no_knowledge_baseline")
  heldout = heldout[np.isin(steps, base_steps)] / base[np.isin(base_steps, steps)]
  steps = steps[np.isin(steps, base_steps)]
  first = E.first_phase_end(run["records"])
  start = first.step if first is not None and first.reached else math.inf
  during = heldout[(steps > start) & (steps < end.step)]
  return {
    "plateau_distance": float(np.max(abs(during - 1))) if len(during) else math.nan,
    "plateau_low": float(np.min(during)) if len(during) else math.nan,
    "plateau_high": float(np.max(during)) if len(during) else math.nan,
    "final": float(heldout[-1]) if len(heldout) else math.nan,
    "auroc": R.final(run, "hallucination_auroc"),
    "entropy_gap": R.final(run, "unseen_entropy") - R.final(run, "seen_entropy"),
    "max_prob_gap": R.final(run, "seen_max_prob") - R.final(run, "unseen_max_prob"),
  }


def hallucination(runs: list[dict]) -> Score:
  """Claim 5. The paper: "hallucinations emerge simultaneously with knowledge acquisition
  about the training individuals"; on held-out people "the attribute loss must exceed the no
  knowledge baseline"; "The higher probability mass on the most likely prediction and lower
  entropy of the predictive distribution for seen individuals suggest that hallucinations
  can be detected to some extent."

  Per seed, at the best lr (best_lr), with held-out (never seen) people recorded: held-out
  loss / baseline over the plateau (every evaluation between the first phase's end and the
  plateau's), at the end, and the end's top probability, entropy and seen-vs-unseen AUROC. A
  seed shows the claim when over the plateau held-out loss stays within PLATEAU_BAND of the
  floor, ends at least HALLUCINATION_FRACTION x baseline, and seen people are told apart at
  the end: AUROC >= AUROC_MIN, higher top probability and lower entropy on seen people.
  Holds when every seed shows it; weak when every seed hallucinates after the plateau but the
  plateau or the confidence part fails somewhere; contradicted when every seed that learned
  ends with held-out loss below its baseline; not shown otherwise. Beside the verdict, per
  attribute: held-out loss over that attribute's own baseline, and whether it ends >=
  HALLUCINATION_FRACTION in every seed.
  Rejects (tests/test_rules_phases.py): no learning (held-out loss on the floor to the
  end); held-out loss above the floor from the start (not emerging with knowledge); a model
  as confident on unseen people as on seen ones; a model that generalises to unseen people."""
  runs, lrs = best_lr(finished(runs, "pretrain"))
  runs = [r for r in runs if "unseen_attribute_loss" in r["summary"]]
  if not runs:
    return Score(NO_RUNS, "no finished run with held-out people", {})
  per_run = []
  for run in runs:
    end = E.plateau_end(run["records"]) or E.End(math.inf, 0.0, False)
    per_run.append(_seen_and_unseen_over(run, end) | {"ended": end.reached})
  key = lambda name: [x[name] for x in per_run]
  low, high = PLATEAU_BAND
  on_floor = [x["ended"] and low <= x["plateau_low"] and x["plateau_high"] <= high for x in per_run]
  above = [x["final"] >= HALLUCINATION_FRACTION for x in per_run]
  detected = [
    x["auroc"] >= AUROC_MIN and x["entropy_gap"] > 0 and x["max_prob_gap"] > 0 for x in per_run
  ]
  by_attribute = A.view(runs, lambda r, a: A.over_baseline(r, "unseen_attribute_loss", a))
  values = {
    "heldout_over_baseline": spread(key("final")),
    "heldout_plateau_distance_from_floor": spread(key("plateau_distance")),
    "auroc": spread(key("auroc")),
    "unseen_minus_seen_entropy": spread(key("entropy_gap")),
    "seen_minus_unseen_max_prob": spread(key("max_prob_gap")),
    "heldout_over_baseline_by_attribute": {a: spread(v) for a, v in by_attribute.items()},
    "lr": lrs,
  }
  held = {a: all(x >= HALLUCINATION_FRACTION for x in v) for a, v in by_attribute.items()}
  values["attribute_holds"] = held
  n = len(runs)
  if all(on_floor) and all(above) and all(detected):
    verdict, why = (
      HOLDS,
      f"all {n} seeds: on the floor over the plateau, above it after, detectable",
    )
  elif all(above):
    verdict = WEAK
    why = (
      f"above the floor at the end in every seed; on the floor over the plateau in "
      f"{sum(on_floor)} of {n}, detectable in {sum(detected)} of {n}"
    )
  elif all(x["final"] < 1 for x, f in zip(per_run, key("ended")) if f) and any(key("ended")):
    verdict, why = CONTRADICTED, "held-out loss ends below its baseline"
  else:
    verdict, why = NOT_SHOWN, f"held-out loss ends above the floor in {sum(above)} of {n} seeds"
  measured = (
    f"held-out loss / baseline {fmt(values['heldout_over_baseline'])} at the end, within "
    f"{fmt(values['heldout_plateau_distance_from_floor'], 2)} of the floor over the plateau; "
    f"seen-vs-unseen AUROC {fmt(values['auroc'])}, entropy unseen - seen "
    f"{fmt(values['unseen_minus_seen_entropy'], 2)}; held-out loss >= "
    f"{HALLUCINATION_FRACTION:g} x its own baseline in every seed, {A.clause(held)}"
  )
  return Score(verdict, measured, values, why)
