"""Fine-tuning a finished pretraining run on new or on already-seen individuals (claim 6).

The run starts from the final checkpoint of `source`, a pretraining run directory (relative
paths are relative to the sweep's workdir, the parent of this run's directory). Its
population is the source's, extended with n_finetune new individuals after every existing id:

  [0, N)            pre-training individuals (identical to the source's)
  [N, N + H)        held-out individuals, never trained on (hallucination metrics)
  [S, S + n)        new fine-tuning individuals, S = the source population's size

Each training sequence is about a fine-tuning individual (weight 1 each) or a replayed
pre-training individual (weight_replay each; 0 = no replay): schedules.FinetuneMixture.
With finetune_ids = (a, b) instead, the run fine-tunes on already-seen individuals [a, b) of
[0, N) (the non-celebrities of a celebrities run), replaying the others with weight_replay.

Optimizer state: reset_optimizer=True (the default) starts AdamW afresh, as when a released
model is fine-tuned; False carries the source's final moments and step count over, so the
lr schedule would stand past its end: it needs the constant schedule. Either way the
fine-tuning optimizer settings (lr, schedule, ...) are this config's.

Metrics: the standard keys (attribute_loss, ... on the pre-training individuals, unseen_* on
the held-out ones) plus NAME/attribute_loss, NAME/attribute_accuracy (and per attribute) for
each reported group, by default "pretrain" and "finetune". summary.json adds, per group,
NAME/attribute_accuracy_start, _min and _min_step (the earliest step of the minimum), and
pretrain_accuracy_before_finetune, min_pretrain_accuracy, min_pretrain_accuracy_step.
"""

import dataclasses

import equinox as eqx
import jax

