"""A seeded population of individuals: unique full names, six attributes, template splits.

Ids 0..n_individuals-1 are the training population; the next n_heldout ids are held-out
individuals that no schedule ever samples (hallucination metrics), and any further groups
(e.g. fine-tuning individuals) follow. All arrays are indexed by individual id.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Population:
  """Attributes of every individual, as indices into the value lists."""

  first_N: np.ndarray  # int32 index into first_names
  middle_N: np.ndarray  # int32 index into first_names
  last_N: np.ndarray  # int32 index into last_names
  values_NxA: np.ndarray  # int32 value id per attribute type
  templates_NxAxK: np.ndarray  # uint8 permutation of the K templates of each attribute type
  n_individuals: int  # training population: ids [0, n_individuals)
  n_heldout: int  # held-out ids [n_individuals, n_individuals + n_heldout)
  n_templates_train: int  # the first n_templates_train of each permutation are for training
  n_templates_eval: int  # the last n_templates_eval are for evaluation

  @property
  def size(self) -> int:
    return len(self.first_N)

  @property
  def heldout_ids(self) -> np.ndarray:
    return np.arange(self.n_individuals, self.n_individuals + self.n_heldout)

  def pool(self, name: str) -> np.ndarray:
    """Template ids an individual may use: 'train' -> [N, A, n_train], 'eval' -> [N, A, n_eval]."""
    if name == "train":
      return self.templates_NxAxK[:, :, : self.n_templates_train]
    if name == "eval":
      return self.templates_NxAxK[:, :, self.templates_NxAxK.shape[2] - self.n_templates_eval :]
    raise ValueError(f"pool: got {name!r}; allowed: 'train', 'eval'.")


def make_population(
  *,
  n_individuals: int,
  n_heldout: int,
  n_extra: int = 0,
  n_first_names: int,
  n_last_names: int,
  n_values_A: tuple[int, ...],
  n_templates: int,
  n_templates_train: int,
  n_templates_eval: int,
  seed: int,
) -> Population:
  """Samples n_individuals + n_heldout + n_extra individuals with unique full names.

  Names are drawn without replacement from all first x middle x last combinations, attribute
  values independently and uniformly, and per individual and attribute type a random
  permutation of the templates (its head is the training pool, its tail the evaluation pool).
  """
  size = n_individuals + n_heldout + n_extra
  n_names = n_first_names**2 * n_last_names
  if size > n_names:
    raise ValueError(
      f"n_individuals: {n_individuals} + n_heldout {n_heldout} + {n_extra} more exceeds the "
      f"{n_names:,} unique full names the name lists allow."
    )
  if n_templates_train + n_templates_eval > n_templates:
    raise ValueError(
      f"n_templates_train: {n_templates_train} + n_templates_eval {n_templates_eval} must be "
      f"at most the {n_templates} templates per attribute type."
    )
  rng = np.random.default_rng(seed)
  code_N = rng.choice(n_names, size=size, replace=False)  # unique (first, middle, last) codes
  first_N, middle_N, last_N = _decode_names(code_N, n_first_names, n_last_names)
  values_NxA, templates_NxAxK = _draw_attributes(rng, size, n_values_A, n_templates)
  return Population(
    first_N=first_N.astype(np.int32),
    middle_N=middle_N.astype(np.int32),
    last_N=last_N.astype(np.int32),
    values_NxA=values_NxA.astype(np.int32),
    templates_NxAxK=templates_NxAxK,
    n_individuals=n_individuals,
    n_heldout=n_heldout,
    n_templates_train=n_templates_train,
    n_templates_eval=n_templates_eval,
  )


def extend_population(
  population: Population,
  n_new: int,
  *,
  n_first_names: int,
  n_last_names: int,
  n_values_A: tuple[int, ...],
  seed: int,
) -> Population:
  """`population` followed by n_new individuals with full names none of it uses, uniform
  attribute values and their own template splits. The existing ids are untouched (a bigger
  make_population would redraw everyone)."""
  rng = np.random.default_rng([seed, 0xF17E])
  n_names = n_first_names**2 * n_last_names
  taken = (
    population.first_N.astype(np.int64) * n_first_names + population.middle_N
  ) * n_last_names + population.last_N
  if population.size + n_new > n_names:
    raise ValueError(
      f"n_finetune: {n_new} new individuals do not fit beside the "
      f"{population.size:,} existing ones in the {n_names:,} unique full names."
    )
  code_M = np.empty(0, np.int64)
  while len(code_M) < n_new:  # rejection: names are plentiful next to a population
    draw = rng.integers(0, n_names, size=2 * (n_new - len(code_M)) + 16)
    draw = draw[~np.isin(draw, taken) & ~np.isin(draw, code_M)]
    _, first = np.unique(draw, return_index=True)
    code_M = np.concatenate([code_M, draw[np.sort(first)][: n_new - len(code_M)]])
  first_M, middle_M, last_M = _decode_names(code_M, n_first_names, n_last_names)
  n_templates = population.templates_NxAxK.shape[2]
  values_MxA, templates_MxAxK = _draw_attributes(rng, n_new, n_values_A, n_templates)
  cat = lambda old, new: np.concatenate([old, new.astype(old.dtype)])
  return dataclasses.replace(
    population,
    first_N=cat(population.first_N, first_M),
    middle_N=cat(population.middle_N, middle_M),
    last_N=cat(population.last_N, last_M),
    values_NxA=cat(population.values_NxA, values_MxA),
    templates_NxAxK=cat(population.templates_NxAxK, templates_MxAxK),
  )


def _decode_names(code_N: np.ndarray, n_first_names: int, n_last_names: int):
  """(first, middle, last) name indices of full-name codes."""
  first_N, rest_N = np.divmod(code_N, n_first_names * n_last_names)
  middle_N, last_N = np.divmod(rest_N, n_last_names)
  return first_N, middle_N, last_N


def _draw_attributes(rng: np.random.Generator, size: int, n_values_A, n_templates: int):
  """Uniform attribute values [size, A] and per individual and attribute type a random
  permutation of the templates [size, A, K]."""
  values_NxA = np.stack([rng.integers(0, n, size=size) for n in n_values_A], axis=1)
  templates_NxAxK = np.broadcast_to(
    np.arange(n_templates, dtype=np.uint8), (size, len(n_values_A), n_templates)
  ).copy()
  rng.permuted(templates_NxAxK, axis=2, out=templates_NxAxK)
  return values_NxA, templates_NxAxK
