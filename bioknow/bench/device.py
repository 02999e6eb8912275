"""The accelerator check: `make device-check` (python -m bioknow.bench device), one JSON line
per measurement, for the first time an accelerator is at hand (under 8 minutes on one H100).

  train       bench train at the paper shape, bf16, batch 128: tokens/s, MFU
  run         the default run (sweeps/quickstart.py --scale=paper) for its first 1,000 steps
              with its evaluations: wall time split into train and eval
  projection  the full default run (16k steps and every evaluation), from `run`
  run, projection again for the 163M model (paper_896), 200 steps
  memory      peak device memory (peak host memory on a CPU)

On a CPU it runs reduced: tiny model, small population, a few steps (the suite runs it).
`parts` runs some of it (`--parts=paper_896`: a second try at one part, inside a short lease).

The projections count each program's compilation once: steady rates come from the span
between the run's second and last evaluations, and what the run took beyond them
(`once_seconds`: compilation, start-up) is added once (`project`). MFU counts real tokens
only: the model FLOPs of the run's biographies over the projected wall time, evaluations
included, against the device's measured matmul peak.
"""

import dataclasses
import json
import resource
import tempfile

import fiddle as fdl
import jax
import jax.numpy as jnp
from absl import logging

from bioknow import configs
from bioknow.data import dataset
from bioknow.experiments import pretrain
from bioknow.hardware import peak_matmul_flops
from bioknow.models.transformer import flops_per_token
from bioknow.rundir import RunDir


@dataclasses.dataclass(frozen=True)
class Plan:
  train_seconds: float  # measuring time of the `train` line
  runs: tuple[tuple[str, int], ...]  # (model preset, steps) of the partial runs
  reduced: bool


FULL = Plan(train_seconds=10.0, runs=(("paper", 1_000), ("paper_896", 200)), reduced=False)
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
  cfg.train.progress_seconds = 1.0  # the log shows the run's speed second by second
  cfg.eval.steps = (0, n_steps) if reduced else tuple(s for s in full_evals if s <= n_steps)
  return cfg, full_steps, len(full_evals)


def project(summary: dict, n_steps: int, n_evals: int, full_steps: int, full_evals: int) -> dict:
  """Seconds of a full run from a partial one's summary. The steady rates come from the span
  between the second evaluation and the last (summary["timeline"]), so that compilation, and
  any other cost paid once at the start, is counted once: `once_seconds`, what the partial
  run took beyond its steps and evaluations at those rates. With fewer than 3 evaluations the
  first step and the first evaluation (compilation included) stand for that cost."""
  timeline = summary.get("timeline", [])
  if len(timeline) >= 3:
    (step_a, wall_a, eval_a), (step_b, wall_b, eval_b) = timeline[1], timeline[-1]
    per_eval = (eval_b - eval_a) / (len(timeline) - 2)
    per_step = ((wall_b - wall_a) - (eval_b - eval_a)) / (step_b - step_a)
  else:
    train_s = summary["wall_seconds"] - summary["eval_seconds"]
    per_step = (train_s - summary["first_step_seconds"]) / max(n_steps - 1, 1)
    per_eval = (summary["eval_seconds"] - summary["first_eval_seconds"]) / max(n_evals - 1, 1)
  once = summary["wall_seconds"] - per_step * n_steps - per_eval * n_evals
  return {
    "seconds_per_step": per_step,
    "seconds_per_eval": per_eval,
    "once_seconds": once,
    "train_seconds": per_step * full_steps,
    "eval_seconds": per_eval * full_evals,
    "wall_seconds": once + per_step * full_steps + per_eval * full_evals,
  }


