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
model is fine-tuned; False carries the source's final moments and step count over. Either
way the fine-tuning optimizer settings (lr, constant schedule, ...) are this config's.

Metrics: the standard keys (attribute_loss, ... on the pre-training individuals, unseen_* on
the held-out ones) plus NAME/attribute_loss, NAME/attribute_accuracy (and per attribute) for
each reported group, by default "pretrain" and "finetune". summary.json adds, per group,
NAME/attribute_accuracy_start, _min and _min_step (the earliest step of the minimum), and
pretrain_accuracy_before_finetune, min_pretrain_accuracy, min_pretrain_accuracy_step.
"""

import ast
import dataclasses
import json
import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from bioknow.data import pipeline, schedules
from bioknow.data.dataset import DataConfig, Dataset, build_dataset
from bioknow.data.population import Population
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.models.transformer import LanguageModel, ModelConfig, count_parameters
from bioknow.train import loop
from bioknow.train.checkpoint import Checkpointer
from bioknow.train.evaluation import EvalConfig
from bioknow.train.step import OptimizerConfig, learning_rate, make_optimizer

_RESERVED = ("seen", "seen_train_templates", "heldout")  # names of the standard eval sets


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """A fine-tuning run. `data` and `model` must equal the source run's (checked against its
  config.txt before any compute); the run adds the n_finetune new individuals itself."""

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
      return tuple(self.finetune_ids)
    start = self.data.n_individuals + self.data.n_heldout + self.data.n_extra
    return start, start + self.n_finetune

  @property
  def groups(self) -> tuple[tuple[str, int, int], ...]:
    if self.eval_groups is not None:
      return tuple(tuple(g) for g in self.eval_groups)
    return (("pretrain", 0, self.data.n_individuals), ("finetune", *self.finetune_range))

  def check(self):
    """Everything that can be wrong without reading the source; returns the schedule."""
    if not isinstance(self.source, str) or not self.source:
      raise ValueError(
        f"source: got {self.source!r}; give the run directory of a finished pretraining run."
      )
    if (
      not isinstance(self.n_finetune, int)
      or isinstance(self.n_finetune, bool)
      or self.n_finetune < 0
    ):
      raise ValueError(f"n_finetune: got {self.n_finetune!r}; it must be an integer >= 0.")
    if (
      not isinstance(self.weight_replay, (int, float))
      or not math.isfinite(self.weight_replay)
      or self.weight_replay < 0
    ):
      raise ValueError(
        f"weight_replay: got {self.weight_replay!r}; it must be a finite number "
        ">= 0 (the sampling weight of each pre-training individual; 0 = no "
        "replay)."
      )
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
    n_devices = self.train.check()
    self.eval.check(self.train.n_steps, n_devices)
    data = self.run_data
    size = data.n_individuals + data.n_heldout + data.n_extra
    names = [g[0] for g in self.groups]
    for name, start, stop in self.groups:
      if name in _RESERVED or names.count(name) > 1:
        raise ValueError(
          f"eval_groups: the name {name!r} is taken; use unique names other "
          f"than {', '.join(_RESERVED)}."
        )
      if not 0 <= start < stop <= size:
        raise ValueError(
          f"eval_groups: {name} = [{start}, {stop}) must lie in the population [0, {size})."
        )
    return self.build_schedule()

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

  def train_flops(self) -> float:
    """Rough model FLOPs of the fine-tuning steps (launcher time estimates)."""
    return PretrainConfig(data=self.data, model=self.model, train=self.train).train_flops()

  def source_dir(self, run_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(self.source)
    return path if path.is_absolute() else pathlib.Path(run_dir).parent / path

  def sources(self) -> tuple[str, ...]:
    return (self.source,)

  def check_sources(self, run_dir: pathlib.Path) -> int:
    """Raises one sentence unless the source is a finished pretraining run with this
    config's data and model; returns the step of its final checkpoint."""
    source = self.source_dir(run_dir)
    if not source.is_dir():
      raise ValueError(
        f"source: {source} does not exist; run its pretraining first (a sweep "
        "that also yields the source point runs it first)."
      )
    if not (source / "summary.json").exists():
      raise ValueError(
        f"source: {source} is unfinished (no summary.json); finish it first "
        "(re-running its sweep resumes it)."
      )
    summary = json.loads((source / "summary.json").read_text())
    if summary.get("experiment", "pretrain") != "pretrain":
      raise ValueError(
        f"source: {source} is a {summary['experiment']} run; fine-tuning starts "
        "from a pretraining run."
      )
    step = summary.get("step")
    if step is None or not (source / "checkpoints" / str(step)).is_dir():
      raise ValueError(f"source: {source} has no checkpoint of its final step {step}.")
    data, model = source_configs(source)
    for name, mine, theirs in (("data", self.data, data), ("model", self.model, model)):
      for field in dataclasses.fields(mine):
        a, b = getattr(mine, field.name), getattr(theirs, field.name)
        if (tuple(a) if isinstance(a, list) else a) != (tuple(b) if isinstance(b, list) else b):
          raise ValueError(
            f"{name}.{field.name}: got {a!r} but the source run {source} used "
            f"{b!r}; the fine-tuning population and model must be the source's."
          )
    return step

  def run(self, workdir: str | pathlib.Path) -> dict:
    return run(self, pathlib.Path(workdir))


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


