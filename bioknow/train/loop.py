"""The training loop shared by every experiment: train, evaluate on schedule, checkpoint, resume.

It writes a run directory's metrics.jsonl (one line per evaluation, through RunDir),
per_individual.zarr (train.per_individual) and the orbax checkpoints/; the experiment that
called it writes summary.json from what it returns (experiments.common.finish) and changes
its steps only through train.hooks. Re-running the same run continues where train.resume
says, so the final files are identical to an uninterrupted run's. The accelerator is never
waited on inside the loop except at progress lines (every few seconds) and evaluations.
"""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from bioknow.rundir import RunDir
from bioknow.train import attempts, evaluation
from bioknow.train import step as step_lib
from bioknow.train.checkpoint import Checkpointer
from bioknow.train.hooks import Hooks
from bioknow.train.per_individual import PerIndividual
from bioknow.train.progress import Progress
from bioknow.train.resume import resume
from bioknow.validate import check_bool, check_int, is_int, is_number

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  n_steps: int = 16_000
  batch_size: int = 128
  seed: int = 0  # model initialisation and data sampling
  compute_dtype: str = "float32"  # 'bfloat16' on accelerators: bf16 compute, f32 parameters
  n_devices: int | None = None  # data-parallel devices (None: all local devices)
  progress_seconds: float = 5.0
  data_threads: int = 2  # prefetching only: batches do not depend on it
  pack: bool = True  # biographies end to end in fixed rows: no compute on padding
  # End the run at the evaluation that confirms the plateau's end (the experiments pass
  # experiments.common.plateau_stop as Hooks.stop): for sweeps that measure only when the
  # plateau ends. The lr schedule still spans n_steps, so the steps run are the full run's.
  stop_after_plateau: bool = False

  def check(self) -> None:
    """Validates the fields (one sentence naming the field)."""
    for name, low in (("n_steps", 1), ("batch_size", 1), ("seed", 0), ("data_threads", 0)):
      check_int(f"train.{name}", getattr(self, name), low)
    if self.n_devices is not None and not (is_int(self.n_devices) and self.n_devices >= 1):
      raise ValueError(
        f"train.n_devices: got {self.n_devices!r}; it must be None (all local devices) or an "
        "integer >= 1."
      )
    seconds = self.progress_seconds
    if not is_number(seconds, finite=True) or seconds < 0:
      raise ValueError(f"train.progress_seconds: got {seconds!r}; it must be a finite number >= 0.")
    for name in ("pack", "stop_after_plateau"):
      check_bool(f"train.{name}", getattr(self, name))
    if self.compute_dtype not in DTYPES:
      raise ValueError(
        f"train.compute_dtype: got {self.compute_dtype!r}; allowed: {', '.join(DTYPES)}."
      )
    n = self.device_count()
    if self.batch_size % n:
      raise ValueError(
        f"train.batch_size: {self.batch_size} is not divisible by the {n} "
        "devices; use a multiple of the device count."
      )

  def device_count(self) -> int:
    """The number of data-parallel devices the run uses."""
    available = len(jax.local_devices())
    n = self.n_devices or available
    if not 1 <= n <= available:
      raise ValueError(f"train.n_devices: got {n}; this machine has {available}.")
    return n


class TrainingDiverged(RuntimeError):
  pass


class Trained(NamedTuple):
  """What a training run returns: its evaluation records (all of them, resumed ones too) and
  the throughput of this call."""

  records: list[dict]
  stats: dict


def _finite(loss: float, step: int, ckpt: Checkpointer) -> float:
  """The mean training loss, unless it diverged: then the run stops, naming the last good
  checkpoint (no later one is saved)."""
  if not math.isfinite(loss):
    raise TrainingDiverged(
      f"the training loss became {loss} before step {step}; the last good checkpoint is step "
      f"{ckpt.latest_step()}."
    )
  return loss