def measure_run(preset: str, n_steps: int, reduced: bool, peak_flops: float) -> list[dict]:
  """The `run` and `projection` lines of one model."""
  cfg, full_steps, full_evals = run_config(preset, n_steps, reduced)
  built = fdl.build(cfg)
  with tempfile.TemporaryDirectory() as workdir:
    summary = pretrain.run(built, RunDir(workdir))
  n_evals = len(built.eval.schedule(n_steps))
  full = project(summary, n_steps, n_evals, full_steps, full_evals)
  per_step = full["seconds_per_step"]
  # Real (target) tokens per step, and their model FLOPs.
  tokens_per_step = summary["tokens_per_second"] * summary["wall_seconds"] / n_steps
  flops_per_step = tokens_per_step * flops_per_token(
    built.model, dataset.vocab_size(built.data), summary["seq_len"]
  )
  common = {"model": preset, "n_parameters": summary["n_parameters"]}
  run = common | {
    "measurement": "run",
    "n_steps": n_steps,
    "n_evals": n_evals,
    "wall_seconds": round(summary["wall_seconds"], 2),
    "train_seconds": round(summary["wall_seconds"] - summary["eval_seconds"], 2),
    "eval_seconds": round(summary["eval_seconds"], 2),
    "first_step_seconds": round(summary["first_step_seconds"], 2),
    "first_eval_seconds": round(summary["first_eval_seconds"], 2),
    "steady_steps_per_second": round(1 / per_step, 2),
    "steady_seconds_per_eval": round(full["seconds_per_eval"], 2),
    "once_seconds": round(full["once_seconds"], 2),
    "tokens_per_second": round(summary["tokens_per_second"]),
    "steady_train_mfu": round(flops_per_step / per_step / peak_flops, 4),
  }
  projection = common | {
    "measurement": "projection",
    "n_steps": full_steps,
    "n_evals": full_evals,
    "train_seconds": round(full["train_seconds"]),
    "eval_seconds": round(full["eval_seconds"]),
    "once_seconds": round(full["once_seconds"]),
    "wall_seconds": round(full["wall_seconds"]),
    "mfu": round(flops_per_step * full_steps / full["wall_seconds"] / peak_flops, 4),
  }
  return [run, projection]


def peak_memory() -> dict:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return {"measurement": "memory", "where": "device", "peak_bytes": stats["peak_bytes_in_use"]}
  # ru_maxrss is in kilobytes on Linux.
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"measurement": "memory", "where": "host", "peak_bytes": peak}


def parts(plan: Plan) -> tuple[str, ...]:
  """The parts of a plan, in order: `train`, then one per partial run (its model preset)."""
  return ("train", *(preset for preset, _ in plan.runs))


def main(
  train_throughput, reduced: bool | None = None, emit=print, only: list[str] | None = None
) -> list[dict]:
  """Runs the check (reduced: default on CPU only), or the parts of it in `only`; emits and
  returns its lines (peak memory always comes last).
  train_throughput: throughput.train_throughput (passed in, as the command line does)."""
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  on_cpu = jax.default_backend() == "cpu"
  plan = REDUCED if (on_cpu if reduced is None else reduced) else FULL
  unknown = sorted(set(only or ()) - set(parts(plan)))
  if unknown:
    raise ValueError(f"parts: got {unknown}; this check's parts are {list(parts(plan))}.")
  wanted = set(only or parts(plan))
  device = {"bench": "device", "device": jax.devices()[0].device_kind, "reduced": plan.reduced}
  lines = []

  def out(line: dict) -> None:
    lines.append(device | line)
    emit(json.dumps(device | line))

  if "train" in wanted:
    if plan.reduced:
      train = train_throughput("small", 8, "float32", plan.train_seconds, "tiny", matmul=512)
    else:
      train = train_throughput("paper", 128, "bfloat16", plan.train_seconds)
    out({"measurement": "train"} | {k: v for k, v in train.items() if k != "device"})
    peak = train["peak_matmul_flops_per_second"]
  else:
    dtype, size = (jnp.float32, 512) if plan.reduced else (jnp.bfloat16, None)
    peak = peak_matmul_flops(dtype, size)
  for preset, n_steps in plan.runs:
    if preset in wanted:
      for line in measure_run(preset, n_steps, plan.reduced, peak):
        out(line)
  out(peak_memory())
  return lines
