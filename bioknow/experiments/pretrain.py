"""Pretraining on biographies under a sampling schedule (claims 1, 3, 4 and 5 of the paper)."""

import dataclasses
from collections.abc import Callable
from typing import Protocol

import equinox as eqx
import jax

from bioknow.data import dataset, pipeline, schedules
from bioknow.data.dataset import DataConfig, Dataset, build_dataset
from bioknow.experiments.common import build_schedule, finish, plateau_stop
from bioknow.models.transformer import LanguageModel, ModelConfig, count_parameters, flops_per_token
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train.evaluation import EvalConfig
from bioknow.train.hooks import Hooks
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

  @property
  def n_steps(self) -> int:
    return self.train.n_steps

  def check(self) -> None:
    """Everything that can be wrong with the config, before any compute."""
    self.data.validate()
    self.model.resolved()
    self.optimizer.check()
    self.train.check()
    self.eval.check(self.train.n_steps, self.train.device_count())
    try:
      schedule = self.build_schedule()
    except ValueError as e:
      raise ValueError(f"schedule.{e}") from None
    n = self.data.n_individuals
    schedules.check_reach(schedule, self.train.n_steps, [(0, n)], untrained_ids(self.data))
    pipeline.check_groups(self.eval_groups, n, "training population")

  def build_schedule(self):
    return build_schedule(
      self.schedule,
      n_individuals=self.data.n_individuals,
      batch_size=self.train.batch_size,
      n_steps=self.train.n_steps,
    )

  def sources(self) -> tuple[str, ...]:
    return ()

  def check_sources(self, run_dir: RunDir) -> None:
    del run_dir  # reads no other run

  def key_metrics(self) -> tuple[str, ...]:
    return ("plateau_end_step", "attribute_loss", "attribute_accuracy", "unseen_attribute_loss")

  def train_cost(self) -> tuple[float, str]:
    """Rough model FLOPs of the run's training: biographies of about 90 tokens in sequences
    of about 130 (both vary a little with the lists and tokenizer)."""
    tokens = self.train.n_steps * self.train.batch_size * 90
    flops = tokens * flops_per_token(self.model, dataset.vocab_size(self.data), seq_len=130)
    return flops, self.train.compute_dtype

  def run(self, run_dir: RunDir) -> dict:
    return run(self, RunDir(run_dir))


def model_shapes(model: ModelConfig, data: DataConfig) -> LanguageModel:
  """The model of (model, data) with jax.ShapeDtypeStruct leaves: what its checkpoints hold,
  found without initialising anything."""
  return eqx.filter_eval_shape(
    LanguageModel, model, dataset.vocab_size(data), key=jax.random.key(0)
  )


def untrained_ids(data: DataConfig) -> str:
  """The ids after the training population, in words: held-out ones, then extra ones."""
  n, h, e = data.n_individuals, data.n_heldout, data.n_extra
  parts = [f"the held-out ids [{n}, {n + h})"] if h else []
  parts += [f"the extra ids [{n + h}, {n + h + e})"] if e else []
  return " and ".join(parts) or "ids outside them"


def initial_model(cfg: PretrainConfig) -> LanguageModel:
  """The model a run starts from: its model config, vocabulary and train.seed."""
  return LanguageModel(cfg.model, dataset.vocab_size(cfg.data), key=jax.random.key(cfg.train.seed))


def training_batches(train: loop.TrainConfig, ds: Dataset, schedule):
  """The run's batches, packed into rows (a whole number per device) unless train.pack is
  False; plain rows are trimmed to the run's planned length (pipeline.plain_row_len)."""
  pack_shape, row_len = None, None
  if not train.pack:
    row_len = pipeline.plain_row_len(ds, schedule, train.batch_size, train.seed)
  else:
    rows, row_len = pipeline.pack_shape_for(ds, schedule, train.batch_size, train.seed)
    n_devices = train.device_count()
    pack_shape = (-(-rows // n_devices) * n_devices, row_len)
  return pipeline.training_batches(
    ds,
    schedule,
    batch_size=train.batch_size,
    n_steps=train.n_steps,
    seed=train.seed,
    num_threads=train.data_threads,
    pack_shape=pack_shape,
    row_len=row_len,
  )


class TrainingSettings(Protocol):
  """The settings train_lm reads (PretrainConfig and FinetuneConfig have them)."""

  @property
  def optimizer(self) -> OptimizerConfig: ...

  @property
  def train(self) -> loop.TrainConfig: ...

  @property
  def eval(self) -> EvalConfig: ...


def train_lm(
  run_dir: RunDir,
  cfg: TrainingSettings,
  *,
  ds: Dataset,
  schedule,
  model: LanguageModel,
  opt_state,
  groups: tuple[tuple[str, int, int], ...],
  hooks: Hooks,
  fields: dict,
  summarise: Callable[[list[dict]], dict] | None = None,
) -> dict:
  """Trains a language model on `ds` under `schedule` with cfg's optimizer, train and eval
  settings and the experiment's hooks (every experiment on biographies comes here), then
  writes the summary (finish): the loop's, the run's size, `fields` and summarise(records).
  opt_state None starts the optimizer afresh."""
  lr_schedule = learning_rate(cfg.optimizer, cfg.train.n_steps)
  optimizer = make_optimizer(cfg.optimizer, lr_schedule)
  if opt_state is None:
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
  eval_sets = pipeline.standard_eval_sets(
    ds, cfg.eval.n_sequences, cfg.train.seed, groups={name: (a, b) for name, a, b in groups}
  )
  # Real tokens only (pipeline.compute_tokens), on one device: over several, finding them
  # would gather the whole batch on every device.
  n_compute = None
  if cfg.train.device_count() == 1:
    n_compute = pipeline.compute_tokens(ds, schedule, cfg.train.batch_size, cfg.train.seed)
  trained = loop.train(
    run_dir=run_dir,
    model=model,
    opt_state=opt_state,
    optimizer=optimizer,
    lr_schedule=lr_schedule,
    batches=training_batches(cfg.train, ds, schedule),
    eval_sets=eval_sets,
    eval_cfg=cfg.eval,
    train_cfg=cfg.train,
    attributes=ds.tables.attributes,
    population_size=ds.population.size,
    baselines=ds.baselines,
    hooks=hooks,
    n_compute=n_compute,
  )
  size = {"n_parameters": count_parameters(model)["total"], "seq_len": ds.seq_len}
  return finish(run_dir, trained, size, fields, summarise=summarise)


def run(
  cfg: PretrainConfig, run_dir: RunDir, *, hooks: Hooks | None = None, fields: dict | None = None
) -> dict:
  """Trains `cfg` in `run_dir` and writes its summary. A variant of pretraining (patching)
  passes its hooks (default: the plateau stop of cfg.train) and its summary fields (default:
  experiment 'pretrain')."""
  cfg.check()
  return train_lm(
    run_dir,
    cfg,
    ds=build_dataset(cfg.data),
    schedule=cfg.build_schedule(),
    model=initial_model(cfg),
    opt_state=None,
    groups=cfg.eval_groups,
    hooks=hooks or Hooks(stop=plateau_stop(cfg.train)),
    fields=fields or {"experiment": "pretrain"},
  )
