"""Time-dependent distributions over individuals: which person each training sequence is about.

A schedule is a frozen dataclass whose `at(step)` returns the distribution of step `step`: a
pure function of the step, so a resumed run samples exactly what an uninterrupted one would.
Distributions are exact: `probabilities()` gives every individual's probability (no rounding
of small weights) and `sample` draws in O(1) (mixtures of uniform id ranges) or O(log N)
(power law, by binary search in cached cumulative sums).

Conventions: the training population is ids [0, n_individuals). Celebrities are ids
[0, n_celebrities), the warm-up subset is ids [0, indiv_warmup), sequential group g is the g-th
contiguous block of ids, power-law ranks are a seeded permutation of the ids. Ids are already
a random draw of people, so contiguous blocks are random subsets.
"""

import dataclasses
import functools
import math
from typing import Protocol

import numpy as np

from bioknow import validate


class Distribution(Protocol):
  """Who a step's sequences are about: what `Schedule.at` returns (Ranges, Weighted)."""

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...

  def probabilities(self, size: int) -> np.ndarray: ...

  def support(self) -> list[tuple[int, int]]: ...


class Schedule(Protocol):
  """The way to add a curriculum: a frozen dataclass with `at(step)`, a pure function of the
  step. Fields named n_individuals, batch_size or n_steps are filled in from the run."""

  def at(self, step: int) -> Distribution: ...


# Distributions --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ranges:
  """Mixture of uniform id ranges [start, stop), each individual in range r with weight w_r."""

  starts: tuple[int, ...]
  stops: tuple[int, ...]
  weights: tuple[float, ...]  # per individual

  @functools.cached_property
  def _cdf_R(self) -> np.ndarray:
    mass_R = np.array(
      [(b - a) * w for a, b, w in zip(self.starts, self.stops, self.weights)], dtype=np.float64
    )
    return np.cumsum(mass_R) / mass_R.sum()

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    r_B = np.searchsorted(self._cdf_R, rng.random(n), side="right")
    r_B = np.minimum(r_B, len(self.starts) - 1)  # guards a cdf that sums to 1 - eps
    start_B, stop_B = np.array(self.starts)[r_B], np.array(self.stops)[r_B]
    return (start_B + np.floor(rng.random(n) * (stop_B - start_B))).astype(np.int32)

  def probabilities(self, size: int) -> np.ndarray:
    p = np.zeros(size)
    for a, b, w in zip(self.starts, self.stops, self.weights):
      p[a:b] += w
    return p / p.sum()

  def support(self) -> list[tuple[int, int]]:
    """The id ranges [start, stop) that `sample` can draw."""
    return [(a, b) for a, b, w in zip(self.starts, self.stops, self.weights) if b > a and w > 0]


@dataclasses.dataclass(frozen=True, eq=False)
class Weighted:
  """Arbitrary weights per individual id (power laws): binary search in cumulative sums."""

  weights_N: np.ndarray

  @functools.cached_property
  def _cdf_N(self) -> np.ndarray:
    cdf_N = np.cumsum(self.weights_N, dtype=np.float64)
    return cdf_N / cdf_N[-1]

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    i_B = np.searchsorted(self._cdf_N, rng.random(n), side="right")
    return np.minimum(i_B, len(self.weights_N) - 1).astype(np.int32)

  def probabilities(self, size: int) -> np.ndarray:
    p = np.zeros(size)
    p[: len(self.weights_N)] = self.weights_N
    return p / p.sum()

  @functools.cached_property
  def _support(self) -> list[tuple[int, int]]:
    edges_E = np.flatnonzero(np.diff(np.concatenate([[0], self.weights_N > 0, [0]]).astype(int)))
    return list(zip(edges_E[::2].tolist(), edges_E[1::2].tolist()))

  def support(self) -> list[tuple[int, int]]:
    """The id ranges [start, stop) that `sample` can draw (runs of nonzero weights)."""
    return self._support


def reach(schedule, n_steps: int) -> list[tuple[int, int]]:
  """The id ranges [start, stop), merged and sorted, that `schedule` can draw at any step in
  [0, n_steps): what a run's training batches can be about."""
  ranges: set[tuple[int, int]] = set()
  for step in range(n_steps):
    ranges.update(schedule.at(step).support())
  merged: list[tuple[int, int]] = []
  for a, b in sorted(ranges):
    if merged and a <= merged[-1][1]:
      merged[-1] = (merged[-1][0], max(merged[-1][1], b))
    else:
      merged.append((a, b))
  return merged


