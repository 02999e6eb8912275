"""Throughput: biographies/s of the data pipeline, training tokens/s and model FLOP utilisation,
evaluation sequences/s. The command line (bioknow.bench.__main__) prints what train and eval
return; data_throughput prints its own lines."""

import json
import os
import time

import numpy as np

# bench train measures once two consecutive warm-up windows agree within this share, or after
# WARMUP_WINDOWS windows (then it says it did not converge).
WARMUP_AGREEMENT = 0.05
WARMUP_WINDOWS = 40


def _pin_to_one_core() -> int:
  """Runs the process on one core, so the figure is per core whatever the machine."""
  core = min(os.sched_getaffinity(0))
  os.sched_setaffinity(0, {core})
  return core


def _rate(fn, seconds: float) -> float:
  """Calls per second of fn over at least `seconds`, after one warm-up call."""
  fn()
  n, start = 0, time.perf_counter()
  while (elapsed := time.perf_counter() - start) < seconds:
    fn()
    n += 1
  return n / elapsed


def data_throughput(batch_size: int, n_individuals: int, seconds: float) -> None:
  """Assembly alone at `n_individuals` people (64k by default), then the whole Grain pipeline
  (sampling, assembly, iteration) under the uniform and power-law schedules at 256k people;
  prints one JSON line per stage."""
  from bioknow.data import pipeline, schedules
  from bioknow.data.dataset import DataConfig, build_dataset

  core = _pin_to_one_core()
  b = batch_size
  ds = build_dataset(DataConfig(n_individuals=n_individuals, tokenizer="bio_32k"))
  rng = np.random.default_rng(0)
  rate = _rate(
    lambda: ds.assemble(rng.integers(0, ds.config.n_individuals, size=b), "train", rng),
    seconds,
  )
  common = {"bench": "data", "core": core, "batch_size": b, "seq_len": ds.seq_len, "target": 20_000}
  print(
    json.dumps(
      common
      | {
        "stage": "assembly",
        "n_individuals": ds.config.n_individuals,
        "biographies_per_second": round(rate * b),
      }
    )
  )

  n = 256_000
  ds = build_dataset(DataConfig(n_individuals=n, tokenizer="bio_32k"))
  for name, schedule in [
    ("uniform", schedules.Uniform(n)),
    ("power_law", schedules.PowerLaw(n, alpha=0.8)),
  ]:
    it = iter(pipeline.training_batches(ds, schedule, batch_size=b, n_steps=10**9, seed=0))
    rate = _rate(it.__next__, seconds)
    print(
      json.dumps(
        common
        | {
          "stage": f"grain pipeline, {name}",
          "n_individuals": n,
          "biographies_per_second": round(rate * b),
        }
      )
    )