def source_configs(source: pathlib.Path) -> tuple[DataConfig, ModelConfig]:
  """The DataConfig and ModelConfig of a run, read from the config.txt the launcher wrote
  (one `path = repr` line per field; unset fields take the class defaults)."""
  path = source / "config.txt"
  if not path.exists():
    raise ValueError(
      f"source: {source} has no config.txt; run the source through the "
      "launcher (python -m bioknow.launch), which writes it."
    )
  fields = {"data": {}, "model": {}}
  for line in path.read_text().splitlines():
    key, sep, value = line.partition(" = ")
    prefix, _, name = key.partition(".")
    if prefix in fields and not name and sep:
      raise ValueError(
        f"source: {path} gives {prefix} as one value; it needs one line per "
        "field (build the source's config with fdl.Config)."
      )
    if not sep or prefix not in fields or not name.isidentifier() or value.startswith("<["):
      continue
    try:
      fields[prefix][name] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      raise ValueError(f"source: cannot read `{line}` in {path}.") from None
  try:
    return DataConfig(**fields["data"]), ModelConfig(**fields["model"])
  except TypeError as e:
    raise ValueError(f"source: {path} does not describe a bioknow run ({e}).") from None


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
  first_M, rest_M = np.divmod(code_M, n_first_names * n_last_names)
  middle_M, last_M = np.divmod(rest_M, n_last_names)
  values_MxA = np.stack([rng.integers(0, n, size=n_new) for n in n_values_A], axis=1)
  _, n_attributes, n_templates = population.templates_NxAxK.shape
  templates_MxAxK = np.broadcast_to(
    np.arange(n_templates, dtype=np.uint8), (n_new, n_attributes, n_templates)
  ).copy()
  rng.permuted(templates_MxAxK, axis=2, out=templates_MxAxK)
  cat = lambda old, new: np.concatenate([old, new.astype(old.dtype)])
  return dataclasses.replace(
    population,
    first_N=cat(population.first_N, first_M),
    middle_N=cat(population.middle_N, middle_M),
    last_N=cat(population.last_N, last_M),
    values_NxA=cat(population.values_NxA, values_MxA),
    templates_NxAxK=cat(population.templates_NxAxK, templates_MxAxK),
  )


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


def training_batches(cfg: FinetuneConfig, ds: Dataset, schedule):
  return pipeline.training_batches(
    ds,
    schedule,
    batch_size=cfg.train.batch_size,
    n_steps=cfg.train.n_steps,
    seed=cfg.train.seed,
    num_threads=cfg.train.data_threads,
  )


def _arrays(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, eqx.filter(tree, eqx.is_array))


def restore_source(source: pathlib.Path, step: int, model, opt_state=None):
  """The source's model (and optimizer state, given a skeleton) at checkpoint `step`."""
  ckpt = Checkpointer(source / "checkpoints")
  try:
    model = ckpt.restore_model(step, model)
    if opt_state is not None:
      restored = ckpt.manager.restore(
        step, args=ocp.args.Composite(opt_state=ocp.args.StandardRestore(_arrays(opt_state)))
      )
      opt_state = eqx.combine(restored.opt_state, eqx.partition(opt_state, eqx.is_array)[1])
  finally:
    ckpt.close()
  return model, opt_state


def _carried_over(optimizer: optax.GradientTransformation, opt_state):
  """`optimizer`, except that init returns (a copy of) `opt_state` placed like the params."""

  def init(params):
    sharding = next(x.sharding for x in jax.tree.leaves(params) if eqx.is_array(x))
    return jax.tree.map(
      lambda x: jax.device_put(jnp.array(x, copy=True), sharding) if eqx.is_array(x) else x,
      opt_state,
    )

  return optax.GradientTransformation(init, optimizer.update)


def forgetting_summary(records: list[dict], groups) -> dict:
  """Per group: accuracy at the first evaluation, its minimum and the earliest step of it;
  and the same for the pre-training individuals as pretrain_accuracy_before_finetune,
  min_pretrain_accuracy, min_pretrain_accuracy_step (from the "pretrain" group if reported,
  else from the standard set of pre-training individuals)."""
  out = {}
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


def run(cfg: FinetuneConfig, workdir: pathlib.Path) -> dict:
  schedule = cfg.check()
  source = cfg.source_dir(workdir)
  source_step = cfg.check_sources(workdir)
  ds = finetune_dataset(cfg)
  model = LanguageModel(cfg.model, ds.vocab_size, key=jax.random.key(cfg.train.seed))
  optimizer = make_optimizer(cfg.optimizer, cfg.train.n_steps)
  skeleton = None if cfg.reset_optimizer else optimizer.init(eqx.filter(model, eqx.is_array))
  model, opt_state = restore_source(source, source_step, model, skeleton)
  if opt_state is not None:
    optimizer = _carried_over(optimizer, opt_state)
  eval_sets = pipeline.standard_eval_sets(
    ds,
    cfg.eval.n_sequences,
    cfg.train.seed,
    groups={name: (start, stop) for name, start, stop in cfg.groups},
  )
  summary = loop.train(
    workdir=workdir,
    model=model,
    optimizer=optimizer,
    lr_schedule=learning_rate(cfg.optimizer, cfg.train.n_steps),
    batches=training_batches(cfg, ds, schedule),
    eval_sets=eval_sets,
    eval_cfg=cfg.eval,
    train_cfg=cfg.train,
    attributes=ds.tables.attributes,
    population_size=ds.population.size,
    baseline=ds.no_knowledge_baseline,
    extra_summary={
      "experiment": "finetune",
      "source_run": str(source),
      "source_step": source_step,
      "n_finetune": cfg.n_finetune,
      "finetune_ids": list(cfg.finetune_range),
      "weight_replay": cfg.weight_replay,
      "reset_optimizer": cfg.reset_optimizer,
      "n_parameters": count_parameters(model)["total"],
      "seq_len": ds.seq_len,
    },
  )
  records = [
    json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line
  ]
  summary |= forgetting_summary(records, cfg.groups)
  tmp = workdir / "summary.json.tmp"
  tmp.write_text(json.dumps(summary, indent=2) + "\n")
  tmp.replace(workdir / "summary.json")
  return summary