from bioknow.data import pipeline, schedules
from bioknow.data.dataset import DataConfig, Dataset, build_dataset
from bioknow.data.population import extend_population
from bioknow.experiments.common import plateau_stop
from bioknow.experiments.pretrain import PretrainConfig, model_shapes, train_lm, untrained_ids
from bioknow.models.transformer import LanguageModel, ModelConfig
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train.checkpoint import Checkpointer
from bioknow.train.evaluation import EvalConfig
from bioknow.train.hooks import Hooks
from bioknow.train.step import OptimizerConfig, learning_rate, make_optimizer
from bioknow.validate import check_bool, check_int, is_number


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """A fine-tuning run. `data` and `model` must equal the source run's (checked against its
  stored config before any compute); the run adds the n_finetune new individuals itself."""

  source: str = "pretrain"  # run directory of a finished pretraining run
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  optimizer: OptimizerConfig = OptimizerConfig(lr=3e-5, schedule="constant")
  train: loop.TrainConfig = loop.TrainConfig(n_steps=4_000)
  eval: EvalConfig = EvalConfig(every=25, dense_until=500, n_spaced=16)
  n_finetune: int = 0  # new individuals
  finetune_ids: tuple[int, int] | None = None  # or: already-seen ids [a, b) of [0, N)
  weight_replay: float = 0.0  # per pre-training individual, relative to 1 per fine-tuning one
  reset_optimizer: bool = True
  # Groups reported as NAME/metric: (name, start, stop) id ranges; None: pretrain, finetune.
  eval_groups: tuple[tuple[str, int, int], ...] | None = None

  @property
  def run_data(self) -> DataConfig:
    """The fine-tuning run's data: the source's plus the new individuals."""
    return dataclasses.replace(self.data, n_extra=self.data.n_extra + self.n_finetune)

  @property
  def finetune_range(self) -> tuple[int, int]:
    if self.finetune_ids is not None:
      start, stop = self.finetune_ids
      return start, stop
    start = self.data.n_individuals + self.data.n_heldout + self.data.n_extra
    return start, start + self.n_finetune

  @property
  def groups(self) -> tuple[tuple[str, int, int], ...]:
    if self.eval_groups is not None:
      return tuple((name, start, stop) for name, start, stop in self.eval_groups)
    return (("pretrain", 0, self.data.n_individuals), ("finetune", *self.finetune_range))

  @property
  def n_steps(self) -> int:
    return self.train.n_steps

  def check(self) -> None:
    """Everything that can be wrong without reading the source."""
    if not isinstance(self.source, str) or not self.source:
      raise ValueError(
        f"source: got {self.source!r}; give the run directory of a finished pretraining run."
      )
    check_int("n_finetune", self.n_finetune, 0)
    if not (is_number(self.weight_replay, finite=True) and self.weight_replay >= 0):
      raise ValueError(
        f"weight_replay: got {self.weight_replay!r}; it must be a finite number "
        ">= 0 (the sampling weight of each pre-training individual; 0 = no "
        "replay)."
      )
    check_bool("reset_optimizer", self.reset_optimizer)
    n = self.data.n_individuals
    if self.finetune_ids is None:
      if self.n_finetune < 1:
        raise ValueError(
          "n_finetune: got 0; fine-tune on n_finetune >= 1 new individuals or "
          "on already-seen ones (finetune_ids)."
        )
    else:
      if self.n_finetune:
        raise ValueError(
          f"n_finetune: got {self.n_finetune} together with finetune_ids; "
          "fine-tune on new individuals or on already-seen ones, not both."
        )
      ids = tuple(self.finetune_ids)
      if len(ids) != 2 or not all(isinstance(i, int) for i in ids) or not 0 <= ids[0] < ids[1]:
        raise ValueError(
          f"finetune_ids: got {self.finetune_ids!r}; give (start, stop) with 0 <= start < stop."
        )
      if ids[1] > n:
        raise ValueError(
          f"finetune_ids: [{ids[0]}, {ids[1]}) overlaps the held-out "
          f"individuals [{n}, {n + self.data.n_heldout}); already-seen ids must "
          f"lie in the pre-training population [0, {n})."
        )
      if self.weight_replay > 0 and ids == (0, n):
        raise ValueError(
          f"weight_replay: got {self.weight_replay} but finetune_ids cover the "
          f"whole pre-training population [0, {n}): nobody is left to replay."
        )
    self.run_data.validate()
    self.model.resolved()
    self.optimizer.check()
    self.train.check()
    self.eval.check(self.train.n_steps, self.train.device_count())
    if not self.reset_optimizer and self.optimizer.schedule != "constant":
      raise ValueError(
        f"optimizer.schedule: got {self.optimizer.schedule!r} with reset_optimizer=False; the "
        "carried-over step count starts past the end of this run's schedule, so use "
        "schedule='constant' or reset_optimizer=True."
      )
    data = self.run_data
    pipeline.check_groups(self.groups, data.n_individuals + data.n_heldout + data.n_extra)
    start, stop = self.finetune_range
    trained = [(0, n)] + ([(start, stop)] if self.finetune_ids is None else [])
    schedules.check_reach(
      self.build_schedule(), self.train.n_steps, trained, untrained_ids(self.data)
    )

  def build_schedule(self):
    start, stop = self.finetune_range
    if self.finetune_ids is None:
      return schedules.FinetuneMixture(
        n_pretrain=self.data.n_individuals,
        new_start=start,
        new_stop=stop,
        weight_replay=float(self.weight_replay),
      )
    return SeenMixture(
      n_pretrain=self.data.n_individuals,
      start=start,
      stop=stop,
      weight_replay=float(self.weight_replay),
    )

  def train_cost(self) -> tuple[float, str]:
    """Rough model FLOPs of the fine-tuning steps (launcher time estimates)."""
    return PretrainConfig(data=self.data, model=self.model, train=self.train).train_cost()

  def sources(self) -> tuple[str, ...]:
    return (self.source,)

  def key_metrics(self) -> tuple[str, ...]:
    return ("pretrain/attribute_accuracy", "finetune/attribute_accuracy", "min_pretrain_accuracy")

  def check_sources(self, run_dir: RunDir) -> None:
    """Raises one sentence unless the source is a finished pretraining run with this
    config's data and model and a checkpoint of its final step."""
    source = RunDir(run_dir).source(self.source)
    if not source.path.is_dir():
      raise ValueError(
        f"source: {source.path} does not exist; run its pretraining first (a sweep "
        "that also yields the source point runs it first)."
      )
    summary = source.summary()
    if summary is None:
      raise ValueError(
        f"source: {source.path} is unfinished (no summary.json); finish it first "
        "(re-running its sweep resumes it)."
      )
    if summary.get("experiment", "pretrain") != "pretrain":
      raise ValueError(
        f"source: {source.path} is a {summary['experiment']} run; fine-tuning starts "
        "from a pretraining run."
      )
    step = summary.get("step")
    if step not in source.checkpoint_steps():
      raise ValueError(f"source: {source.path} has no checkpoint of its final step {step}.")
    if not source.has_config():
      raise ValueError(
        f"source: {source.path} has no config.json; run the source with bioknow.run or "
        "the launcher (python -m bioknow.launch), which write it."
      )
    theirs = source.experiment()
    for name, mine, other in (
      ("data", self.data, theirs.data),
      ("model", self.model, theirs.model),
    ):
      for field in dataclasses.fields(mine):
        a, b = getattr(mine, field.name), getattr(other, field.name)
        if a != b:
          raise ValueError(
            f"{name}.{field.name}: got {a!r} but the source run {source.path} used "
            f"{b!r}; the fine-tuning population and model must be the source's."
          )
    ckpt = Checkpointer(source.checkpoints_dir, create=False)
    try:
      error = ckpt.restore_error(step, **self._restored_shapes())
    finally:
      ckpt.close()
    if error:
      raise ValueError(
        f"source: the checkpoint of step {step} in {source.path} does not restore ({error}); "
        "delete its summary.json and re-run its sweep: it resumes from its newest checkpoint "
        "that restores."
      )

  def _restored_shapes(self) -> dict:
    """The shapes of what `run` restores from the source: its model, and its optimizer
    state unless reset_optimizer (computed abstractly: nothing is initialised)."""
    model = model_shapes(self.model, self.data)
    if self.reset_optimizer:
      return {"model": model}
    optimizer = make_optimizer(self.optimizer, learning_rate(self.optimizer, self.train.n_steps))
    params = eqx.filter(model, lambda x: isinstance(x, jax.ShapeDtypeStruct))
    return {"model": model, "opt_state": jax.eval_shape(optimizer.init, params)}

  def run(self, run_dir: RunDir) -> dict:
    return run(self, RunDir(run_dir))


