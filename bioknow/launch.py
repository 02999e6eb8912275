"""Runs the points of a sweep file, each in its own run directory; re-running resumes.

  python -m bioknow.launch --sweep=sweeps/quickstart.py [--workdir=runs/quickstart]
      [--scale=small|paper] [--only=GLOB[,GLOB...]] [--dry_run] [--config=set:PATH=VALUE ...]
      [--overwrite] [--executor=inline|ray] [--ray_address=ADDRESS]

A sweep file is plain Python with a function `sweep(scale)` yielding (run_name, fdl.Config)
pairs; a run name is a relative path inside the workdir. Every point is built and checked
before anything runs or is written (launch_checks.py: the workdir, the sweep file, names, and
existing run directories); a bad input stops the launch with one sentence and exit status 1.
Finished points (summary.json present) are skipped, interrupted ones continue from their
latest checkpoint, but only if their stored config.json is the requested config: a run
directory holding another config stops the launch, naming the differing fields, unless
--overwrite is given, which deletes that run and starts it afresh. A point whose experiment
reads other runs (`sources()`, e.g. fine-tuning from a pretraining run) runs after them. A
failed point's traceback goes to its run directory's error.txt.
"""

import ast
import difflib
import fnmatch
import pathlib
import sys
from typing import NamedTuple

import fiddle as fdl
import jax
from absl import app, flags, logging
from fiddle import absl_flags as fdl_flags
from fiddle import printing

from bioknow import compile_cache, configs, executors, running
from bioknow.experiments.common import Experiment
from bioknow.launch_checks import (
  check_writable,
  load_sweep,
  resolve_workdir,
  runs_to_replace,
  swept_points,
)
from bioknow.rundir import RunDir

_SWEEP = flags.DEFINE_string("sweep", None, "Path of a sweep file, e.g. sweeps/quickstart.py.")
# bioknow.report defines the same flag; a process importing both (the tests) shares it.
if "workdir" not in flags.FLAGS:
  flags.DEFINE_string("workdir", None, "Root of the run directories (runs/NAME).")
_SCALE = flags.DEFINE_enum(
  "scale", None, configs.SCALES, "Grid to run (default: small without an accelerator, else paper)."
)
_ONLY = flags.DEFINE_string(
  "only",
  None,
  "Run only points whose name matches this glob (or one of these comma-separated globs).",
)
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the points and run nothing.")
_CONFIG = flags.DEFINE_multi_string("config", [], "Overrides for every point: set:PATH=VALUE.")
_EXECUTOR = flags.DEFINE_enum(
  "executor",
  "inline",
  list(executors.EXECUTORS),
  "inline: points one after another in this process; ray: one Ray "
  "task per point (pip install 'bioknow[ray]').",
)
_RAY_ADDRESS = flags.DEFINE_string(
  "ray_address", None, "Address of an existing Ray cluster (default: start one here)."
)
_OVERWRITE = flags.DEFINE_bool(
  "overwrite",
  False,
  "Delete and rerun the selected points whose run directory holds a run of another config "
  "(without it, such points stop the launch); points of the same config still resume.",
)


def _leaves(cfg) -> dict[str, str]:
  lines = printing.as_str_flattened(cfg, include_types=False).splitlines()
  return dict(line.split(" = ", 1) for line in lines if " = " in line)


def apply_overrides(cfg, directives: list[str]):
  """Applies set:PATH=VALUE directives; an unknown path names the closest valid one, and a
  value must have the type of the one it replaces."""
  for directive in directives:
    if not directive.startswith("set:") or "=" not in directive:
      raise ValueError(f"--config: got {directive!r}; use set:PATH=VALUE.")
    path, value = directive[len("set:") :].split("=", 1)
    paths = list(_leaves(cfg))
    if path not in paths:
      close = difflib.get_close_matches(path, paths, n=1, cutoff=0.0)
      raise ValueError(
        f"--config: {path} is not a config path; closest valid path: {close[0] if close else None}."
      )
    old = _value_at(cfg, path)
    fdl_flags.set_value_at_path(cfg, path, _typed(_parse_value(value, path), old, path))
  return cfg


