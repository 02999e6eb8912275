"""Pretraining on biographies under a sampling schedule (claims 1, 3, 4 and 5 of the paper)."""

import dataclasses
import pathlib
from typing import Callable

import jax

from bioknow.data import pipeline, schedules
from bioknow.data.dataset import DataConfig, Dataset, build_dataset
from bioknow.experiments.common import build_schedule
from bioknow.models.transformer import LanguageModel, ModelConfig, count_parameters
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
        raise ValueError(f"eval_groups: {name} = [{start}, {stop}) must lie in the training "
                         f"population [0, {self.data.n_individuals}).")
    return schedule

  def build_schedule(self):
    return build_schedule(self.schedule, n_individuals=self.data.n_individuals,
                          batch_size=self.train.batch_size, n_steps=self.train.n_steps)

  def run(self, workdir: str | pathlib.Path) -> dict:
    return run(self, pathlib.Path(workdir))


def prepare(cfg: PretrainConfig):
  """The dataset, schedule, initial model, optimizer and evaluation sets of a run."""
  schedule = cfg.check()
  ds: Dataset = build_dataset(cfg.data)
  model = LanguageModel(cfg.model, ds.vocab_size, key=jax.random.key(cfg.train.seed))
  optimizer = make_optimizer(cfg.optimizer, cfg.train.n_steps)
  eval_sets = pipeline.standard_eval_sets(
      ds, cfg.eval.n_sequences, cfg.train.seed,
      groups={name: (start, stop) for name, start, stop in cfg.eval_groups})
  return ds, schedule, model, optimizer, eval_sets


def run(cfg: PretrainConfig, workdir: pathlib.Path, **loop_kwargs) -> dict:
  ds, schedule, model, optimizer, eval_sets = prepare(cfg)
  batches = pipeline.training_batches(ds, schedule, batch_size=cfg.train.batch_size,
                                      n_steps=cfg.train.n_steps, seed=cfg.train.seed,
                                      num_threads=cfg.train.data_threads)
  return loop.train(
      workdir=workdir, model=model, optimizer=optimizer,
      lr_schedule=learning_rate(cfg.optimizer, cfg.train.n_steps), batches=batches,
      eval_sets=eval_sets, eval_cfg=cfg.eval, train_cfg=cfg.train,
      attributes=ds.tables.attributes, population_size=ds.population.size,
      baseline=ds.no_knowledge_baseline,
      extra_summary={"n_parameters": count_parameters(model)["total"], "seq_len": ds.seq_len},
      **loop_kwargs)
