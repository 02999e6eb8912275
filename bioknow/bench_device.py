"""The accelerator check: `make device-check` (python -m bioknow.bench device), one JSON line
per measurement, for the first time an accelerator is at hand (under 8 minutes on one H100).

  train       bench train at the paper shape, bf16, batch 128: tokens/s, MFU
  run         the default run (sweeps/quickstart.py --scale=paper) for its first 1,000 steps
              with its evaluations: wall time split into train and eval
  projection  the full default run (16k steps and every evaluation), from `run`
  run, projection again for the 163M model (paper_896), 200 steps
  memory      peak device memory (peak host memory on a CPU)

On a CPU it runs reduced: tiny model, small population, a few steps (the suite runs it).
The projections include each program's compilation once, in its first step or evaluation.
"""

import dataclasses
import json
import resource
import tempfile

import fiddle as fdl
import jax
from absl import logging

from bioknow import configs
from bioknow.experiments import pretrain
from bioknow.rundir import RunDir


@dataclasses.dataclass(frozen=True)
class Plan:
  train_seconds: float  # measuring time of the `train` line
  runs: tuple[tuple[str, int], ...]  # (model preset, steps) of the partial runs
  reduced: bool


FULL = Plan(train_seconds=20.0, runs=(("paper", 1_000), ("paper_896", 200)), reduced=False)
REDUCED = Plan(train_seconds=0.5, runs=(("tiny", 4),), reduced=True)


def run_config(preset: str, n_steps: int, reduced: bool) -> tuple[fdl.Config, int, int]:
  """(the default run's config cut to its first n_steps, with the evaluations it has up to
  there; the full run's steps; the full run's number of evaluations)."""
  full = configs.pretrain("paper")
  full_steps = full.train.n_steps
  full_evals = fdl.build(full.eval).schedule(full_steps)
  cfg = full
  if reduced:  # the small scale's data and evaluation sizes, the tiny model, batch 8
    cfg = configs.pretrain("small")
    cfg.data.n_individuals, cfg.data.n_heldout = 200, 16
    cfg.train.batch_size = 8
    cfg.eval.n_sequences = cfg.eval.batch_size = 16
    cfg.eval.n_attention = 0  # one evaluation program to compile, not two
  cfg.model.preset = preset
  cfg.train.n_steps = n_steps
  cfg.eval.steps = (0, n_steps) if reduced else tuple(s for s in full_evals if s <= n_steps)
  return cfg, full_steps, len(full_evals)


def measure_run(preset: str, n_steps: int, reduced: bool) -> list[dict]:
  """The `run` and `projection` lines of one model."""
  cfg, full_steps, full_evals = run_config(preset, n_steps, reduced)
  built = fdl.build(cfg)
  with tempfile.TemporaryDirectory() as workdir:
    summary = pretrain.run(built, RunDir(workdir))
  n_evals = len(built.eval.schedule(n_steps))
  train_s = summary["wall_seconds"] - summary["eval_seconds"]
  per_step, per_eval = train_s / n_steps, summary["eval_seconds"] / n_evals
  common = {"model": preset, "n_parameters": summary["n_parameters"]}
  run = common | {
    "measurement": "run",
    "n_steps": n_steps,
    "n_evals": n_evals,
    "wall_seconds": round(summary["wall_seconds"], 2),
    "train_seconds": round(train_s, 2),
    "eval_seconds": round(summary["eval_seconds"], 2),
    "tokens_per_second": round(summary["tokens_per_second"]),
  }
  projection = common | {
    "measurement": "projection",
    "n_steps": full_steps,
    "n_evals": full_evals,
    "train_seconds": round(per_step * full_steps),
    "eval_seconds": round(per_eval * full_evals),
    "wall_seconds": round(per_step * full_steps + per_eval * full_evals),
  }
  return [run, projection]


def peak_memory() -> dict:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return {"measurement": "memory", "where": "device", "peak_bytes": stats["peak_bytes_in_use"]}
  # ru_maxrss is in kilobytes on Linux.
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"measurement": "memory", "where": "host", "peak_bytes": peak}


def main(train_throughput, reduced: bool | None = None, emit=print) -> list[dict]:
  """Runs the check (reduced: default on CPU only); emits and returns its lines.
  train_throughput: bench.train_throughput (passed in: bench is also run as __main__)."""
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  on_cpu = jax.default_backend() == "cpu"
  plan = REDUCED if (on_cpu if reduced is None else reduced) else FULL
  device = {"bench": "device", "device": jax.devices()[0].device_kind, "reduced": plan.reduced}
  lines = []

  def out(line: dict) -> None:
    lines.append(device | line)
    emit(json.dumps(device | line))

  if plan.reduced:
    train = train_throughput("small", 8, "float32", plan.train_seconds, "tiny", matmul=512)
  else:
    train = train_throughput("paper", 128, "bfloat16", plan.train_seconds)
  out({"measurement": "train"} | {k: v for k, v in train.items() if k != "device"})
  for preset, n_steps in plan.runs:
    for line in measure_run(preset, n_steps, plan.reduced):
      out(line)
  out(peak_memory())
  return lines
