"""Grain input pipeline: training batches under a schedule, and the fixed evaluation sets.

One dataset element is one whole batch, and element k is the batch of step k: a pure function
of (dataset, schedule, seed, k), drawn with its own generator seeded by (seed, k). So batches
are identical whatever the number of workers or threads, and a restored iterator (its state is
just the next step) yields exactly the batches that would have followed.
"""

import dataclasses
import math
import zlib

import grain
import numpy as np

from bioknow.data import packing, schedules
from bioknow.data.biography import Biographies
from bioknow.data.dataset import Dataset
from bioknow.validate import check_int, is_int

BATCH_FIELDS = (
  "tokens_BxT",
  "role_BxT",
  "attribute_BxT",
  "sentence_BxT",
  "length_B",
  "individual_B",
)


def batch_at(
  ds: Dataset, schedule, batch_size: int, seed: int, step: int, pool: str = "train"
) -> dict[str, np.ndarray]:
  """The training batch of `step`: individuals from schedule.at(step), biographies from `pool`."""
  rng = np.random.default_rng([seed, step])
  individual_B = schedule.at(step).sample(rng, batch_size)
  bios = ds.assemble(individual_B, pool, rng)
  return {f: getattr(bios, f) for f in BATCH_FIELDS} | {"step": np.int64(step)}


@dataclasses.dataclass(frozen=True)
class _BatchOfStep:
  """Picklable map function (workers receive it) from a step to its batch."""

  ds: Dataset
  schedule: object
  batch_size: int
  seed: int
  pack_shape: tuple[int, int] | None = None
  row_len: int | None = None

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    batch = batch_at(self.ds, self.schedule, self.batch_size, self.seed, int(step))
    if self.pack_shape is None:
      return batch if self.row_len is None else trim(batch, self.row_len)
    return packing.pack(batch, *self.pack_shape) | {
      k: batch[k] for k in ("length_B", "individual_B", "step")
    }


def sampled_lengths(ds: Dataset, schedule, seed: int) -> np.ndarray:
  """The lengths of 4096 biographies sampled at steps no run reaches: what a run plans its
  shapes from."""
  return np.concatenate(
    [batch_at(ds, schedule, 512, seed, 2**40 + i)["length_B"] for i in range(8)]
  )


def pack_shape_for(ds: Dataset, schedule, batch_size: int, seed: int) -> tuple[int, int]:
  """The packed [rows, row_len] of a run, from its sampled lengths."""
  return packing.packed_shape(sampled_lengths(ds, schedule, seed), batch_size, ds.seq_len)


def compute_tokens(ds: Dataset, schedule, batch_size: int, seed: int, sigmas: float = 6.0) -> int:
  """How many token rows a training step computes (train_step's n_compute): the mean real
  tokens of a batch plus `sigmas` standard deviations, from the sampled lengths, rounded up
  to ROW_MULTIPLE. A batch with more (a many-sigma event) is computed whole instead."""
  lengths = sampled_lengths(ds, schedule, seed)
  total = batch_size * lengths.mean() + sigmas * lengths.std() * np.sqrt(batch_size)
  return round_up(math.ceil(total))


# Trimmed rows are a multiple of this long: XLA:CPU vectorises whole groups of 8 floats.
ROW_MULTIPLE = 8