@dataclasses.dataclass(frozen=True)
class SeenMixture:
  """Fine-tuning on already-seen ids [start, stop) (weight 1 each), replaying the other
  pre-training individuals [0, n_pretrain) with weight_replay each."""

  n_pretrain: int
  start: int
  stop: int
  weight_replay: float

  def at(self, step: int) -> schedules.Ranges:
    ranges = [(self.start, self.stop, 1.0)]
    if self.weight_replay > 0:
      ranges += [
        (a, b, self.weight_replay)
        for a, b in ((0, self.start), (self.stop, self.n_pretrain))
        if b > a
      ]
    return schedules.Ranges(*(tuple(x) for x in zip(*ranges)))


def finetune_dataset(cfg: FinetuneConfig) -> Dataset:
  """The source's dataset with the new individuals appended."""
  ds = build_dataset(cfg.data)
  if not cfg.n_finetune:
    return ds
  population = extend_population(
    ds.population,
    cfg.n_finetune,
    n_first_names=len(ds.lists.first_names),
    n_last_names=len(ds.lists.last_names),
    n_values_A=tuple(len(v) for v in ds.lists.values.values()),
    seed=cfg.data.seed,
  )
  return dataclasses.replace(ds, config=cfg.run_data, population=population)


def restore_source(source: RunDir, step: int, model, opt_state=None):
  """The source's model (and optimizer state, given a skeleton) at checkpoint `step`."""
  ckpt = Checkpointer(source.checkpoints_dir)
  try:
    if opt_state is None:
      return ckpt.restore_arrays(step, model=model)["model"], None
    restored = ckpt.restore_arrays(step, model=model, opt_state=opt_state)
    return restored["model"], restored["opt_state"]
  finally:
    ckpt.close()


def forgetting_summary(records: list[dict], groups) -> dict:
  """Per group: accuracy at the first evaluation, its minimum and the earliest step of it;
  and the same for the pre-training individuals as pretrain_accuracy_before_finetune,
  min_pretrain_accuracy, min_pretrain_accuracy_step (from the "pretrain" group if reported,
  else from the standard set of pre-training individuals)."""
  out: dict[str, float] = {}
  for key in [f"{name}/attribute_accuracy" for name, *_ in groups] + ["attribute_accuracy"]:
    points = [(r[key], r["step"]) for r in records if key in r]
    if points:
      low, low_step = min(points)
      out |= {f"{key}_start": points[0][0], f"{key}_min": low, f"{key}_min_step": low_step}
  key = (
    "pretrain/attribute_accuracy"
    if "pretrain/attribute_accuracy_start" in out
    else "attribute_accuracy"
  )
  if f"{key}_start" in out:
    out |= {
      "pretrain_accuracy_before_finetune": out[f"{key}_start"],
      "min_pretrain_accuracy": out[f"{key}_min"],
      "min_pretrain_accuracy_step": out[f"{key}_min_step"],
    }
  return out


def run(cfg: FinetuneConfig, run_dir: RunDir) -> dict:
  cfg.check()
  cfg.check_sources(run_dir)  # before any compute
  source = run_dir.source(cfg.source)
  source_step = (source.summary() or {})["step"]  # there: check_sources says so
  ds = finetune_dataset(cfg)
  model = LanguageModel(cfg.model, ds.vocab_size, key=jax.random.key(cfg.train.seed))
  skeleton = None
  if not cfg.reset_optimizer:  # the source's state, under this run's optimizer settings
    optimizer = make_optimizer(cfg.optimizer, learning_rate(cfg.optimizer, cfg.train.n_steps))
    skeleton = optimizer.init(eqx.filter(model, eqx.is_array))
  model, opt_state = restore_source(source, source_step, model, skeleton)
  fields = {
    "experiment": "finetune",
    "source_run": str(source.path),
    "source_step": source_step,
    "n_finetune": cfg.n_finetune,
    "finetune_ids": list(cfg.finetune_range),
    "weight_replay": cfg.weight_replay,
    "reset_optimizer": cfg.reset_optimizer,
  }
  return train_lm(
    run_dir,
    cfg,
    ds=ds,
    schedule=cfg.build_schedule(),
    model=model,
    opt_state=opt_state,
    groups=cfg.groups,
    hooks=Hooks(stop=plateau_stop(cfg.train)),
    fields=fields,
    summarise=lambda records: forgetting_summary(records, cfg.groups),
  )
