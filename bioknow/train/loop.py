"""The training loop shared by every experiment: train, evaluate on schedule, checkpoint, resume.

It writes a run directory's metrics.jsonl (one line per evaluation, through RunDir),
per_individual.zarr and the orbax checkpoints/; the experiment that called it writes
summary.json from the records it returns. Re-running the same run continues from the newest
checkpoint that has its metrics line and restores (newer ones, e.g. torn by a crash, are set
aside in skipped_checkpoints/ with a line saying why): metrics lines past it are dropped and
recomputed, so the final files are identical to an uninterrupted run's. The accelerator is
never waited on inside the loop except at progress lines (every few seconds) and evaluations.
"""

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tensorstore as ts

from bioknow.rundir import RunDir
from bioknow.train import checkpoint, evaluation
from bioknow.train import step as step_lib
from bioknow.train.checkpoint import Checkpointer

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
  # End the run at the evaluation that confirms the plateau's end (evaluation.phase_ends):
  # for sweeps that measure only when the plateau ends. The lr schedule still spans n_steps,
  # so the steps run are exactly those of the full run.
  stop_after_plateau: bool = False

  def check(self) -> None:
    """Validates the fields (one sentence naming the field)."""
    for name, low in (("n_steps", 1), ("batch_size", 1), ("seed", 0), ("data_threads", 0)):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"train.{name}: got {value!r}; it must be an integer >= {low}.")
    if self.n_devices is not None and (
      not isinstance(self.n_devices, int) or isinstance(self.n_devices, bool) or self.n_devices < 1
    ):
      raise ValueError(
        f"train.n_devices: got {self.n_devices!r}; it must be None (all local devices) or an "
        "integer >= 1."
      )
    seconds = self.progress_seconds
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
      raise ValueError(f"train.progress_seconds: got {seconds!r}; it must be a finite number >= 0.")
    for name in ("pack", "stop_after_plateau"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"train.{name}: got {getattr(self, name)!r}; allowed: True, False.")
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


class PerIndividual:
  """per_individual.zarr: one row per evaluation, one column per individual id."""

  def __init__(self, run_dir: RunDir, population_size: int):
    self.population_size = population_size
    path = run_dir / "per_individual.zarr"
    # tensorstore refuses relative paths with ".." in them: give it an absolute one.
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": os.path.abspath(path)}}
    if (path / "zarr.json").exists():
      self.zarr = ts.open(spec, open=True).result()
    else:
      self.zarr = ts.open(
        spec,
        create=True,
        dtype=ts.float32,
        shape=[0, population_size],
        chunk_layout=ts.ChunkLayout(write_chunk_shape=[1, population_size]),
        fill_value=np.nan,
      ).result()

  def truncate(self, n_rows: int) -> None:
    self.zarr = self.zarr.resize(
      exclusive_max=[n_rows, self.population_size], shrink_only=True
    ).result()

  def append(self, per_individual: np.ndarray) -> None:
    n = self.zarr.shape[0]
    self.zarr = self.zarr.resize(
      exclusive_max=[n + 1, self.population_size], expand_only=True
    ).result()
    self.zarr[n].write(per_individual).result()


class Trained(NamedTuple):
  """What a training run returns: its evaluation records (all of them, resumed ones too) and
  the throughput of this call."""

  records: list[dict]
  stats: dict


def _model_inputs(batch: dict) -> dict:
  """The arrays the train step reads, from a plain ([B, T]) or a packed ([R, L]) batch."""
  if "tokens_RxL" in batch:
    return {
      "tokens": batch["tokens_RxL"],
      "role": batch["role_RxL"],
      "positions": batch["position_RxL"],
      "segment": batch["segment_RxL"],
    }
  return {"tokens": batch["tokens_BxT"], "role": batch["role_BxT"]}