def round_up(n: int, multiple: int = ROW_MULTIPLE) -> int:
  return -(-int(n) // multiple) * multiple


def plain_row_len(ds: Dataset, schedule, batch_size: int, seed: int) -> int:
  """The row length of plain (unpacked) batches: the longest of 4096 biographies sampled at
  steps no run reaches, rounded up to ROW_MULTIPLE, at most seq_len. seq_len is the longest
  biography the lists allow, which sampled ones rarely approach: small scale 105 of 129,
  paper 93 of 125. Only padding is cut, so the step is faster (figures: docs/benchmarks.md)."""
  return min(round_up(sampled_lengths(ds, schedule, seed).max()), ds.seq_len)


def trim(batch: dict[str, np.ndarray], row_len: int) -> dict[str, np.ndarray]:
  """The batch's [B, T] fields cut to row_len, or to the longest biography rounded up to
  ROW_MULTIPLE where that is longer (a rare batch: one more compiled shape). Only padding is
  cut: positions past a biography's end are neither attended to nor targets."""
  seq_len = batch["tokens_BxT"].shape[1]
  t = min(max(row_len, round_up(batch["length_B"].max())), seq_len)
  return {k: v[:, :t] if k.endswith("_BxT") else v for k, v in batch.items()}


def training_batches(
  ds: Dataset,
  schedule,
  *,
  batch_size: int,
  n_steps: int,
  seed: int,
  num_threads: int = 1,
  num_workers: int = 0,
  pack_shape: tuple[int, int] | None = None,
  row_len: int | None = None,
) -> grain.IterDataset:
  """Batches for steps 0..n_steps-1. Threads or worker processes only prefetch: the batches
  themselves do not depend on them. With `pack_shape`, each batch is also packed into
  fixed rows (fields *_RxL, position_RxL, segment_RxL; see packing.py); otherwise, with
  `row_len` (from plain_row_len), its [B, T] fields are trimmed (see trim)."""
  for name, value, low in (
    ("batch_size", batch_size, 1),
    ("n_steps", n_steps, 0),
    ("seed", seed, 0),
  ):
    check_int(name, value, low)
  if isinstance(schedule, type) or not callable(getattr(schedule, "at", None)):
    raise ValueError(
      f"schedule: got a {type(schedule).__name__}; give a built schedule (one with at(step)), "
      "e.g. schedules.Uniform(n_individuals)."
    )
  # Checked when called, as a run checks it: no batch may be about a held-out person.
  n, h, e = ds.config.n_individuals, ds.config.n_heldout, ds.config.n_extra
  allowed = [(0, n)] + ([(n + h, n + h + e)] if e else [])  # extra ids: fine-tuning's new people
  schedules.check_reach(schedule, n_steps, allowed, f"the held-out ids [{n}, {n + h})")
  steps = grain.MapDataset.range(n_steps).map(
    _BatchOfStep(ds, schedule, batch_size, seed, pack_shape, row_len)
  )
  batches = steps.to_iter_dataset(
    grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2, 2 * num_threads))
  )
  if num_workers > 0:
    batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return batches


def _rng(seed: int, name: str) -> np.random.Generator:
  return np.random.default_rng([seed, zlib.crc32(name.encode())])


def eval_set(
  ds: Dataset, ids: np.ndarray, n_sequences: int, *, pool: str, seed: int, name: str
) -> Biographies:
  """A fixed evaluation set: n_sequences biographies of individuals drawn uniformly from `ids`
  (every individual once before any repeats, when n_sequences >= len(ids))."""
  rng = _rng(seed, name)
  ids = np.asarray(ids)
  reps = -(-n_sequences // len(ids))
  order = np.concatenate([rng.permutation(len(ids)) for _ in range(reps)])[:n_sequences]
  return ds.assemble(ids[order], pool, rng)


# The names of the standard evaluation sets; a group of individuals may not take one.
STANDARD_SETS = ("seen", "seen_train_templates", "heldout")


def check_groups(
  groups: tuple[tuple[str, int, int], ...], stop: int, where: str = "population"
) -> None:
  """Raises one sentence unless the groups (name, start, stop) have unique names other than
  STANDARD_SETS and lie in [0, stop) (`where` names that range)."""
  names = [g[0] for g in groups]
  for name, start, end in groups:
    if name in STANDARD_SETS or names.count(name) > 1:
      raise ValueError(
        f"eval_groups: the name {name!r} is taken; use unique names other than "
        f"{', '.join(STANDARD_SETS)}."
      )
    if not (is_int(start) and is_int(end)):
      raise ValueError(f"eval_groups: {name} = [{start!r}, {end!r}) must have integer bounds.")
    if not 0 <= start < end <= stop:
      raise ValueError(
        f"eval_groups: {name} = [{start}, {end}) must lie in the {where} [0, {stop})."
      )


def standard_eval_sets(
  ds: Dataset, n_sequences: int, seed: int, groups: dict[str, tuple[int, int]] | None = None
) -> dict[str, Biographies]:
  """The run's fixed evaluation sets, generated once from the run's seed.

  seen: training individuals, evaluation templates (knowledge); seen_train_templates: the
  same individuals with training templates (memorisation gap); heldout: held-out individuals,
  evaluation templates (hallucination); and one set per named id range in `groups`.
  """
  population = ds.population
  seen_ids = np.arange(population.n_individuals)
  sets = {
    "seen": eval_set(ds, seen_ids, n_sequences, pool="eval", seed=seed, name="seen"),
    "seen_train_templates": eval_set(
      ds, seen_ids, n_sequences, pool="train", seed=seed, name="seen"
    ),
  }
  if population.n_heldout:
    sets["heldout"] = eval_set(
      ds, population.heldout_ids, n_sequences, pool="eval", seed=seed, name="heldout"
    )
  check_groups(tuple((name, *ids) for name, ids in (groups or {}).items()), population.size)
  for name, (start, stop) in (groups or {}).items():
    sets[name] = eval_set(
      ds, np.arange(start, stop), n_sequences, pool="eval", seed=seed, name=name
    )
  return sets
