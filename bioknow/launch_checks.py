"""What the launcher checks before anything runs or is written: the workdir, the sweep file and
what it yields, point names, and the run directories that already exist.

Each check raises ValueError with one sentence naming the flag, file or point and what is
allowed; the launcher prints it and exits non-zero.
"""

import importlib.util
import os
import pathlib
import re
import tempfile
import traceback

import fiddle as fdl

from bioknow import provenance
from bioknow.rundir import RunDir

# One path component of a point name: letters, digits and a few punctuation marks that need no
# quoting in a shell and mean nothing to tensorstore or orbax.
_NAME_PART = re.compile(r"[A-Za-z0-9_.,=+@-]+")
# The longest directory name common filesystems take (ext4, xfs, btrfs, tmpfs: 255 bytes).
NAME_MAX = 255


def resolve_workdir(workdir: str) -> pathlib.Path:
  """The workdir as an absolute path without `..`; refused if it, or the nearest part of it
  that exists, is a file. Creates nothing."""
  path = pathlib.Path(workdir).expanduser().resolve()
  if not (existing := _nearest_existing(path)).is_dir():
    raise ValueError(
      f"--workdir: {existing} is a file, not a directory; give a directory (it is created if "
      "missing)."
    )
  return path


def check_writable(workdir: pathlib.Path) -> None:
  """Refuses a workdir that cannot be written: the nearest existing part of it is probed with
  an empty directory, removed at once (os.access says yes to root on a read-only filesystem).
  The launcher calls it last, just before it writes."""
  existing = _nearest_existing(workdir)
  try:
    if not os.access(existing, os.W_OK | os.X_OK):
      raise PermissionError(13, "Permission denied")
    os.rmdir(tempfile.mkdtemp(prefix=".bioknow-write-check-", dir=existing))
  except OSError as e:
    raise ValueError(
      f"--workdir: cannot write in {existing} ({e.strerror}); give a directory you can write to."
    ) from None


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
  return next(p for p in (path, *path.parents) if p.exists())


def load_sweep(path: str):
  """The sweep file as a module; one sentence if it is missing, does not load (syntax error or
  any exception), or has no sweep function."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise ValueError(
      f"--sweep: {path} does not exist; give the path of a sweep file such as sweeps/quickstart.py."
    )
  spec = importlib.util.spec_from_file_location(f"bioknow_sweep_{file.stem}", file)
  if spec is None or spec.loader is None:
    raise ValueError(f"--sweep: {path} cannot be loaded as a Python module.")
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ValueError(f"--sweep: {path} line {e.lineno}: {e.msg}; fix the file.") from None
  except Exception as e:  # anything the file's own code raises: name where, in one sentence
    raise ValueError(f"--sweep: {path} fails to load: {_where(e, file)}.") from None
  if not callable(getattr(module, "sweep", None)):
    raise ValueError(f"--sweep: {path} has no function sweep(scale) yielding (name, config).")
  return module


def swept_points(module, scale: str) -> list[tuple[str, fdl.Buildable]]:
  """The (name, config) pairs of `module.sweep(scale)`, checked: at least one, each a pair of a
  valid point name and a fiddle config, names unique and none inside another's directory."""
  file = pathlib.Path(module.__file__)
  try:
    swept = list(module.sweep(scale))
  except Exception as e:  # the sweep function's own bug: name where, in one sentence
    raise ValueError(f"sweep: sweep({scale!r}) in {file} fails: {_where(e, file)}.") from None
  if not swept:
    raise ValueError(f"sweep: sweep({scale!r}) in {file} yields no points; it must yield some.")
  for item in swept:
    if not (
      isinstance(item, tuple)
      and len(item) == 2
      and isinstance(item[0], str)
      and isinstance(item[1], fdl.Buildable)
    ):
      raise ValueError(
        f"sweep: sweep({scale!r}) in {file} yielded {_cut(repr(item))}; it must yield "
        "(run name, fiddle config) pairs."
      )
    check_point_name(item[0])
  names = [name for name, _ in swept]
  if duplicate := next((n for n in names if names.count(n) > 1), None):
    raise ValueError(f"sweep: two points are named {duplicate!r}; run names must be unique.")
  for name in names:
    if inner := next((n for n in names if n.startswith(name + "/")), None):
      raise ValueError(
        f"sweep: point {inner!r} would lie inside the run directory of point {name!r}; "
        "rename one of them."
      )
  return swept


def check_point_name(name: str) -> None:
  """A point name is its run directory relative to the workdir: one or more slash-separated
  parts of letters, digits and _.,=+@-, none of them '.' or '..'."""
  parts = name.split("/")
  if any(p in (".", "..") or not _NAME_PART.fullmatch(p) for p in parts):
    raise ValueError(
      f"sweep: point name {name!r} is not a relative path inside the workdir; use parts of "
      "letters, digits and _.,=+@- joined by '/', with no empty, '.' or '..' part."
    )
  if longest := max((p for p in parts if len(p) > NAME_MAX), key=len, default=""):
    raise ValueError(
      f"sweep: point name {name[:40]!r}... has a part of {len(longest)} characters; a "
      f"directory name may have at most {NAME_MAX}."
    )


def runs_to_replace(
  points, workdir: pathlib.Path, overwrite: bool, remedy: str = ""
) -> list[RunDir]:
  """The run directories of `points` that hold a run of another config (or an unreadable
  config.json): returned for removal with `overwrite`, refused without it, naming the first
  point and its differing fields and `remedy` (default: the launcher's flags). Reads files
  only."""
  replace, refusals = [], []
  for p in points:
    run = RunDir(workdir / p.name)
    if not run.path.exists() or (run.path.is_dir() and not any(run.path.iterdir())):
      continue
    if not (run / "config.json").is_file():
      raise ValueError(
        f"point {p.name}: {run.path} exists but holds no config.json, so it is no run of this "
        "launcher; move it away or give another --workdir."
      )
    reason = run.identity_problem(p.cfg)
    if reason is None and (why := provenance.stale(run, p.experiment.sources())) is not None:
      reason = f"{run.path} is stale: {why}"
    if reason is None:
      continue
    replace.append(run)
    refusals.append(f"point {p.name}: {reason}")
  if refusals and not overwrite:
    n = len(refusals) - 1
    others = f" ({n} more point{'s differ' if n > 1 else ' differs'} too)" if n else ""
    raise ValueError(
      f"{refusals[0]}{others}; "
      + (
        remedy
        or "run it under a new --workdir, or pass --overwrite to delete that run and start "
        "it afresh."
      )
    )
  return replace


def _cut(text: str, width: int = 40) -> str:
  text = " ".join(text.split())  # one line
  return text if len(text) <= width else text[: width - 3] + "..."


def _where(e: Exception, file: pathlib.Path) -> str:
  """'TypeError: message (line N)', N the deepest line of `file` in the exception's traceback."""
  frames = traceback.extract_tb(e.__traceback__)
  lines = [f.lineno for f in frames if pathlib.Path(f.filename).resolve() == file.resolve()]
  line = f" (line {lines[-1]})" if lines else ""
  message = str(e).splitlines()[0] if str(e) else ""
  return f"{type(e).__name__}: {message}{line}"