def _format_seconds(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _resume(ckpt: Checkpointer, run_dir: RunDir, recorded: set[int], model, opt_state, batches):
  """(step, model, opt_state, iterator) of the newest checkpoint that has its evaluation
  record and restores, or (None, model, opt_state, a fresh iterator) if none does. Newer
  checkpoints are set aside in skipped_checkpoints/ (the run saves those steps again), each
  with one line saying why."""
  iterator, step, skipped = iter(batches), None, []
  for candidate in reversed(ckpt.steps()):
    if candidate not in recorded:
      skipped.append((candidate, "its record in metrics.jsonl is missing or unreadable"))
      continue
    try:
      model, opt_state, _ = ckpt.restore(candidate, model, opt_state, iterator)
      step = candidate
      break
    except Exception as e:  # whatever is broken in it, an older checkpoint may restore
      skipped.append((candidate, f"it does not restore ({checkpoint.failure(e)})"))
      if hasattr(iterator, "close"):
        iterator.close()
      iterator = iter(batches)  # a failed restore may have moved it
  moved = ckpt.set_aside([s for s, _ in skipped], run_dir.path / "skipped_checkpoints")
  for (candidate, why), where in zip(skipped, moved):
    print(f"skipped checkpoint step {candidate}: {why}; moved to {where}.", flush=True)
  return step, model, opt_state, iterator


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
  patterns_fn: Callable | None = None,
  reset_opt_at: int | None = None,
  n_compute: int | None = None,
) -> Trained:
  """Runs (or resumes) training in `run_dir` from (model, opt_state), or from the latest
  checkpoint when there is one; returns the records and the throughput.

  optimizer: built with step_lib.make_optimizer(cfg, lr_schedule), the lr_schedule given
  here: the lr logged at each evaluation is lr_schedule at the state's schedule step, the lr
  the next update applies.
  batches: a Grain IterDataset of the run's batches, element k = batch of step k.
  patterns_fn(batch, step) -> patterns [B, L, H, T, T] or None: attention patterns to use
  instead of the model's own (patching); `batch` is the step's device batch, a dict with
  'tokens' [B, T] and, when packed, 'positions' and 'segment' [B, T]; reset_opt_at: step at
  which the optimizer state is re-initialised (fresh Adam moments; the lr schedule goes on
  at the global step); n_compute: the token rows a step computes, its real tokens only
  (pipeline.compute_tokens); a batch with more real tokens, or None, computes every position.
  """
  train_cfg.check()
  n_devices = train_cfg.device_count()
  baseline = sum(baselines.values()) / len(baselines)
  mesh = step_lib.data_mesh(n_devices)
  dtype = DTYPES[train_cfg.compute_dtype]
  run_dir.path.mkdir(parents=True, exist_ok=True)
  per_individual_store = PerIndividual(run_dir, population_size)
  ckpt = Checkpointer(run_dir.checkpoints_dir)
  model, opt_state = step_lib.replicate((model, opt_state), mesh)
  records, damage = run_dir.read_records()
  if damage:
    print(f"{damage} Records from there on are dropped and recomputed.", flush=True)
  records = records[: per_individual_store.zarr.shape[0]]  # rows of both, or neither
  start, model, opt_state, iterator = _resume(
    ckpt, run_dir, {r["step"] for r in records}, model, opt_state, batches
  )
  if start is not None:
    model, opt_state = step_lib.replicate((model, opt_state), mesh)
    print(f"resuming from step {start}", flush=True)
  records = [r for r in records if start is not None and r["step"] <= start]
  run_dir.write_records(records)
  per_individual_store.truncate(len(records))
  step = start or 0
  eval_steps = [s for s in eval_cfg.schedule(train_cfg.n_steps) if s > step or start is None]

  eval_seconds = 0.0
  # The first evaluation and the first step of this process include compiling their
  # programs: kept apart so that a projection counts compilation once (bench_device), as is
  # the timeline [step, seconds since start, evaluation seconds so far] at each evaluation.
  first_seconds: dict[str, float] = {}
  timeline: list[list[float]] = []

  def run_eval(step, loss_sum, n_losses):
    nonlocal eval_seconds
    started = time.perf_counter()
    # A patched run is evaluated as it trains: with the patterns it would use at this step.
    eval_patterns = (lambda batch: patterns_fn(batch, step)) if patterns_fn else None
    record, per_individual = evaluation.evaluate(
      model, eval_sets, eval_cfg, mesh, dtype, attributes, population_size, eval_patterns
    )
    train_loss = float(loss_sum) / n_losses if n_losses else None
    if train_loss is not None and not math.isfinite(train_loss):
      raise TrainingDiverged(
        f"the training loss became {train_loss} before step {step}; the last good checkpoint "
        f"is step {ckpt.latest_step()}."
      )
    record = (
      {
        "step": step,
        "lr": float(lr_schedule(step_lib.schedule_step(opt_state))),
        "train_loss": train_loss,
        "no_knowledge_baseline": baseline,
      }
      | record
      | {f"no_knowledge_baseline/{a}": b for a, b in baselines.items()}
    )
    run_dir.append_record(record)
    per_individual_store.append(per_individual)
    ckpt.save(step, model, opt_state, iterator, {"step": step})
    records.append(record)
    eval_seconds += time.perf_counter() - started
    first_seconds.setdefault("first_eval_seconds", time.perf_counter() - started)
    timeline.append([step, time.perf_counter() - t_start, eval_seconds])
    return record

  def plateau_over() -> bool:
    """True once train.stop_after_plateau holds and the records confirm the plateau's end."""
    over = (
      train_cfg.stop_after_plateau
      and bool(records)
      and evaluation.phase_ends(records, finished=False)["plateau_end_step"] is not None
    )
    if over:
      print(f"plateau ended: stopped at step {step} (train.stop_after_plateau)", flush=True)
    return over

  t_start = time.perf_counter()
  loss_sum, n_losses, n_tokens, n_dropped = jnp.zeros(()), 0, 0, 0
  last_print, steps_at_print = t_start, step
  if eval_steps and eval_steps[0] == step:
    run_eval(step, loss_sum, 0)
    eval_steps.pop(0)
  try:
    # A resumed run whose plateau already ended (killed at that evaluation) runs no step.
    while step < train_cfg.n_steps and not (step == (start or 0) and plateau_over()):
      batch = next(iterator)
      n_real = int(batch["length_B"].sum())
      n_tokens += n_real - len(batch["length_B"])  # targets, not BOS
      if reset_opt_at is not None and step == reset_opt_at:
        params = eqx.filter(model, eqx.is_array)
        opt_state = step_lib.replicate(step_lib.fresh_state(optimizer, params, step), mesh)
      inputs = _model_inputs(batch)
      slots = inputs["tokens"].size
      device_batch = step_lib.shard_batch(inputs, mesh)
      n_dropped += int(batch.get("dropped", 0))
      patterns = patterns_fn(device_batch, step) if patterns_fn else None
      step_started = time.perf_counter()
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
      if "first_step_seconds" not in first_seconds:  # the one wait on the device, once
        loss.block_until_ready()
        first_seconds["first_step_seconds"] = time.perf_counter() - step_started

      now = time.perf_counter()
      if now - last_print >= train_cfg.progress_seconds:
        mean = float(loss_sum) / n_losses
        if not math.isfinite(mean):
          raise TrainingDiverged(
            f"the training loss became {mean} before step {step}; the last "
            f"good checkpoint is step {ckpt.latest_step()}."
          )
        rate = (step - steps_at_print) / (now - last_print)
        eta = (train_cfg.n_steps - step) / max(rate, 1e-9)
        print(
          f"step {step}/{train_cfg.n_steps}  loss {mean:.4f}  {rate:.2f} steps/s  "
          f"ETA {_format_seconds(eta)}",
          flush=True,
        )
        last_print, steps_at_print = now, step
      if eval_steps and eval_steps[0] == step:
        r = run_eval(step, loss_sum, n_losses)
        print(
          f"eval step {step}: attribute loss {r['attribute_loss']:.4f} (baseline "
          f"{baseline:.4f}), accuracy {r['attribute_accuracy']:.3f}, held-out loss "
          f"{r.get('unseen_attribute_loss', float('nan')):.4f}",
          flush=True,
        )
        loss_sum, n_losses = jnp.zeros(()), 0
        eval_steps.pop(0)
        if plateau_over():
          break
  finally:
    ckpt.wait()
    ckpt.close()
    if hasattr(iterator, "close"):
      iterator.close()

  wall = time.perf_counter() - t_start
  steps_done = step - (start or 0)
  stats = {
    "wall_seconds": wall,
    "eval_seconds": eval_seconds,  # evaluations and checkpoints, within wall_seconds
    **first_seconds,  # first_step_seconds, first_eval_seconds: compilation included
    "timeline": timeline,
    "steps_per_second": steps_done / wall,
    "tokens_per_second": n_tokens / wall,
    "device_kind": jax.local_devices()[0].device_kind,
    "n_devices": n_devices,
    "dropped_biographies": n_dropped,
  }
  return Trained(records, stats)
