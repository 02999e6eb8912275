"""The paper check: `make paper-check` (python -m bioknow.bench paper), the paper's default run
(64k people, 16k steps, every evaluation) to the end on one accelerator, in a normal run
directory, then one JSON line: its time (compilation, training, evaluation), its speed (steady
steps/s and MFU on real tokens), peak device memory, and its science (phase ends, the steps at
which attribute accuracy first reaches 1/10/50/90/99%, the final loss and accuracy, held-out
loss over the baseline, the seen-vs-held-out AUROC).

The run directory then scores with `python -m bioknow.claims --score_only --scale=paper
--workdir=...` and draws with `python -m bioknow.report`. On a CPU (or with --reduced) it runs
the same code on the tiny model and small data for a few hundred steps (the suite runs it).
"""

import math

import fiddle as fdl

import bioknow
from bioknow import configs
from bioknow.analysis import ends
from bioknow.analysis import runs as R
from bioknow.bench import device
from bioknow.data import dataset
from bioknow.hardware import peak_matmul_flops
from bioknow.models.transformer import flops_per_token
from bioknow.rundir import RunDir

ACCURACY_MILESTONES = (0.01, 0.1, 0.5, 0.9, 0.99)


def paper_config(reduced: bool) -> fdl.Config:
  """The paper's default run; reduced: the small data, the tiny model, batch 16, 300 steps
  with evaluations every 50."""
  if not reduced:
    return configs.pretrain("paper")
  cfg = configs.pretrain("small")
  cfg.data.n_individuals, cfg.data.n_heldout = 200, 32
  cfg.model.preset = "tiny"
  cfg.train.batch_size, cfg.train.n_steps = 16, 300
  cfg.eval.every, cfg.eval.dense_until, cfg.eval.n_spaced = 50, 300, 1
  cfg.eval.n_sequences = cfg.eval.batch_size = cfg.eval.n_attention = 32
  return cfg


def first_reaching(records: list[dict], key: str, level: float) -> int | None:
  """The first evaluated step at which `key` is at least `level` (None if never)."""
  return next((r["step"] for r in records if r.get(key, -math.inf) >= level), None)


def science(run: dict) -> dict:
  """The run's phases and final numbers, as the paper's Figure 2 reads them."""
  first, plateau = ends.resolved_ends(run)
  baseline = R.baseline(run)
  return {
    "first_phase_end": round(first.step) if first and first.reached else None,
    "plateau_end": round(plateau.step) if plateau and plateau.reached else None,
    "plateau_end_resolution": round(plateau.resolution) if plateau else None,
    "accuracy_reaches": {
      f"{level:g}": first_reaching(run["records"], "attribute_accuracy", level)
      for level in ACCURACY_MILESTONES
    },
    "final_attribute_loss": round(R.final(run, "attribute_loss"), 4),
    "final_attribute_accuracy": round(R.final(run, "attribute_accuracy"), 4),
    "heldout_loss_over_baseline": round(R.final(run, "unseen_attribute_loss") / baseline, 3),
    "auroc": round(R.final(run, "hallucination_auroc"), 3),
  }


def paper_check(workdir: str, reduced: bool) -> dict:
  """Runs (or resumes, or reads if finished) the paper's default run in `workdir`; returns
  its JSON line."""
  cfg = paper_config(reduced)
  summary = bioknow.run(cfg, workdir)
  built = fdl.build(cfg)
  run = R.load_run(RunDir(workdir).path)
  timeline = summary.get("timeline", [])
  n_steps = built.train.n_steps
  if len(timeline) >= 3:  # steady: between the second evaluation and the last
    (step_a, wall_a, eval_a), (step_b, wall_b, eval_b) = timeline[1], timeline[-1]
    steady = (step_b - step_a) / ((wall_b - wall_a) - (eval_b - eval_a))
  else:
    steady = summary["steps_per_second"]
  tokens_per_step = summary["tokens_per_second"] * summary["attempt_wall_seconds"] / n_steps
  flops = tokens_per_step * flops_per_token(
    built.model, dataset.vocab_size(built.data), summary["seq_len"]
  )
  peak = peak_matmul_flops(built.train.compute_dtype)
  once = summary["first_step_seconds"] + summary["first_eval_seconds"]
  return {
    "bench": "paper",
    "reduced": reduced,
    "device": summary["device_kind"],
    "run_dir": str(RunDir(workdir).path),
    "n_steps": n_steps,
    "n_evals": len(run["records"]),
    "wall_seconds": round(summary["wall_seconds"], 1),
    "compile_and_first_seconds": round(once, 1),
    "train_seconds": round(summary["wall_seconds"] - summary["eval_seconds"], 1),
    "eval_seconds": round(summary["eval_seconds"], 1),
    "steady_steps_per_second": round(steady, 2),
    "steady_train_mfu": round(flops * steady / peak, 4),
    "peak_bytes": device.peak_memory()["peak_bytes"],
  } | science(run)