def train(
  *,
  run_dir: RunDir,
  model,
  opt_state,
  optimizer,
  lr_schedule: Callable,
  batches,
  eval_sets: dict,
  eval_cfg: evaluation.EvalConfig,
  train_cfg: TrainConfig,
  attributes: tuple[str, ...],
  population_size: int,
  baselines: dict[str, float],
  hooks: Hooks | None = None,
  n_compute: int | None = None,
) -> Trained:
  """Runs (or resumes) training in `run_dir` from (model, opt_state), or from the latest
  usable checkpoint when there is one; returns the records and the throughput.

  optimizer: built with step_lib.make_optimizer(cfg, lr_schedule), the lr_schedule given
  here: the lr logged at each evaluation is lr_schedule at the state's schedule step, the lr
  the next update applies. batches: a Grain IterDataset of the run's batches, element k =
  batch of step k. hooks: what the experiment changes (train.hooks). n_compute: the token
  rows a step computes, its real tokens only (pipeline.compute_tokens); a batch with more
  real tokens, or None, computes every position.
  """
  train_cfg.check()
  hooks = hooks or Hooks()
  n_devices = train_cfg.device_count()
  baseline = sum(baselines.values()) / len(baselines)
  mesh = step_lib.data_mesh(n_devices)
  dtype = DTYPES[train_cfg.compute_dtype]
  run_dir.path.mkdir(parents=True, exist_ok=True)
  store = PerIndividual(run_dir, population_size)
  ckpt = Checkpointer(run_dir.checkpoints_dir)
  model, opt_state = step_lib.replicate((model, opt_state), mesh)
  start, model, opt_state, iterator, records = resume(
    run_dir, ckpt, store, model, opt_state, batches, mesh
  )
  step = start or 0
  eval_steps = [s for s in eval_cfg.schedule(train_cfg.n_steps) if s > step or start is None]
  patterns_fn, stop = hooks.patterns, hooks.stop

  def run_eval(step: int, loss_sum, n_losses: int) -> dict:
    # The steps queued before it are training time, not evaluation time.
    jax.block_until_ready(model)
    with progress.evaluation(step):
      # A patched run is evaluated as it trains: with the patterns it would use at this step.
      eval_patterns = (lambda batch: patterns_fn(batch, step)) if patterns_fn else None
      record, per_individual = evaluation.evaluate(
        model, eval_sets, eval_cfg, mesh, dtype, attributes, population_size, eval_patterns
      )
      train_loss = _finite(float(loss_sum) / n_losses, step, ckpt) if n_losses else None
      lr = float(lr_schedule(step_lib.schedule_step(opt_state)))
      record = (
        {"step": step, "lr": lr, "train_loss": train_loss, "no_knowledge_baseline": baseline}
        | record
        | {f"no_knowledge_baseline/{a}": b for a, b in baselines.items()}
      )
      run_dir.append_record(record)
      store.append(per_individual)
      ckpt.save(step, model, opt_state, iterator, {"step": step})
      ledger.note(step - (start or 0))
      records.append(record)
    return record

  progress = Progress(step, train_cfg.n_steps, train_cfg.progress_seconds)
  ledger = attempts.Ledger(run_dir)  # the run's time over every attempt
  loss_sum, n_losses = jnp.zeros(()), 0
  if eval_steps and eval_steps[0] == step:
    run_eval(step, loss_sum, 0)
    eval_steps.pop(0)
  try:
    # A resumed run whose stop already held (killed at that evaluation) runs no step.
    stopped = step < train_cfg.n_steps and stop is not None and stop(records)
    while step < train_cfg.n_steps and not stopped:
      batch = next(iterator)
      n_real = progress.count(batch)
      if step == hooks.reset_optimizer_at:
        params = eqx.filter(model, eqx.is_array)
        opt_state = step_lib.replicate(step_lib.fresh_state(optimizer, params, step), mesh)
      inputs = step_lib.model_inputs(batch)
      slots = inputs["tokens"].size
      device_batch = step_lib.shard_batch(inputs, mesh)
      patterns = patterns_fn(device_batch, step) if patterns_fn else None
      started = time.perf_counter()
      model, opt_state, loss = step_lib.train_step(
        optimizer,
        model,
        opt_state,
        device_batch["tokens"],
        device_batch["role"],
        dtype,
        patterns,
        device_batch.get("positions"),
        device_batch.get("segment"),
        n_compute if n_compute is not None and n_real <= n_compute < slots else None,
      )
      loss_sum, n_losses, step = loss_sum + loss, n_losses + 1, step + 1
      progress.stepped(loss, started)
      if progress.due():
        progress.print_progress(step, _finite(float(loss_sum) / n_losses, step, ckpt))
      if eval_steps and eval_steps[0] == step:
        progress.print_evaluation(run_eval(step, loss_sum, n_losses), baseline)
        loss_sum, n_losses = jnp.zeros(()), 0
        eval_steps.pop(0)
        stopped = stop is not None and stop(records)
  finally:
    ckpt.wait()
    ckpt.close()
    if hasattr(iterator, "close"):
      iterator.close()
  stats = progress.stats(step - (start or 0), n_devices)
  return Trained(records, stats | ledger.totals(step - (start or 0)))