def _value_at(cfg, path: str):
  """The current value at a flattened path (None where the path has indexing in it)."""
  try:
    for part in path.split("."):
      cfg = getattr(cfg, part)
    return cfg
  except AttributeError:
    return None


def _typed(new, old, path: str):
  """`new` converted to the type of `old` where that is lossless (int -> float, list ->
  tuple); otherwise a mismatch is an error naming both types."""
  if old is None or isinstance(old, (fdl.Buildable, type)) or callable(old):
    return new
  if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
    return float(new)
  if isinstance(old, tuple) and isinstance(new, list):
    new = tuple(new)
  same = type(new) is type(old) or (isinstance(old, tuple) and isinstance(new, tuple))
  if not same:
    raise ValueError(
      f"--config: {path} must be of type {type(old).__name__} (now {old!r}); "
      f"got {new!r} of type {type(new).__name__}."
    )
  return new


def _parse_value(value: str, path: str):
  if value.lower() in ("true", "false"):
    return value.lower() == "true"
  if value.lower() == "none":
    return None
  try:
    return ast.literal_eval(value)
  except (ValueError, SyntaxError):
    raise ValueError(
      f"--config: the value of {path} ({value}) is not a Python literal; quote "
      f'strings, e.g. set:{path}="{value}".'
    ) from None


class Point(NamedTuple):
  name: str
  cfg: fdl.Buildable
  experiment: Experiment  # the built config
  overrides: dict[str, str]
  sources: tuple[str, ...]  # run directories it reads, relative to the sweep's workdir


def build_points(
  module, scale: str, directives: list[str], only: str | None, workdir: pathlib.Path | None = None
) -> list[Point]:
  """Every selected point of a sweep, built, checked and ordered so that a point comes after
  the points it reads (e.g. fine-tuning after its pretraining run). A source outside the
  selection must already exist under `workdir` (checked here, before anything runs).
  An override may not change a field whose value differs between the sweep's points: the
  point names would then describe values the points no longer have."""
  swept = swept_points(module, scale)
  varied = _varied_fields([_leaves(cfg) for _, cfg in swept])
  points = []
  base = _leaves(module.base(scale)) if hasattr(module, "base") else {}
  for name, cfg in swept:
    if only and not any(fnmatch.fnmatch(name, glob) for glob in only.split(",")):
      continue
    before = _leaves(cfg)
    cfg = apply_overrides(cfg, directives)
    after = _leaves(cfg)
    if changed := sorted(k for k in varied if before.get(k) != after.get(k)):
      raise ValueError(
        f"--config: {changed[0]} differs between the sweep's points, whose names say which "
        "value each has; edit the sweep file (or a copy of it) to change it instead."
      )
    try:
      experiment = running.build(cfg)  # what bioknow.run checks, before anything runs
    except (ValueError, TypeError) as e:
      raise ValueError(f"point {name}: {e}") from None
    overrides = {k: v for k, v in after.items() if base.get(k) != v}
    points.append(Point(name, cfg, experiment, overrides, tuple(experiment.sources())))
  if not points:
    names = ", ".join(name for name, _ in swept[:5]) + (", ..." if len(swept) > 5 else "")
    raise ValueError(f"--only: {only} matches no point; the sweep's points are {names}.")
  selected = {p.name for p in points}
  for p in points:
    if any(s not in selected for s in p.sources) and workdir is not None:
      try:
        p.experiment.check_sources(RunDir(workdir / p.name))
      except ValueError as e:
        raise ValueError(f"point {p.name}: {e}") from None
  return _in_dependency_order(points)


def _varied_fields(leaves: list[dict[str, str]]) -> set[str]:
  """Config paths whose value differs between points (a path some points lack included)."""
  paths = {k for point in leaves for k in point}
  return {k for k in paths if len({point.get(k) for point in leaves}) > 1}


def _in_dependency_order(points: list[Point]) -> list[Point]:
  """Sweep order, except that a point moves after the selected points it reads."""
  by_name = {p.name: p for p in points}
  ordered, placed, visiting = [], set(), set()

  def place(p: Point):
    if p.name in placed:
      return
    if p.name in visiting:
      raise ValueError(f"sweep: point {p.name} depends on itself through its sources.")
    visiting.add(p.name)
    for s in p.sources:
      if s in by_name:
        place(by_name[s])
    placed.add(p.name)
    ordered.append(p)

  for p in points:
    place(p)
  return ordered


