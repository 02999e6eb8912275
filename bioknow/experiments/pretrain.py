"""Pretraining on biographies under a sampling schedule (claims 1, 3, 4 and 5 of the paper)."""

import dataclasses
import pathlib
from collections.abc import Callable

import jax

from bioknow.data import dataset, pipeline, schedules
from bioknow.data.dataset import DataConfig, Dataset, build_dataset
from bioknow.experiments.common import build_schedule
from bioknow.models.transformer import LanguageModel, ModelConfig, count_parameters, flops_per_token
from bioknow.train import loop
from bioknow.train.evaluation import EvalConfig
from bioknow.train.step import OptimizerConfig, learning_rate, make_optimizer


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  optimizer: OptimizerConfig = OptimizerConfig()
  train: loop.TrainConfig = loop.TrainConfig()
  eval: EvalConfig = EvalConfig()
  # A schedule class or partial; n_individuals, batch_size, n_steps are filled in from the run.
  schedule: Callable = schedules.Uniform
  # Extra evaluation sets: name -> [start, stop) of individual ids (e.g. celebrities).
  eval_groups: tuple[tuple[str, int, int], ...] = ()

  def check(self):
    """Everything that can be wrong with the config, before any compute; returns the built
    schedule."""
    self.data.validate()
    self.model.resolved()
    self.optimizer.check()
    n_devices = self.train.check()
    self.eval.check(self.train.n_steps, n_devices)
    schedule = self.build_schedule()
    for name, start, stop in self.eval_groups:
      if not 0 <= start < stop <= self.data.n_individuals:
        raise ValueError(
          f"eval_groups: {name} = [{start}, {stop}) must lie in the training "
          f"population [0, {self.data.n_individuals})."
        )
    return schedule

  def build_schedule(self):
    return build_schedule(
      self.schedule,
      n_individuals=self.data.n_individuals,
      batch_size=self.train.batch_size,
      n_steps=self.train.n_steps,
    )

  def train_flops(self) -> float:
    """Rough model FLOPs of the run's training, for time estimates: biographies of about
    90 tokens in sequences of about 130 (both vary a little with the lists and tokenizer)."""
    tokens = self.train.n_steps * self.train.batch_size * 90
    return tokens * flops_per_token(self.model, dataset.vocab_size(self.data), seq_len=130)

  def run(self, workdir: str | pathlib.Path) -> dict:
    return run(self, pathlib.Path(workdir))


def prepare(cfg: PretrainConfig):
  """The dataset, schedule, initial model, optimizer and evaluation sets of a run."""
  schedule = cfg.check()
  ds: Dataset = build_dataset(cfg.data)
  model = LanguageModel(cfg.model, ds.vocab_size, key=jax.random.key(cfg.train.seed))
  optimizer = make_optimizer(cfg.optimizer, cfg.train.n_steps)
  eval_sets = pipeline.standard_eval_sets(
    ds,
    cfg.eval.n_sequences,
    cfg.train.seed,
    groups={name: (start, stop) for name, start, stop in cfg.eval_groups},
  )
  return ds, schedule, model, optimizer, eval_sets


def training_batches(train: loop.TrainConfig, ds: Dataset, schedule):
  """The run's batches, packed into rows (a whole number per device) unless train.pack is
  False."""
  pack_shape = None
  if train.pack:
    rows, row_len = pipeline.pack_shape_for(ds, schedule, train.batch_size, train.seed)
    n_devices = train.check()
    pack_shape = (-(-rows // n_devices) * n_devices, row_len)
  return pipeline.training_batches(
    ds,
    schedule,
    batch_size=train.batch_size,
    n_steps=train.n_steps,
    seed=train.seed,
    num_threads=train.data_threads,
    pack_shape=pack_shape,
  )


def run(
  cfg: PretrainConfig, workdir: pathlib.Path, extra_summary: dict | None = None, **loop_kwargs
) -> dict:
  """Trains `cfg` in `workdir`; loop_kwargs go to loop.train (e.g. patterns_fn)."""
  ds, schedule, model, optimizer, eval_sets = prepare(cfg)
  batches = training_batches(cfg.train, ds, schedule)
  return loop.train(
    workdir=workdir,
    model=model,
    optimizer=optimizer,
    lr_schedule=learning_rate(cfg.optimizer, cfg.train.n_steps),
    batches=batches,
    eval_sets=eval_sets,
    eval_cfg=cfg.eval,
    train_cfg=cfg.train,
    attributes=ds.tables.attributes,
    population_size=ds.population.size,
    baseline=ds.no_knowledge_baseline,
    extra_summary={
      "experiment": "pretrain",
      "n_parameters": count_parameters(model)["total"],
      "seq_len": ds.seq_len,
    }
    | (extra_summary or {}),
    **loop_kwargs,
  )
