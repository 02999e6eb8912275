"""Phase ends read below the evaluation spacing, each with its resolution, and the tie rule.

A phase ends where the ratio attribute loss / no-knowledge baseline crosses a threshold
(PLATEAU_FACTOR for the plateau, FIRST_PHASE_FACTOR for the first phase). The crossing must be
confirmed: the ratio stays past the threshold for CONFIRM evaluations in a row (or through the
last evaluation of a finished run), so that one noisy evaluation ends nothing. The end is then
placed between the last evaluation before the crossing and the first after it, by linear
interpolation of the ratio, and carries a resolution in steps: how far the true crossing may lie
from that estimate, given the noise of the run's own evaluation set (`noise`, `phase_ends`).
Two ends closer than their resolutions, or than their spread over seeds, are a tie (`compare`),
and a tie never decides a verdict.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# The thresholds and the confirmation rule are the training loop's (one definition):
# FIRST_PHASE_FACTOR, PLATEAU_FACTOR, CONFIRM evaluations in a row, `confirmed`.
from bioknow.train.phases import (  # noqa: F401 (ends.CONFIRM, ends.confirmed: public)
  CONFIRM,
  FIRST_PHASE_FACTOR,
  PLATEAU_FACTOR,
  confirmed,
)
from bioknow.validate import is_number

# Standard error of loss / baseline on one evaluation set of EVAL_SEQUENCES sequences (the
# small scale's: about 0.5% of the baseline); a crossing is not placed more finely than the
# noise allows. A run evaluated on n sequences has noise(n) = NOISE * sqrt(EVAL_SEQUENCES / n):
# the standard error of a mean over n (the population sweep's 128: about 0.7%).
NOISE = 0.005
EVAL_SEQUENCES = 256
# The curve's shape between two evaluations is unknown (a plateau ends in a kink, not a
# straight line): the interpolated step is trusted to no better than this share of their
# spacing.
BEND = 0.5


def noise(n_sequences: int = EVAL_SEQUENCES) -> float:
  """The evaluation noise of loss / baseline on a set of `n_sequences` sequences."""
  return NOISE * math.sqrt(EVAL_SEQUENCES / n_sequences)


def eval_sequences(run: dict) -> int:
  """The sequences per evaluation set of a run (its config's eval.n_sequences), else
  EVAL_SEQUENCES."""
  n = run.get("config", {}).get("eval.n_sequences")
  return int(n) if is_number(n, finite=True) and n > 0 else EVAL_SEQUENCES


class End(NamedTuple):
  """A phase end: `step` (interpolated; the run's last evaluated step where the phase never
  ends), `resolution` (+- steps) and `reached` (False: the phase had not ended by `step`)."""

  step: float
  resolution: float
  reached: bool


def series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of the records where `key` holds a finite number."""
  pairs = [(r["step"], r[key]) for r in records if is_number(r.get(key), finite=True)]
  return np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs], dtype=float)