def _estimate(points: list[Point]) -> str:
  """Training steps in total and a rough time: model FLOPs at 40% of this device's measured
  matmul peak (evaluations and data not counted)."""
  steps = sum(p.experiment.n_steps for p in points)
  costs = [p.experiment.train_cost() for p in points]
  flops = sum(f for f, _ in costs)
  if not flops:
    return f"{steps} training steps in total"
  from bioknow.hardware import peak_matmul_flops  # measures the device: imported when needed

  dtype = costs[0][1]
  peak = peak_matmul_flops(dtype)
  seconds = flops / (0.4 * peak)
  time = f"{seconds / 3600:.1f} h" if seconds > 3600 else f"{seconds / 60:.1f} min"
  return (
    f"{steps} training steps in total, estimated {time} on this machine "
    f"({flops:.2e} model FLOPs at 40% of its measured {peak / 1e9:.0f} GFLOP/s {dtype} "
    "matmul peak, one point at a time)"
  )


def _key_metrics(experiment: Experiment, summary: dict) -> str:
  """What the status table shows of a point's summary.json."""
  shown = {k: summary[k] for k in experiment.key_metrics() if k in summary}
  return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def _checked_points(sweep: str) -> tuple[pathlib.Path, list[Point], list[RunDir]]:
  """(workdir, the points to run, the run directories --overwrite deletes), every input checked;
  ValueError (one sentence) for the first bad one. Reads files only."""
  if flags.FLAGS.workdir == "":
    raise ValueError("--workdir: got an empty value; give a directory, or leave the flag out.")
  if _ONLY.value is not None and not _ONLY.value.strip(" ,"):
    raise ValueError("--only: got an empty value; give a glob such as 'n100_*', or leave it out.")
  workdir = resolve_workdir(flags.FLAGS.workdir or f"runs/{pathlib.Path(sweep).stem}")
  module = load_sweep(sweep)
  has_accelerator = jax.default_backend() != "cpu"
  scale = _SCALE.value or ("paper" if has_accelerator else "small")
  if not _SCALE.value:
    print(f"scale: {scale} ({'an accelerator' if has_accelerator else 'no accelerator'} found)")
  points = build_points(module, scale, _CONFIG.value, _ONLY.value, workdir)
  replaced = runs_to_replace(points, workdir, _OVERWRITE.value)
  if not _DRY_RUN.value:
    check_writable(workdir)  # last: it probes the directory it is about to write in
  return workdir, points, replaced


def main(argv):
  if len(argv) > 1:
    sys.exit(f"unexpected argument {argv[1]!r}; every option is a flag such as --sweep=PATH.")
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  compile_cache.enable()
  if not _SWEEP.value:
    sys.exit("--sweep is required, e.g. --sweep=sweeps/quickstart.py")
  try:
    workdir, points, replaced = _checked_points(_SWEEP.value)
  except ValueError as e:
    sys.exit(str(e))

  if _DRY_RUN.value:
    for p in points:
      print(p.name, " ".join(f"{k}={v}" for k, v in p.overrides.items()))
    for run in replaced:
      print(
        f"--overwrite would delete {run.path} (another config, an unreadable one, or a stale run)"
      )
    print(f"{len(points)} points, {_estimate(points)}")
    return

  for run in replaced:
    print(f"--overwrite: deleting {run.path} (another config, an unreadable one, or a stale run)")
    run.remove()
  results = executors.run(points, workdir, _EXECUTOR.value, _RAY_ADDRESS.value)
  print(f"\n{'point':40s} {'status':32s} key final metrics")
  experiments = {p.name: p.experiment for p in points}
  for name, status, summary in results:
    print(f"{name:40s} {status:32s} {_key_metrics(experiments[name], summary)}")
  if any(status == executors.INTERRUPTED for _, status, _ in results):
    print("interrupted: run the same command again to resume where it stopped.")
    sys.exit(130)
  if any(status.startswith("FAILED") for _, status, _ in results):
    print("Each failed point's traceback is in its run directory's error.txt (where it has one).")
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