def check_reach(schedule, n_steps: int, allowed: list[tuple[int, int]], heldout: str) -> None:
  """Raises one sentence unless every id `schedule` can draw in [0, n_steps) lies in the
  `allowed` ranges (the training ids); `heldout` names the ids that must stay unreachable."""
  for a, b in reach(schedule, n_steps):
    if not any(lo <= a and b <= hi for lo, hi in allowed):
      ranges = " and ".join(f"[{lo}, {hi})" for lo, hi in allowed)
      raise ValueError(
        f"schedule: it draws ids [{a}, {b}) but the training ids are {ranges}; "
        f"{heldout} must never be trained on."
      )


def _uniform(n: int) -> Ranges:
  return Ranges((0,), (n,), (1.0,))


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise ValueError(message)


# A schedule's fields may be numpy scalars (computed with numpy): numpy integers and floats pass.
_check_int = functools.partial(validate.check_int, numpy=True)
_check_number = functools.partial(validate.check_number, numpy=True)


# Schedules ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Uniform:
  """Every individual equally often."""

  n_individuals: int

  def __post_init__(self):
    _check_int("n_individuals", self.n_individuals, 1)

  def at(self, step: int) -> Ranges:
    return _uniform(self.n_individuals)


@dataclasses.dataclass(frozen=True)
class PowerLaw:
  """p_i proportional to rank_i^-alpha (alpha 0: uniform, 1: Zipf). Ranks 1..N are assigned
  to ids by a permutation seeded with `seed` (rank_of_id = 1 + permutation(seed)[id])."""

  n_individuals: int
  alpha: float
  seed: int = 0

  def __post_init__(self):
    _check_int("n_individuals", self.n_individuals, 1)
    _check_number("alpha", self.alpha, 0)
    _check_int("seed", self.seed, 0)

  @functools.cached_property
  def rank_of_id(self) -> np.ndarray:
    return 1 + np.random.default_rng(self.seed).permutation(self.n_individuals)

  @functools.cached_property
  def _distribution(self) -> Weighted:
    return Weighted(self.rank_of_id.astype(np.float64) ** -self.alpha)

  def at(self, step: int) -> Weighted:
    return self._distribution


@dataclasses.dataclass(frozen=True)
class Celebrities:
  """Ids [0, n_celebrities) are sampled weight_celebrities times more often than the others."""

  n_individuals: int
  n_celebrities: int
  weight_celebrities: float

  def __post_init__(self):
    _check_int("n_individuals", self.n_individuals, 1)
    _check_int("n_celebrities", self.n_celebrities, 0, self.n_individuals)
    _check_number("weight_celebrities", self.weight_celebrities, 0, above=True)

  def at(self, step: int) -> Ranges:
    return Ranges(
      (0, self.n_celebrities),
      (self.n_celebrities, self.n_individuals),
      (float(self.weight_celebrities), 1.0),
    )


@dataclasses.dataclass(frozen=True)
class Warmup:
  """Uniform over ids [0, indiv_warmup) for epochs_warmup epochs, then over everyone.

  An epoch is n_individuals / batch_size steps, so the switch happens at step
  floor(epochs_warmup * n_individuals / batch_size).
  """

  n_individuals: int
  indiv_warmup: int
  epochs_warmup: float
  batch_size: int

  def __post_init__(self):
    _check_int("n_individuals", self.n_individuals, 1)
    _check_int("indiv_warmup", self.indiv_warmup, 1, self.n_individuals)
    _check_int("batch_size", self.batch_size, 1)
    _check_number("epochs_warmup", self.epochs_warmup, 0)

  @property
  def switch_step(self) -> int:
    return math.floor(self.epochs_warmup * self.n_individuals / self.batch_size)

  def at(self, step: int) -> Ranges:
    return _uniform(self.indiv_warmup if step < self.switch_step else self.n_individuals)


