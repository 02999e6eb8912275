"""Runs the points of a sweep file, each in its own run directory; re-running resumes.

  python -m bioknow.launch --sweep=sweeps/quickstart.py [--workdir=runs/quickstart]
      [--scale=small|paper] [--only=GLOB] [--dry_run] [--config=set:PATH=VALUE ...]

A sweep file is plain Python with a function `sweep(scale)` yielding (run_name, fdl.Config)
pairs. Every point is built and checked before anything runs or is written; a bad config
stops the launch with one sentence. Finished points (summary.json present) are skipped,
interrupted ones continue from their latest checkpoint.
"""

import ast
import difflib
import fnmatch
import importlib.util
import json
import pathlib
import sys
import time
import traceback

import fiddle as fdl
import jax
from absl import app, flags, logging
from fiddle import absl_flags as fdl_flags
from fiddle import printing
from fiddle.experimental import serialization

from bioknow import configs

_SWEEP = flags.DEFINE_string("sweep", None, "Path of a sweep file, e.g. sweeps/quickstart.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root of the run directories (runs/NAME).")
_SCALE = flags.DEFINE_enum("scale", None, configs.SCALES,
                           "Grid to run (default: small without an accelerator, else paper).")
_ONLY = flags.DEFINE_string("only", None, "Run only points whose name matches this glob.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the points and run nothing.")
_CONFIG = flags.DEFINE_multi_string("config", [], "Overrides for every point: set:PATH=VALUE.")


def load_sweep(path: str):
  file = pathlib.Path(path)
  if not file.is_file():
    raise ValueError(f"--sweep: {path} does not exist; give the path of a sweep file such as "
                     "sweeps/quickstart.py.")
  spec = importlib.util.spec_from_file_location(f"bioknow_sweep_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "sweep", None)):
    raise ValueError(f"--sweep: {path} has no function sweep(scale) yielding (name, config).")
  return module


def _leaves(cfg) -> dict[str, str]:
  lines = printing.as_str_flattened(cfg, include_types=False).splitlines()
  return dict(line.split(" = ", 1) for line in lines if " = " in line)


def apply_overrides(cfg, directives: list[str]):
  """Applies set:PATH=VALUE directives; an unknown path names the closest valid one."""
  for directive in directives:
    if not directive.startswith("set:") or "=" not in directive:
      raise ValueError(f"--config: got {directive!r}; use set:PATH=VALUE.")
    path, value = directive[len("set:"):].split("=", 1)
    paths = list(_leaves(cfg))
    if path not in paths:
      close = difflib.get_close_matches(path, paths, n=1, cutoff=0.0)
      raise ValueError(f"--config: {path} is not a config path; closest valid path: "
                       f"{close[0] if close else None}.")
    fdl_flags.set_value_at_path(cfg, path, _parse_value(value, path))
  return cfg


def _parse_value(value: str, path: str):
  if value.lower() in ("true", "false"):
    return value.lower() == "true"
  try:
    return ast.literal_eval(value)
  except (ValueError, SyntaxError):
    raise ValueError(f"--config: the value of {path} ({value}) is not a Python literal; quote "
                     f"strings, e.g. set:{path}=\"{value}\".") from None


def build_points(module, scale: str, directives: list[str], only: str | None):
  """(name, fiddle config, built experiment, overrides) of every selected point, all checked."""
  points, seen = [], set()
  for name, cfg in module.sweep(scale):
    if name in seen:
      raise ValueError(f"sweep: two points are named {name!r}; run names must be unique.")
    seen.add(name)
    if only and not fnmatch.fnmatch(name, only):
      continue
    base = _leaves(module.base(scale)) if hasattr(module, "base") else {}
    cfg = apply_overrides(cfg, directives)
    try:
      experiment = fdl.build(cfg)
      experiment.check()
    except (ValueError, TypeError) as e:
      raise ValueError(f"point {name}: {e}") from None
    overrides = {k: v for k, v in _leaves(cfg).items() if base.get(k) != v}
    points.append((name, cfg, experiment, overrides))
  return points


def _run_point(name, cfg, experiment, workdir: pathlib.Path) -> dict:
  run_dir = workdir / name
  run_dir.mkdir(parents=True, exist_ok=True)
  (run_dir / "config.json").write_text(serialization.dump_json(cfg, indent=2))
  (run_dir / "config.txt").write_text(printing.as_str_flattened(cfg, include_types=False) + "\n")
  return experiment.run(run_dir)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  if not _SWEEP.value:
    sys.exit("--sweep is required, e.g. --sweep=sweeps/quickstart.py")
  has_accelerator = jax.default_backend() != "cpu"
  scale = _SCALE.value or ("paper" if has_accelerator else "small")
  if not _SCALE.value:
    print(f"scale: {scale} ({'an accelerator' if has_accelerator else 'no accelerator'} found)")
  try:
    module = load_sweep(_SWEEP.value)
    points = build_points(module, scale, _CONFIG.value, _ONLY.value)
  except ValueError as e:
    sys.exit(str(e))
  workdir = pathlib.Path(_WORKDIR.value or f"runs/{pathlib.Path(_SWEEP.value).stem}")

  if _DRY_RUN.value:
    total = 0
    for name, _, experiment, overrides in points:
      total += experiment.train.n_steps
      print(name, " ".join(f"{k}={v}" for k, v in overrides.items()))
    print(f"{len(points)} points, {total} training steps in total")
    return

  results = []
  for name, cfg, experiment, _ in points:
    if (workdir / name / "summary.json").exists():
      results.append((name, "done (skipped)", json.loads((workdir / name / "summary.json").read_text())))
      continue
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
      summary = _run_point(name, cfg, experiment, workdir)
      results.append((name, f"done in {time.perf_counter() - start:.0f}s", summary))
    except Exception as e:  # one failing point does not stop the others
      traceback.print_exc()
      results.append((name, f"FAILED: {type(e).__name__}: {e}".splitlines()[0], {}))

  print(f"\n{'point':40s} {'status':32s} plateau_end  attribute_loss  accuracy")
  for name, status, s in results:
    print(f"{name:40s} {status[:32]:32s} {str(s.get('plateau_end_step')):>11s}  "
          f"{s.get('attribute_loss', float('nan')):14.4f}  {s.get('attribute_accuracy', float('nan')):8.3f}")
  if any(status.startswith("FAILED") for _, status, _ in results):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
