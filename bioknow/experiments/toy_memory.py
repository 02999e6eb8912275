"""The toy associative memory (Appendix F.4, claim 7): fine-tuning on new key-value pairs
corrupts old ones, without any attention.

One run pre-trains a one-hidden-layer ReLU MLP (bioknow.models.toy_memory) to map n_pairs fixed
random unit keys to their values (n_values-way classification), then fine-tunes it on n_new new
pairs, each new pair with sampling weight 1 and each old pair with weight weight_replay (0 = no
replay). Both phases are one jitted call each: a lax.scan over evaluation chunks, each a
lax.scan over training steps followed by an evaluation on all old pairs (and, when fine-tuning,
all new pairs), so Python never waits on a step. Pairs and batches are drawn on the host with
numpy (a phase's batches all at once, as indices), seeded by (seed, phase): the same seed gives
the same result, and pre-training does not depend on the fine-tuning settings, so every point
of a sweep fine-tunes the same pre-trained memory. Drawing on the host also keeps random-number
code out of the compiled program, whose compilation dominates a run's time on a CPU.

The run directory gets metrics.jsonl (one line per evaluation: step, phase, lr, train_loss,
pretrain/loss, pretrain/accuracy on the old pairs and, when fine-tuning, finetune_step,
finetune/loss, finetune/accuracy on the new pairs; the step where fine-tuning starts has a
'pretrain' line and a 'finetune' line) and, once finished, summary.json. There are no
checkpoints: a paper-size run takes seconds to a minute on a CPU, so an interrupted run (no
summary.json) simply starts again from scratch when relaunched and overwrites its metrics.
"""

import dataclasses
import functools
import math
import time
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
import optax

from bioknow.models.toy_memory import ToyMemory
from bioknow.rundir import RunDir
from bioknow.train.step import OptimizerConfig, learning_rate, make_optimizer
from bioknow.validate import check_int, is_int, is_number


@dataclasses.dataclass(frozen=True)
class ToyMemoryConfig:
  """The paper's defaults: 256 hidden units, 64-dimensional embeddings, 30 values, 8,192
  pairs; AdamW with a cosine schedule from lr 0.03 (weight decay 0.01), 16k steps of batch 128;
  fine-tuning at a constant lr 1e-3 for 4k steps on 128 new pairs. The paper gives neither the
  betas nor the fine-tuning weight decay: the library's (0.9, 0.95) and 0.01 are used."""

  d_embed: int = 64
  d_hidden: int = 256
  n_values: int = 30
  n_pairs: int = 8_192
  batch_size: int = 128
  seed: int = 0  # embeddings, pairs, initialisation and sampling
  pretrain_steps: int = 16_000
  pretrain_optimizer: OptimizerConfig = OptimizerConfig(lr=0.03, weight_decay=0.01)
  pretrain_eval_every: int = 250
  n_new: int = 128
  weight_replay: float = 0.0  # sampling weight of each old pair relative to a new pair's 1
  finetune_steps: int = 4_000
  finetune_optimizer: OptimizerConfig = OptimizerConfig(
    lr=1e-3, schedule="constant", weight_decay=0.01
  )
  finetune_eval_every: int = 20  # the old-pair collapse takes ~100 steps: evaluate densely

  def check(self) -> None:
    """Raises ValueError (one sentence naming the field) before any compute."""
    minimum = dict(
      d_embed=1,
      d_hidden=1,
      n_values=2,
      n_pairs=1,
      batch_size=1,
      pretrain_steps=1,
      pretrain_eval_every=1,
      n_new=1,
      finetune_steps=1,
      finetune_eval_every=1,
    )
    for name, low in minimum.items():
      check_int(name, getattr(self, name), low)
    if not is_int(self.seed) or self.seed < 0:
      raise ValueError(f"seed: got {self.seed!r}; it must be an integer >= 0.")
    for phase in ("pretrain", "finetune"):
      steps, every = getattr(self, f"{phase}_steps"), getattr(self, f"{phase}_eval_every")
      if steps % every:
        raise ValueError(
          f"{phase}_eval_every: {every} does not divide {phase}_steps = {steps}; "
          "use a divisor so evaluations fall on a regular grid."
        )
      try:
        getattr(self, f"{phase}_optimizer").check()
      except ValueError as e:
        raise ValueError(f"{phase}_{e}") from None
    if not (is_number(self.weight_replay, finite=True) and self.weight_replay >= 0):
      raise ValueError(
        f"weight_replay: got {self.weight_replay!r}; it must be a finite number "
        ">= 0 (0 = no replay)."
      )

  @property
  def replay_fraction(self) -> float:
    """Probability that a fine-tuning example is an old pair."""
    old = self.weight_replay * self.n_pairs
    return old / (old + self.n_new)

  @property
  def n_steps(self) -> int:
    return self.pretrain_steps + self.finetune_steps

  def sources(self) -> tuple[str, ...]:
    return ()

  def check_sources(self, run_dir: RunDir) -> None:
    del run_dir  # reads no other run

  def key_metrics(self) -> tuple[str, ...]:
    return (
      "pretrain/accuracy_before_finetune",
      "min_pretrain_accuracy_during_finetune",
      "min_pretrain_accuracy_finetune_step",
      "finetune/accuracy",
    )

  def train_cost(self) -> tuple[float, str]:
    return 0.0, "float32"  # seconds at most: compilation dominates

  def run(self, run_dir: RunDir) -> dict:
    return run(self, RunDir(run_dir))


