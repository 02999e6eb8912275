"""The toy associative memory's fine-tuning (Figures Q and R of the paper): the same frames as
the language model's fine-tuning, toy_memory_frame and toy_memory_steps, over the
fine-tuning phase of each run (steps counted from its start)."""

import math
import pathlib
from typing import Any

from bioknow.analysis import runs as R
from bioknow.figures import finetune

KEYS = {
  "keys": ("pretrain/loss", "finetune/loss", "pretrain/accuracy", "finetune/accuracy"),
  "names": ("pre-training pairs", "new pairs"),
}


def finetune_phase(records: list[dict]) -> list[dict]:
  """The fine-tuning records, steps counted from the start of fine-tuning (finetune_step where
  the run records it), with the last pre-training record as step 0 when fine-tuning has none."""
  pre = [r for r in records if r.get("phase") == "pretrain"]
  tuned = [r for r in records if r.get("phase") == "finetune"]
  if not tuned:
    return []
  if all("finetune_step" in r for r in tuned):  # the run counts fine-tuning steps itself
    start = [pre[-1] | {"step": 0}] if pre and tuned[0]["finetune_step"] > 0 else []
    return start + [r | {"step": r["finetune_step"]} for r in tuned]
  if pre and pre[-1]["step"] <= tuned[0]["step"]:  # one clock over both phases
    origin, start = pre[-1]["step"], [pre[-1]] if pre[-1]["step"] < tuned[0]["step"] else []
  else:  # the clock restarts at fine-tuning
    origin, start = 0, [pre[-1] | {"step": 0}] if pre and tuned[0]["step"] > 0 else []
  return [r | {"step": r["step"] - origin} for r in start + tuned]


def _baseline(run: dict) -> float:
  b = R.final(run, "no_knowledge_baseline")
  n_values = R.param(run, "n_values")
  if not math.isfinite(b) and R.is_number(n_values) and n_values > 0:
    b = math.log(n_values)  # uniform over the possible values
  return b


def draw(runs: list[dict], out_dir: pathlib.Path):
  toys = R.best_lr(
    [r for r in runs if R.experiment(r) == "toy_memory" and finetune_phase(r["records"])]
  )
  if not toys:
    return [], []
  no_replay, with_replay = finetune.split_by_replay(toys, "n_new")
  panels: list[dict[str, Any]] = [
    KEYS | {"title": "toy memory, without replay", "lines": no_replay},
    KEYS | {"title": "toy memory, with replay", "lines": with_replay},
  ]
  for panel in panels:
    panel["baseline"] = _baseline(panel["lines"][0][2]) if panel["lines"] else math.nan
    panel["lines"] = [(label, c, finetune_phase(r["records"])) for label, c, r in panel["lines"]]
  lines = []
  for run in finetune.unique_runs(no_replay + with_replay):
    phase = finetune_phase(run["records"])
    old, new = (R.series(phase, k)[1] for k in KEYS["keys"][:2])
    if len(old) and len(new):
      lines.append(
        f"toy {run['name']}: loss on old pairs {old[0]:.3f} -> {old[-1]:.3f} (peak "
        f"{old.max():.3f}), on new pairs {new[0]:.3f} -> {new[-1]:.3f}"
      )
  return finetune.trajectories(panels, out_dir, "toy_memory"), lines