def ratio(records: Sequence[dict], attribute: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(steps, attribute loss / no-knowledge baseline) over the evaluations recording both; one
  attribute type's own loss over its own baseline with `attribute`."""
  suffix = f"/{attribute}" if attribute else ""
  loss_steps, loss = series(records, f"attribute_loss{suffix}")
  base_steps, base = series(records, f"no_knowledge_baseline{suffix}")
  keep = np.isin(loss_steps, base_steps)
  by_step = dict(zip(base_steps, base))
  steps = loss_steps[keep]
  return steps, loss[keep] / np.array([by_step[s] for s in steps])


def crossing(
  steps: np.ndarray,
  values: np.ndarray,
  threshold: float,
  finished: bool = True,
  n_sequences: int = EVAL_SEQUENCES,
) -> End | None:
  """Where `values` first falls below `threshold` (confirmed), interpolated between the
  evaluation before and the one at the confirmed crossing. The resolution is the noise of an
  `n_sequences` evaluation set (noise) over the slope there, at least BEND of the spacing and
  at most the spacing. None without evaluations; End(last step, 0, False) where the values
  never fall below."""
  if not len(steps):
    return None
  i = confirmed([bool(v < threshold) for v in values], finished)
  if i is None:
    return End(float(steps[-1]), 0.0, False)
  if i == 0:
    return End(float(steps[0]), 0.0, True)
  s0, s1, v0, v1 = float(steps[i - 1]), float(steps[i]), float(values[i - 1]), float(values[i])
  spacing = s1 - s0
  drop = v0 - v1  # > 0: v0 >= threshold > v1
  at = s0 + spacing * (v0 - threshold) / drop
  slope = drop / spacing
  resolution = noise(n_sequences) / slope
  return End(at, float(np.clip(resolution, BEND * spacing, spacing)), True)


def plateau_end(
  records: Sequence[dict], attribute: str | None = None, n_sequences: int = EVAL_SEQUENCES
) -> End | None:
  """The plateau end: loss / baseline below PLATEAU_FACTOR (confirmed, interpolated)."""
  return crossing(*ratio(records, attribute), PLATEAU_FACTOR, n_sequences=n_sequences)


def first_phase_end(
  records: Sequence[dict], attribute: str | None = None, n_sequences: int = EVAL_SEQUENCES
) -> End | None:
  """The first phase's end: loss / baseline at or below FIRST_PHASE_FACTOR (confirmed,
  interpolated as the ratio falls through it)."""
  steps, values = ratio(records, attribute)
  return crossing(steps, values, FIRST_PHASE_FACTOR + 1e-12, n_sequences=n_sequences)


def resolved_ends(run: dict, attribute: str | None = None) -> tuple[End | None, End | None]:
  """(first phase end, plateau end) of a loaded run, each resolved with the noise of the
  run's own evaluation set (eval_sequences)."""
  n = eval_sequences(run)
  return first_phase_end(run["records"], attribute, n), plateau_end(run["records"], attribute, n)


class Ends(NamedTuple):
  """Ends of one setting over seeds: mean, min, max and mean resolution of their steps, how
  many, and how many were reached."""

  mean: float
  low: float
  high: float
  resolution: float
  n: int
  reached: int

  @property
  def margin(self) -> float:
    """The smallest difference to another setting's ends that is not a tie on this side: the
    resolution, or half the spread over seeds where that is larger."""
    return max(self.resolution, (self.high - self.low) / 2)

  def text(self) -> str:
    """'mean +- resolution (min-max, n seeds)', marking ends never reached with '>='."""
    never = "" if self.reached == self.n else ">="
    if self.n == 1:
      return f"{never}{self.mean:.0f} +- {self.resolution:.0f}"
    return (
      f"{never}{self.mean:.0f} +- {self.resolution:.0f} "
      f"({self.low:.0f}-{self.high:.0f}, {self.n} seeds)"
    )


def over_seeds(ends: Sequence[End]) -> Ends:
  """The Ends of one setting's runs (one End each)."""
  steps = [e.step for e in ends]
  if not steps:
    return Ends(math.nan, math.nan, math.nan, math.nan, 0, 0)
  return Ends(
    float(np.mean(steps)),
    min(steps),
    max(steps),
    float(np.mean([e.resolution for e in ends])),
    len(steps),
    sum(e.reached for e in ends),
  )


def compare(a: Ends, b: Ends) -> int:
  """-1 when a ends before b, +1 when after, 0 for a tie: the difference of the means must
  exceed the sum of both resolutions and both halves of the spread over seeds (margin)."""
  if not (a.n and b.n):
    return 0
  difference = a.mean - b.mean
  if abs(difference) <= a.margin + b.margin:
    return 0
  return 1 if difference > 0 else -1


def tied_with_first(ends: dict, key=None) -> list:
  """The keys whose Ends tie with the earliest mean end (that one included), in input order."""
  present = {k: e for k, e in ends.items() if e.n}
  if not present:
    return []
  first = min(present, key=lambda k: present[k].mean)
  return [k for k, e in present.items() if compare(e, present[first]) == 0]