class ToyTask(NamedTuple):
  """Fixed embeddings and pairs (host arrays): old pairs are pre-trained on, new pairs
  fine-tuned on."""

  values_VxD: np.ndarray  # float32 [V, D], unit rows
  old_keys_NxD: np.ndarray  # float32 [N, D], unit rows
  old_targets_N: np.ndarray  # int32 [N], in [0, V)
  new_keys_MxD: np.ndarray  # float32 [M, D], unit rows
  new_targets_M: np.ndarray  # int32 [M], in [0, V)


def random_unit_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
  """n vectors drawn from a standard normal in d dimensions, projected onto the unit sphere."""
  x_NxD = rng.standard_normal((n, d))
  return (x_NxD / np.linalg.norm(x_NxD, axis=-1, keepdims=True)).astype(np.float32)


def make_task(cfg: ToyMemoryConfig) -> ToyTask:
  """Random unit embeddings and uniformly random values, drawn on the host (numpy, no
  compilation). New pairs are drawn last, so the values and old pairs do not depend on n_new."""
  rng = np.random.default_rng([cfg.seed, 0])
  values_VxD = random_unit_vectors(rng, cfg.n_values, cfg.d_embed)
  old_keys_NxD = random_unit_vectors(rng, cfg.n_pairs, cfg.d_embed)
  old_targets_N = rng.integers(0, cfg.n_values, cfg.n_pairs, dtype=np.int32)
  new_keys_MxD = random_unit_vectors(rng, cfg.n_new, cfg.d_embed)
  new_targets_M = rng.integers(0, cfg.n_values, cfg.n_new, dtype=np.int32)
  return ToyTask(values_VxD, old_keys_NxD, old_targets_N, new_keys_MxD, new_targets_M)


def init_model(cfg: ToyMemoryConfig) -> ToyMemory:
  key = jax.random.fold_in(jax.random.key(cfg.seed), 1)
  return eqx.filter_jit(ToyMemory)(cfg.d_embed, cfg.d_hidden, key=key)


def sample_indices(
  rng: np.random.Generator, shape: tuple[int, ...], n_old: int, n_new: int, p_old: float
) -> np.ndarray:
  """Training examples as indices into the table [old pairs; new pairs]: each is an old pair
  with probability p_old (uniform among old pairs), else a new pair (uniform among new ones).
  Per-pair weights w for old and 1 for new pairs give p_old = w N / (w N + M)."""
  is_old = rng.random(shape) < p_old
  i_old = rng.integers(0, n_old, shape, dtype=np.int32)
  i_new = rng.integers(0, max(n_new, 1), shape, dtype=np.int32)
  return np.where(is_old, i_old, n_old + i_new).astype(np.int32)


