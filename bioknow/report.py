"""Figures drawn from run directories alone.

  python -m bioknow.report --workdir=runs/quickstart

Finds every run (a directory with metrics.jsonl) under --workdir, works out which figures its
runs allow, writes them as PNGs into WORKDIR/figures/, prints a short summary of each run and
of each figure family (e.g. the fitted plateau law), then the figure paths. Works on partial
sweeps and unfinished runs: it draws what exists. The figure families live in
bioknow/figures/; where the paper keeps the best learning rate of a setting by final training
loss (mean over seeds), so do they.
"""

import math
import pathlib
import sys

from absl import app, flags

from bioknow.analysis import runs as R
from bioknow.analysis.runs import find_runs, load_run  # noqa: F401 (public)
from bioknow.rundir import RunDir

# bioknow.launch defines the same flag; a process importing both (the tests) shares it.
if "workdir" not in flags.FLAGS:
  flags.DEFINE_string("workdir", None, "Directory holding one or more run directories.")

# The figure families (matplotlib) are imported on first use, so reading runs through this
# module (find_runs, load_run, best_lr_lines) starts no plotting library.
_LAZY = ("FAMILIES", "learning_curves", "summarise")


def _families() -> dict:
  """Figure family title -> its module (bioknow.figures.*), in drawing order."""
  from bioknow.figures import curricula, finetune, patching, population, pretrain, toy

  return {
    "pretraining runs": pretrain,
    "population": population,
    "curricula": curricula,
    "attention patching": patching,
    "fine-tuning": finetune,
    "toy memory": toy,
  }


def __getattr__(name: str):
  """FAMILIES, learning_curves and summarise (public), imported with the figures on first use."""
  if name == "FAMILIES":
    return _families()
  if name in _LAZY:
    from bioknow.figures import pretrain

    return getattr(pretrain, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def best_lr_lines(runs: list[dict]) -> list[str]:
  """One line per setting that was run at several learning rates: the one kept."""
  choices = {k: v for k, v in R.best_lr_choices(runs).items() if len(v[1]) > 1}
  if not choices:
    return []
  examples = {R.setting(r): r for r in runs}
  keys = R.varying([examples[k] for k in choices])
  lines = []
  for key, (best, scores) in choices.items():
    others = ", ".join(f"{lr:g}: {s:.4g}" for lr, s in sorted(scores.items()) if lr != best)
    label = (
      R.describe(examples[key], keys)
      if keys
      else (f"the {R.name_word(examples[key]['name'])} runs")
    )
    lines.append(
      f"best lr for {label}: {best:g} (final training loss {scores[best]:.4g}, "
      f"mean over seeds; others {others})"
    )
  return lines


def report(workdir: pathlib.Path) -> list[pathlib.Path]:
  """Draws every figure the runs under workdir allow; prints summaries; returns the paths."""
  workdir = pathlib.Path(workdir)
  runs = find_runs(workdir)
  out_dir = workdir / "figures"
  from bioknow.figures import attributes
  from bioknow.figures.pretrain import summarise

  paths, lines = [], []
  for name, family in _families().items():
    try:
      family_paths, family_lines = family.draw(runs, out_dir)
    except Exception as e:  # one malformed family must not cost the others their figures
      print(f"report: {name} figures skipped: {type(e).__name__}: {e}", file=sys.stderr)
      continue
    paths += family_paths
    lines += family_lines
  for run in runs:
    if R.experiment(run) in ("pretrain", "patching") and math.isfinite(
      R.final(run, "attribute_loss")
    ):
      print(summarise(run))
      for line in attributes.attribute_lines(run):
        print(line)
  for line in best_lr_lines(runs) + lines + state_lines(runs):
    print(line)
  return paths


def state_lines(runs: list[dict]) -> list[str]:
  """One line per run whose figures are not those of a whole, sound run: unfinished (no
  summary.json yet: drawn up to its last evaluation) or damaged (its metrics disagree with
  its summary, RunDir.damage: its figures may show an earlier step as final)."""
  lines = []
  for run in runs:
    if not run["summary"]:
      last = run["records"][-1]["step"] if run["records"] else None
      lines.append(f"{run['name']}: UNFINISHED, drawn up to step {last}")
    elif (damage := RunDir(run["dir"]).damage()) is not None:
      lines.append(f"{run['name']}: DAMAGED ({damage}); delete its summary.json and run it again")
  return lines


def main(argv):
  del argv
  workdir = pathlib.Path(flags.FLAGS.workdir or "runs")
  if not workdir.is_dir():
    raise SystemExit(f"--workdir: {workdir} is not a directory of runs.")
  paths = report(workdir)
  if not paths:
    print(f"no figures: no run under {workdir} has evaluations yet.")
  for path in paths:
    print(path)


if __name__ == "__main__":
  app.run(main)