@dataclasses.dataclass(frozen=True)
class Sequential:
  """n_groups contiguous blocks of ids visited in order, the whole cycle n_repeats times over
  n_steps; uniform inside the current group. The last group absorbs the remainder ids."""

  n_individuals: int
  n_groups: int
  n_repeats: int
  n_steps: int

  def __post_init__(self):
    _check_int("n_individuals", self.n_individuals, 1)
    _check_int("n_groups", self.n_groups, 1, self.n_individuals)
    _check_int("n_repeats", self.n_repeats, 1)
    _check_int("n_steps", self.n_steps, self.n_groups * self.n_repeats)

  def group_bounds(self, g: int) -> tuple[int, int]:
    size = self.n_individuals // self.n_groups
    return g * size, (g + 1) * size if g < self.n_groups - 1 else self.n_individuals

  def group_at(self, step: int) -> int:
    phase = min(
      step * self.n_groups * self.n_repeats // self.n_steps, self.n_groups * self.n_repeats - 1
    )
    return phase % self.n_groups

  def at(self, step: int) -> Ranges:
    start, stop = self.group_bounds(self.group_at(step))
    return Ranges((start,), (stop,), (1.0,))


@dataclasses.dataclass(frozen=True)
class FinetuneMixture:
  """New individuals (ids [new_start, new_stop)) with weight 1 each, pre-training individuals
  (ids [0, n_pretrain)) with weight_replay each; weight_replay 0 means no replay."""

  n_pretrain: int
  new_start: int
  new_stop: int
  weight_replay: float

  def __post_init__(self):
    _check_int("n_pretrain", self.n_pretrain, 1)
    _check_int("new_start", self.new_start, 0)
    _check_int("new_stop", self.new_stop, self.new_start + 1)
    _require(
      self.new_start >= self.n_pretrain,
      f"new_start: got {self.new_start}; fine-tuning individuals must not overlap the "
      f"pre-training population [0, {self.n_pretrain}).",
    )
    _check_number("weight_replay", self.weight_replay, 0)

  def at(self, step: int) -> Ranges:
    if self.weight_replay == 0:
      return Ranges((self.new_start,), (self.new_stop,), (1.0,))
    return Ranges(
      (0, self.new_start), (self.n_pretrain, self.new_stop), (float(self.weight_replay), 1.0)
    )


@dataclasses.dataclass(frozen=True)
class Growth:
  """Uniform over ids [0, n(step)), n growing from n_start to n_individuals over growth_steps
  steps, linearly or geometrically (rounded down), then staying at n_individuals."""

  n_start: int
  n_individuals: int
  growth_steps: int
  mode: str = "linear"

  def __post_init__(self):
    _check_int("n_individuals", self.n_individuals, 1)
    _check_int("n_start", self.n_start, 1, self.n_individuals)
    _check_int("growth_steps", self.growth_steps, 0)
    _require(
      self.mode in ("linear", "geometric"),
      f"mode: got {self.mode!r}; allowed: 'linear', 'geometric'.",
    )

  def active(self, step: int) -> int:
    if step >= self.growth_steps:
      return self.n_individuals
    f = step / self.growth_steps
    if self.mode == "linear":
      n = self.n_start + f * (self.n_individuals - self.n_start)
    else:
      n = self.n_start * (self.n_individuals / self.n_start) ** f
    return max(self.n_start, min(self.n_individuals, math.floor(n)))

  def at(self, step: int) -> Ranges:
    return _uniform(self.active(step))


@dataclasses.dataclass(frozen=True)
class Phases:
  """Schedules one after another: phase i runs for steps[i] steps (the last runs on), and
  sees its own clock starting at 0 (e.g. a warm-up followed by a power law)."""

  schedules: tuple
  steps: tuple[int, ...]  # durations of all phases but the last

  def __post_init__(self):
    _require(
      isinstance(self.schedules, (tuple, list))
      and all(callable(getattr(x, "at", None)) for x in self.schedules)
      and len(self.schedules) >= 1,
      f"schedules: got {self.schedules!r}; give a tuple of one schedule per phase.",
    )
    _require(
      isinstance(self.steps, (tuple, list)) and len(self.steps) == len(self.schedules) - 1,
      "steps: give one duration for each phase but the last.",
    )
    for d in self.steps:
      _check_int("steps", d, 0)

  def at(self, step: int):
    for schedule, duration in zip(self.schedules, self.steps):
      if step < duration:
        return schedule.at(step)
      step -= duration
    return self.schedules[-1].at(step)