def _loss_and_accuracy(model: ToyMemory, keys_BxD, targets_B, values_VxD):
  logits_BxV = model.batch(keys_BxD, values_VxD)
  loss_B = optax.softmax_cross_entropy_with_integer_labels(logits_BxV, targets_B)
  return loss_B.mean(), (logits_BxV.argmax(-1) == targets_B).mean()


def evaluate(model: ToyMemory, values_VxD, eval_sets: dict) -> dict:
  """'{name}/loss' and '{name}/accuracy' over all pairs of each eval set (keys, targets)."""
  out = {}
  for name, (keys_KxD, targets_K) in eval_sets.items():
    out[f"{name}/loss"], out[f"{name}/accuracy"] = _loss_and_accuracy(
      model, keys_KxD, targets_K, values_VxD
    )
  return out


@eqx.filter_jit
def train_phase(
  model: ToyMemory,
  optimizer: optax.GradientTransformation,
  values_VxD,
  keys_KxD,
  targets_K,
  index_CxSxB,
  eval_sets: dict,
):
  """C x S AdamW steps from a fresh optimizer state on the batches index_CxSxB of the table
  (keys_KxD, targets_K), evaluating before the first chunk and after each chunk of S steps.
  Returns the model, the initial evaluation and per-chunk arrays [C]: the mean train loss and
  evaluate()'s metrics. Every shape comes from the arguments: nothing is static but the
  optimizer."""

  def train_step(carry, index_B):
    model, opt_state = carry
    (loss, _), grads = eqx.filter_value_and_grad(_loss_and_accuracy, has_aux=True)(
      model, keys_KxD[index_B], targets_K[index_B], values_VxD
    )
    updates, opt_state = optimizer.update(grads, opt_state, model)
    return (eqx.apply_updates(model, updates), opt_state), loss

  def chunk(carry, index_SxB):
    carry, loss_S = jax.lax.scan(train_step, carry, index_SxB)
    return carry, {"train_loss": loss_S.mean()} | evaluate(carry[0], values_VxD, eval_sets)

  initial = evaluate(model, values_VxD, eval_sets)
  (model, _), metrics = jax.lax.scan(chunk, (model, optimizer.init(model)), index_CxSxB)
  return model, initial, metrics


@functools.lru_cache
def _optimizer(cfg: OptimizerConfig, n_steps: int):
  """(optimizer, lr schedule): one optimizer object per (config, steps), since filter_jit keys
  its cache on it, so the points of a sweep run in one process share their compiled phases."""
  lr_schedule = learning_rate(cfg, n_steps)
  return make_optimizer(cfg, lr_schedule), lr_schedule


def _records(
  initial: dict, metrics: dict, *, phase: str, first_step: int, every: int, lr_schedule
) -> list[dict]:
  """One JSON line per evaluation; the phase's initial evaluation has train_loss None."""
  initial, metrics = jax.device_get((initial, metrics))
  rows = [{k: float(v) for k, v in initial.items()} | {"train_loss": None}]
  rows += [{k: float(v[i]) for k, v in metrics.items()} for i in range(len(metrics["train_loss"]))]
  records = []
  for i, row in enumerate(rows):
    record = {"step": first_step + i * every, "phase": phase}
    if phase == "finetune":
      record["finetune_step"] = i * every
    record["lr"] = float(lr_schedule(i * every))
    records.append(record | {"train_loss": row.pop("train_loss")} | row)
  return records