def train_throughput(
  scale: str,
  batch_size: int | None,
  dtype_name: str | None,
  seconds: float,
  model_preset: str | None = None,
  matmul: int | None = None,
) -> dict:
  """Training throughput of a scale's model on its real batches, laid out as its runs lay
  them out (packed rows, or plain rows trimmed to the planned length). batch_size None: the
  config's; dtype_name None: float32 on CPU, bfloat16 elsewhere; matmul: the size of the
  peak-FLOP/s matmul (peak_matmul_flops).

  Model FLOPs per step: 6 x parameters x tokens (embeddings are tied, so the table is also
  the output projection) + 12 x layers x d_model x seq_len x tokens (attention), where tokens
  are the real tokens of the batch: padding, and attention across biographies in a packed
  row, count as waste.
  """
  import equinox as eqx
  import fiddle as fdl
  import jax
  import jax.numpy as jnp

  from bioknow import configs
  from bioknow.data import packing, pipeline
  from bioknow.data.dataset import build_dataset
  from bioknow.models.transformer import LanguageModel, count_parameters, flops_per_token
  from bioknow.train import step as step_lib

  c = configs.pretrain(scale)
  if model_preset:
    c.model.preset = model_preset
  cfg = fdl.build(c)
  on_cpu = jax.default_backend() == "cpu"
  dtype = jnp.dtype(dtype_name or ("float32" if on_cpu else "bfloat16"))
  batch_size = batch_size or cfg.train.batch_size
  ds = build_dataset(cfg.data)
  schedule = cfg.build_schedule()
  mesh = step_lib.data_mesh(1)
  model = step_lib.replicate(LanguageModel(cfg.model, ds.vocab_size, key=jax.random.key(0)), mesh)
  lr_schedule = step_lib.learning_rate(cfg.optimizer, 10_000)
  optimizer = step_lib.make_optimizer(cfg.optimizer, lr_schedule)
  opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
  plain = [pipeline.batch_at(ds, schedule, batch_size, 0, s) for s in range(8)]
  if cfg.train.pack:
    rows, row_len = pipeline.pack_shape_for(ds, schedule, batch_size, 0)
    batches = [packing.pack(b, rows, row_len) for b in plain]
    arrays = [
      {"t": b["tokens_RxL"], "r": b["role_RxL"], "p": b["position_RxL"], "s": b["segment_RxL"]}
      for b in batches
    ]
  else:
    row_len = pipeline.plain_row_len(ds, schedule, batch_size, 0)
    trimmed = [pipeline.trim(b, row_len) for b in plain]
    arrays = [{"t": b["tokens_BxT"], "r": b["role_BxT"]} for b in trimmed]
    rows, row_len = batch_size, max(b["tokens_BxT"].shape[1] for b in trimmed)
  device_batches = [step_lib.shard_batch(a, mesh) for a in arrays]
  tokens_per_batch = [int(b["length_B"].sum()) for b in plain]
  # As runs do (pretrain.train_lm): only the real tokens, in the planned number of rows.
  planned = pipeline.compute_tokens(ds, schedule, batch_size, 0)
  n_compute = planned if max(tokens_per_batch) <= planned < rows * row_len else None

  def train_step(model, opt_state, b):
    return step_lib.train_step(
      optimizer, model, opt_state, b["t"], b["r"], dtype, None, b.get("p"), b.get("s"), n_compute
    )

  def timed(batch_at, seconds):
    """(steps, real tokens, seconds) of training for `seconds` on batch_at(i)."""
    nonlocal model, opt_state
    n_steps, tokens, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n_steps < 3:
      model, opt_state, loss = train_step(model, opt_state, batch_at(n_steps))
      tokens += tokens_per_batch[n_steps % len(tokens_per_batch)]
      n_steps += 1
      if n_steps % 4 == 0:
        loss.block_until_ready()
    loss.block_until_ready()
    return n_steps, tokens, time.perf_counter() - start

  # Warm up (every batch shape compiled, then windows of seconds / 4) until two consecutive
  # windows agree within WARMUP_AGREEMENT: the first steps on a CPU run at half speed, for as
  # long as they please, so a fixed warm-up would let the headline depend on it.
  start = time.perf_counter()
  for b in device_batches:
    model, opt_state, loss = train_step(model, opt_state, b)
  loss.block_until_ready()
  on_device = lambda i: device_batches[i % len(device_batches)]  # noqa: E731
  windows: list[float] = []
  while len(windows) < 2 or (
    abs(windows[-1] - windows[-2]) > WARMUP_AGREEMENT * windows[-1]
    and len(windows) < WARMUP_WINDOWS
  ):
    w_steps, _, w_elapsed = timed(on_device, seconds / 4)
    windows.append(w_steps / w_elapsed)
  warmup = {
    "warmup_seconds": round(time.perf_counter() - start, 1),
    "warmup_windows_steps_per_second": [round(w, 3) for w in windows],
    "warmup_converged": abs(windows[-1] - windows[-2]) <= WARMUP_AGREEMENT * windows[-1],
  }
  n_steps, tokens, elapsed = timed(on_device, seconds)
  # As a run feeds it: each step's batch put on the device from host memory just before the
  # step. Slower than the line above when the transfer waits on the device.
  host_steps, _, host_elapsed = timed(
    lambda i: step_lib.shard_batch(arrays[i % len(arrays)], mesh), seconds / 2
  )
  slots = sum(a["t"].size for a in arrays) / len(arrays)
  flops = tokens * flops_per_token(model.cfg, ds.vocab_size, ds.seq_len)
  from bioknow.hardware import peak_matmul_flops

  peak = peak_matmul_flops(dtype, matmul)
  return {
    "scale": scale,
    "model": model.cfg.preset,
    "device": jax.devices()[0].device_kind,
    "dtype": dtype.name,
    "batch_size": batch_size,
    "seq_len": ds.seq_len,
    "n_parameters": count_parameters(model)["total"],
    "steps_per_second": round(n_steps / elapsed, 3),
    "steps_per_second_host_fed": round(host_steps / host_elapsed, 3),
    "tokens_per_second": round(tokens / elapsed),
    "positions_per_second": round(n_steps * slots / elapsed),
    "packed": cfg.train.pack,
    "rows": [rows, row_len],
    "real_token_fraction": round(tokens / (n_steps * slots), 3),
    "computed_rows": n_compute,
    "model_flops_per_second": round(flops / elapsed / 1e9, 2) * 1e9,
    "peak_matmul_flops_per_second": round(peak / 1e9, 2) * 1e9,
    "mfu": round(flops / elapsed / peak, 4),
  } | warmup


def eval_throughput(
  scale: str, seconds: float, batch_size: int | None = None, model_preset=None
) -> list[dict]:
  """Evaluation sequences/s of a scale's model on evaluation-template biographies of its
  population, at its eval batch size (or `batch_size`), without and with the attention
  statistics."""
  import fiddle as fdl
  import jax
  import jax.numpy as jnp
  import numpy as np

  from bioknow import configs
  from bioknow.data import pipeline
  from bioknow.data.dataset import build_dataset
  from bioknow.experiments.pretrain import initial_model
  from bioknow.train import evaluation
  from bioknow.train import step as step_lib

  c = configs.pretrain(scale)
  if model_preset:
    c.model.preset = model_preset
  if batch_size:
    c.eval.batch_size = batch_size
  cfg = fdl.build(c)
  on_cpu = jax.default_backend() == "cpu"
  dtype = jnp.dtype("float32" if on_cpu else cfg.train.compute_dtype)
  ds = build_dataset(cfg.data)
  n = cfg.eval.batch_size * (1 if on_cpu else 4)
  bios = pipeline.eval_set(ds, np.arange(ds.config.n_individuals), n, pool="eval", seed=0, name="b")
  mesh = step_lib.data_mesh(1)
  model = step_lib.replicate(initial_model(cfg), mesh)
  out = []
  for with_attention in (False, True):
    n_attention = n if with_attention else 0
    run = lambda n_attention=n_attention: evaluation._run_set(
      model, bios, cfg.eval, mesh, dtype, n_attention
    )
    rate = _rate(run, seconds)
    out.append(
      {
        "scale": scale,
        "model": model.cfg.preset,
        "device": jax.devices()[0].device_kind,
        "dtype": dtype.name,
        "batch_size": cfg.eval.batch_size,
        "attention_statistics": with_attention,
        "sequences_per_second": round(rate * n),
      }
    )
  return out
