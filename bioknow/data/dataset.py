"""The data configuration and the dataset it builds: lists, tokenizer, tables, population."""

import dataclasses
import functools

import numpy as np
import sentencepiece as spm

from bioknow.data import biography
from bioknow.data import lists as lists_lib
from bioknow.data import tokenizer as tok
from bioknow.data.population import Population, make_population
from bioknow.data.templates import ATTRIBUTES, TEMPLATES
from bioknow.validate import check_bool, check_int

MAX_INDIVIDUALS = 1_000_000  # a design limit (memory of the template table), not a name limit


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What a run's data is. Defaults are the paper's (64k individuals, 20/5 template split)."""

  n_individuals: int = 64_000
  n_heldout: int = 4_096  # never sampled in training; hallucination metrics
  n_extra: int = 0  # further individuals after the held-out ones (e.g. for fine-tuning)
  n_templates_train: int = 20
  n_templates_eval: int = 5
  shuffle_sentences: bool = True
  tokenizer: str = "bio_32k"  # 'bio_4k', 'bio_32k' or a path to a .model file
  lists_dir: str | None = None  # None: the checked-in third_party/ lists
  attributes: tuple[str, ...] = ATTRIBUTES
  # Caps on the lists (None: the whole list). Small populations need small lists, or most
  # names and values never occur in training and the baseline is not what a model can reach.
  n_first_names: int | None = None
  n_last_names: int | None = None
  max_values: int | None = None  # per attribute type other than birth dates
  birth_years: tuple[int, int] = (1900, 2100)
  birth_months: int = 12  # the first birth_months months of the year
  birth_days: int = 31  # the first birth_days days of each month
  # Number only the tokens that biographies can contain (the special ones keep their ids):
  # with short lists most of a tokenizer's vocabulary never occurs, and the model then
  # computes no logits for it. Model token ids are then not tokenizer ids (Dataset.sp_ids).
  compact_vocab: bool = False
  seed: int = 0

  @property
  def list_options(self) -> dict:
    return dict(
      attributes=tuple(self.attributes),
      n_first_names=self.n_first_names,
      n_last_names=self.n_last_names,
      max_values=self.max_values,
      birth_years=tuple(self.birth_years),
      birth_months=self.birth_months,
      birth_days=self.birth_days,
    )

  def validate(self) -> lists_lib.ValueLists:
    """Checks every field (reading the lists); raises one sentence naming the bad field."""
    for name in (
      "n_individuals",
      "n_heldout",
      "n_extra",
      "n_templates_train",
      "n_templates_eval",
      "seed",
    ):
      check_int(name, getattr(self, name), 0, numpy=True)
    if self.n_individuals < 1 or self.n_individuals > MAX_INDIVIDUALS:
      raise ValueError(f"n_individuals: got {self.n_individuals}; allowed 1..{MAX_INDIVIDUALS:,}.")
    if self.n_templates_train < 1 or self.n_templates_eval < 1:
      raise ValueError("n_templates_train and n_templates_eval: each must be at least 1.")
    for name in ("shuffle_sentences", "compact_vocab"):
      check_bool(name, getattr(self, name))
    lists_lib.check_attributes(tuple(self.attributes))
    tok.check_tokenizer(self.tokenizer)
    n_templates = min(len(TEMPLATES[a]) for a in self.attributes)
    if self.n_templates_train + self.n_templates_eval > n_templates:
      raise ValueError(
        f"n_templates_train: {self.n_templates_train} + n_templates_eval "
        f"{self.n_templates_eval} must be at most the {n_templates} templates per attribute."
      )
    lists = lists_lib.load_lists(self.lists_dir, **self.list_options)
    size = self.n_individuals + self.n_heldout + self.n_extra
    if size > lists.n_full_names:
      raise ValueError(
        f"n_individuals: {self.n_individuals} + n_heldout {self.n_heldout} + n_extra "
        f"{self.n_extra} = {size:,} exceeds the {lists.n_full_names:,} unique full names "
        "that the name lists allow."
      )
    return lists


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Everything needed to assemble biographies for one run."""

  config: DataConfig
  lists: lists_lib.ValueLists
  sp: spm.SentencePieceProcessor
  tables: biography.TokenTables
  population: Population

  @property
  def seq_len(self) -> int:
    return self.tables.seq_len

  @property
  def vocab_size(self) -> int:
    return self.tables.vocab_size

  def sp_ids(self, tokens: np.ndarray) -> np.ndarray:
    """The tokenizer ids of model token ids (the same ids unless compact_vocab)."""
    return self.tables.tokenizer_ids_V[tokens]

  @functools.cached_property
  def no_knowledge_baseline(self) -> float:
    return lists_lib.no_knowledge_baseline(self.lists)

  @functools.cached_property
  def baselines(self) -> dict[str, float]:
    """Per attribute type, the no-knowledge baseline ln(number of values)."""
    return lists_lib.baselines(self.lists)

  def assemble(
    self, individual_B: np.ndarray, pool: str, rng: np.random.Generator
  ) -> biography.Biographies:
    return biography.assemble(
      self.tables, self.population, individual_B, pool, rng, shuffle=self.config.shuffle_sentences
    )


@functools.lru_cache(maxsize=8)
def _tables(tokenizer: str, lists_dir: str | None, options: tuple, compact_vocab: bool):
  lists = lists_lib.load_lists(lists_dir, **dict(options))
  sp = tok.load_tokenizer(tokenizer)
  return lists, sp, biography.build_tables(sp, lists, compact_vocab)


def _cached_tables(config: DataConfig):
  return _tables(
    config.tokenizer, config.lists_dir, tuple(config.list_options.items()), config.compact_vocab
  )


def vocab_size(config: DataConfig) -> int:
  """The model vocabulary of `config`'s data, without building a population."""
  config.validate()
  return _cached_tables(config)[2].vocab_size


def build_dataset(config: DataConfig) -> Dataset:
  """Validates `config`, then builds the tables (cached per tokenizer) and the population."""
  config.validate()
  lists, sp, tables = _cached_tables(config)
  population = make_population(
    n_individuals=config.n_individuals,
    n_heldout=config.n_heldout,
    n_extra=config.n_extra,
    n_first_names=len(lists.first_names),
    n_last_names=len(lists.last_names),
    n_values_A=tuple(len(v) for v in lists.values.values()),
    n_templates=tables.codes_AxKxC.shape[1],
    n_templates_train=config.n_templates_train,
    n_templates_eval=config.n_templates_eval,
    seed=config.seed,
  )
  return Dataset(config, lists, sp, tables, population)