def _phase(cfg: ToyMemoryConfig, model: ToyMemory, task: ToyTask, phase: str):
  """Runs one phase; returns the model and its metrics records."""
  n_steps, every = getattr(cfg, f"{phase}_steps"), getattr(cfg, f"{phase}_eval_every")
  opt_cfg = getattr(cfg, f"{phase}_optimizer")
  rng = np.random.default_rng([cfg.seed, 1 if phase == "pretrain" else 2])
  shape = (n_steps // every, every, cfg.batch_size)
  old = (task.old_keys_NxD, task.old_targets_N)
  if phase == "pretrain":
    # Old pairs only: the table and eval sets, hence the compiled phase, do not depend on n_new.
    table, eval_sets = old, {"pretrain": old}
    index = sample_indices(rng, shape, cfg.n_pairs, 0, 1.0)
  else:
    table = (
      np.concatenate([task.old_keys_NxD, task.new_keys_MxD]),
      np.concatenate([task.old_targets_N, task.new_targets_M]),
    )
    eval_sets = {"pretrain": old, "finetune": (task.new_keys_MxD, task.new_targets_M)}
    index = sample_indices(rng, shape, cfg.n_pairs, cfg.n_new, cfg.replay_fraction)
  optimizer, lr_schedule = _optimizer(opt_cfg, n_steps)
  model, initial, metrics = train_phase(model, optimizer, task.values_VxD, *table, index, eval_sets)
  first_step = 0 if phase == "pretrain" else cfg.pretrain_steps
  return model, _records(
    initial,
    metrics,
    phase=phase,
    first_step=first_step,
    every=every,
    lr_schedule=lr_schedule,
  )


def run(cfg: ToyMemoryConfig, run_dir: RunDir) -> dict:
  cfg.check()
  start = time.perf_counter()
  task = make_task(cfg)
  model, pre_records = _phase(cfg, init_model(cfg), task, "pretrain")
  before = pre_records[-1]
  print(
    f"pre-trained {cfg.pretrain_steps} steps: old-pair loss {before['pretrain/loss']:.4f}, "
    f"accuracy {before['pretrain/accuracy']:.4f}",
    flush=True,
  )
  model, ft_records = _phase(cfg, model, task, "finetune")
  records = pre_records + ft_records
  run_dir.write_records(records)

  if not all(math.isfinite(r["train_loss"]) for r in records if r["train_loss"] is not None):
    raise FloatingPointError("the training loss became non-finite; lower the learning rates.")
  worst = min(ft_records, key=lambda r: r["pretrain/accuracy"])
  final = ft_records[-1]
  summary = {
    "experiment": "toy_memory",
    "n_pairs": cfg.n_pairs,
    "n_new": cfg.n_new,
    "weight_replay": cfg.weight_replay,
    "replay_fraction": cfg.replay_fraction,
    "no_knowledge_baseline": math.log(cfg.n_values),
    "pretrain/loss_before_finetune": before["pretrain/loss"],
    "pretrain/accuracy_before_finetune": before["pretrain/accuracy"],
    "finetune/accuracy_before_finetune": ft_records[0]["finetune/accuracy"],
    "min_pretrain_accuracy_during_finetune": worst["pretrain/accuracy"],
    "min_pretrain_accuracy_finetune_step": worst["finetune_step"],
    "pretrain/loss": final["pretrain/loss"],
    "pretrain/accuracy": final["pretrain/accuracy"],
    "finetune/loss": final["finetune/loss"],
    "finetune/accuracy": final["finetune/accuracy"],
    "train_loss": final["train_loss"],
    "step": final["step"],
    "wall_seconds": time.perf_counter() - start,
    "device_kind": jax.local_devices()[0].device_kind,
  }
  print(
    f"fine-tuned {cfg.finetune_steps} steps on {cfg.n_new} new pairs (replay weight "
    f"{cfg.weight_replay:g}): old-pair accuracy {before['pretrain/accuracy']:.4f} -> min "
    f"{worst['pretrain/accuracy']:.4f} at step {worst['finetune_step']} -> "
    f"{final['pretrain/accuracy']:.4f}; new-pair accuracy {final['finetune/accuracy']:.4f}",
    flush=True,
  )
  run_dir.write_summary(summary)
  return summary
