"""Where a training step's time goes on the device: a jax profiler trace of the paper-shape
step (batch 128 of plain rows, bf16 off a CPU), parsed into device-busy time, kernel count and
the costliest kernels per step.

  python benchmarks/step_profile.py [--scale=paper] [--batch_size=128] [--out=DIR]

Prints one JSON line (steps/s timed apart from the trace, wall and device-busy milliseconds
per step, kernels per step, the top kernels) and copies the trace (trace.json.gz) to --out,
so it can be read again elsewhere. Busy time is the union of the kernels' intervals on the
device's streams, program time that of the XLA programs on the device: busy time far below
program time means gaps between kernels (launches), program time far below wall time means
the device waits on the host. On a CPU there are no device lanes: every timed event counts.
"""

import collections
import glob
import gzip
import json
import os
import shutil
import tempfile
import time

import equinox as eqx
import fiddle as fdl
import jax
import jax.numpy as jnp
from absl import app, flags

from bioknow import configs
from bioknow.data import pipeline
from bioknow.data.dataset import build_dataset
from bioknow.models import transformer
from bioknow.models.transformer import LanguageModel
from bioknow.train import step as step_lib

_SCALE = flags.DEFINE_string("scale", "paper", "Model scale (configs.pretrain).")
_MODEL = flags.DEFINE_string("model", None, "Model preset instead of the scale's (paper_896).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Biographies per batch.")
_STEPS = flags.DEFINE_integer("steps", 20, "Steps traced (0: time the step, trace nothing).")
_OUT = flags.DEFINE_string("out", None, "Folder to copy the trace to.")
_UNROLL = flags.DEFINE_integer(
  "unroll",
  None,
  "Layers per scan iteration (transformer.UNROLL), to compare; default: the library's.",
)


def device_lanes(trace: dict) -> dict[str, list[dict]]:
  """Timed events of the trace by lane: 'kernels' (the device's streams), 'modules' (whole
  XLA programs on the device, gaps between their kernels included); a trace with no device
  process (a CPU) gives every timed event as 'kernels'."""
  meta = [e for e in trace["traceEvents"] if e.get("ph") == "M"]
  processes = {e["pid"]: e["args"].get("name", "") for e in meta if e["name"] == "process_name"}
  threads = {
    (e["pid"], e["tid"]): e["args"].get("name", "") for e in meta if e["name"] == "thread_name"
  }
  device = {pid for pid, name in processes.items() if "/device:" in name and "CPU" not in name}
  timed = [e for e in trace["traceEvents"] if e.get("ph") == "X" and "dur" in e]
  if not device:
    return {"kernels": timed, "modules": []}
  lane = lambda e: threads.get((e["pid"], e["tid"]), "")
  on_device = [e for e in timed if e["pid"] in device]
  return {
    "kernels": [e for e in on_device if "Stream" in lane(e)],
    "modules": [e for e in on_device if "Module" in lane(e)],
  }


def busy_microseconds(events: list[dict]) -> float:
  """Length of the union of the events' [ts, ts + dur) intervals."""
  busy, end = 0.0, -float("inf")
  for e in sorted(events, key=lambda e: e["ts"]):
    start, stop = e["ts"], e["ts"] + e["dur"]
    if stop > end:
      busy += stop - max(start, end)
      end = stop
  return busy


def summarise(trace: dict, n_steps: int, wall_seconds: float) -> dict:
  lanes = device_lanes(trace)
  per_kernel = collections.Counter()
  for e in lanes["kernels"]:
    per_kernel[e["name"]] += e["dur"]
  ms = lambda us: round(us / 1e3 / n_steps, 3)
  return {
    "device_streams": bool(lanes["modules"]),
    "traced_wall_ms_per_step": round(1e3 * wall_seconds / n_steps, 3),
    "program_ms_per_step": ms(busy_microseconds(lanes["modules"])),
    "busy_ms_per_step": ms(busy_microseconds(lanes["kernels"])),
    "kernels_per_step": round(len(lanes["kernels"]) / n_steps, 1),
    "top_kernels_ms_per_step": {name[:80]: ms(us) for name, us in per_kernel.most_common(15)},
  }


def main(argv) -> None:
  del argv
  if _UNROLL.value:
    transformer.UNROLL = _UNROLL.value
  config = configs.pretrain(_SCALE.value)
  if _MODEL.value:
    config.model.preset = _MODEL.value
  cfg = fdl.build(config)
  dtype = jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
  ds = build_dataset(cfg.data)
  schedule = cfg.build_schedule()
  b = _BATCH.value
  mesh = step_lib.data_mesh(1)
  model = step_lib.replicate(LanguageModel(cfg.model, ds.vocab_size, key=jax.random.key(0)), mesh)
  optimizer = step_lib.make_optimizer(cfg.optimizer, step_lib.learning_rate(cfg.optimizer, 10_000))
  opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
  row_len = pipeline.plain_row_len(ds, schedule, b, 0)
  batch = pipeline.trim(pipeline.batch_at(ds, schedule, b, 0, 0), row_len)
  arrays = step_lib.shard_batch({"t": batch["tokens_BxT"], "r": batch["role_BxT"]}, mesh)
  n_compute = pipeline.compute_tokens(ds, schedule, b, 0)  # as runs do (pretrain.train_lm)

  def step(model, opt_state):
    return step_lib.train_step(
      optimizer, model, opt_state, arrays["t"], arrays["r"], dtype, None, None, None, n_compute
    )

  start = time.perf_counter()
  model, opt_state, loss = step(model, opt_state)
  loss.block_until_ready()
  compile_seconds = time.perf_counter() - start
  for _ in range(10):
    model, opt_state, loss = step(model, opt_state)
  loss.block_until_ready()
  n, start = 200, time.perf_counter()
  for _ in range(n):
    model, opt_state, loss = step(model, opt_state)
  loss.block_until_ready()
  steps_per_second = n / (time.perf_counter() - start)

  line = {
    "bench": "step_profile",
    "device": jax.devices()[0].device_kind,
    "scale": _SCALE.value,
    "model": cfg.model.preset,
    "unroll": transformer.unroll(cfg.model.resolved().n_layers),
    "batch_size": b,
    "rows": [b, row_len],
    "computed_rows": n_compute,
    "dtype": jnp.dtype(dtype).name,
    "first_step_seconds": round(compile_seconds, 2),
    "steps_per_second": round(steps_per_second, 2),
  }
  if not _STEPS.value:  # timing only
    print(json.dumps(line), flush=True)
    return
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder):
      start = time.perf_counter()
      for _ in range(_STEPS.value):
        model, opt_state, loss = step(model, opt_state)
      loss.block_until_ready()
      wall = time.perf_counter() - start
    path = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)[0]
    with gzip.open(path) as f:
      trace = json.load(f)
    if _OUT.value:
      os.makedirs(_OUT.value, exist_ok=True)
      shutil.copy(path, os.path.join(_OUT.value, "trace.json.gz"))
  print(json.dumps(line | summarise(trace, _STEPS.value, wall)), flush=True)


if __name__ == "__main__":
  app.run(main)
