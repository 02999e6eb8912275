"""The files of one run directory, with one owner: every writer and reader goes through RunDir.

  config.json          the fiddle config (fiddle's serialization), plus "leaves": every
                       config field by dotted path, unset ones at their defaults
  config.txt           fiddle's flattened listing, one `path = value` line a field, for people
  metrics.jsonl        one JSON record per evaluation
  summary.json         written once, atomically, when the run has finished
  error.txt            the traceback of the latest failed attempt (removed when one starts)
  checkpoints/         orbax checkpoints, one directory per step once complete
  skipped_checkpoints/ checkpoints a resume could not use (train.resume says why), kept aside
  per_individual.zarr  written by the training loop (tensorstore)

A file that exists but does not read raises ValueError naming it (a torn last metrics line
excepted: that is a run still writing, or killed while it wrote). Importing this module
imports neither JAX nor fiddle: the figures read leaves, records and summaries through it.
Writing a config and loading it back as a config import fiddle (the
one place outside the configs and the launcher that does, to keep the format in one file).
"""

import dataclasses
import inspect
import json
import os
import pathlib
import shutil
from typing import Any

ABSENT = "(absent)"  # how config_changes shows a field that one of the two configs lacks
_SHOWN = 3  # differing fields named by identity_problem; the rest are counted


# Config fields that cannot change a run's results (how often progress is printed): left out
# of its identity, so changing one resumes the run instead of refusing it.
NOT_IDENTITY = ("progress_seconds",)


class RunDir:
  """A run directory; `RunDir(path)` creates nothing until something is written."""

  def __init__(self, path: "str | os.PathLike | RunDir"):
    self.path: pathlib.Path = path.path if isinstance(path, RunDir) else pathlib.Path(path)

  def __repr__(self) -> str:
    return f"RunDir({str(self.path)!r})"

  def __truediv__(self, name: str) -> pathlib.Path:
    return self.path / name

  @property
  def name(self) -> str:
    return self.path.name

  def source(self, name: str) -> "RunDir":
    """The run another run reads (`source`, `reference_run`): an absolute path, or a path
    relative to the sweep's workdir, the parent of this run's directory."""
    path = pathlib.Path(name)
    return RunDir(path if path.is_absolute() else self.path.parent / path)

  # Config ------------------------------------------------------------------------------------

  def write_config(self, cfg) -> None:
    """Writes config.json and config.txt for the fiddle config `cfg`."""
    from fiddle import printing
    from fiddle.experimental import serialization

    leaves = config_leaves(cfg)
    self.path.mkdir(parents=True, exist_ok=True)
    stored = json.loads(serialization.dump_json(cfg)) | {"leaves": leaves}
    _write_atomically(self / "config.json", json.dumps(stored, indent=2) + "\n")
    text = printing.as_str_flattened(cfg, include_types=False) + "\n"
    _write_atomically(self / "config.txt", text)

  def has_config(self) -> bool:
    return (self / "config.json").is_file()

  def config(self):
    """The fiddle config stored in config.json; ValueError naming the file if it does not
    load."""
    from fiddle.experimental import serialization

    path = self / "config.json"
    try:
      return serialization.load_json(path.read_bytes().decode())
    except Exception as e:  # any reason the file does not load is the same to a caller
      raise ValueError(f"{path} does not load as a config ({type(e).__name__}: {e}).") from None

  def config_changes(self, cfg) -> dict[str, tuple[Any, Any]]:
    """{dotted path: (stored value, value in `cfg`)} of every config field where config.json
    and the fiddle config `cfg` differ, but for NOT_IDENTITY fields; a field one side lacks
    reads ABSENT there. Raises
    ValueError if config.json is missing or unreadable."""
    stored = _read_json(self / "config.json")
    if stored is None:
      raise ValueError(f"{self / 'config.json'} is missing or unreadable")
    old = stored.get("leaves")
    if not isinstance(old, dict):  # written before config.json held leaves
      try:
        old = config_leaves(self.config())
      except Exception:  # fiddle cannot read it back: as unreadable as broken JSON
        raise ValueError(f"{self / 'config.json'} is missing or unreadable") from None
    new = config_leaves(cfg)
    return {
      k: (old.get(k, ABSENT), new.get(k, ABSENT))
      for k in sorted(old.keys() | new.keys())
      if old.get(k, ABSENT) != new.get(k, ABSENT) and k.rsplit(".", 1)[-1] not in NOT_IDENTITY
    }

  def identity_problem(self, cfg) -> str | None:
    """Why this directory cannot take a run of the fiddle config `cfg`, in words; None when it
    can (it is missing or empty, or holds a run of `cfg`). A run's identity is its config, so
    that a resumed run never mixes two."""
    # The lock file alone (a run killed before it wrote its config) is an empty run.
    if (
      not self.path.exists()
      or self.path.is_dir()
      and not ({p.name for p in self.path.iterdir()} - {"lock"})
    ):
      return None
    if not self.has_config():
      return f"{self.path} exists but holds no config.json, so it is no run of bioknow"
    try:
      changes = self.config_changes(cfg)
    except ValueError as e:
      return str(e)
    if not changes:
      return None
    shown = ", ".join(
      f"{k}: {_short(old)} -> {_short(new)}" for k, (old, new) in list(changes.items())[:_SHOWN]
    )
    more = f" and {len(changes) - _SHOWN} more" if len(changes) > _SHOWN else ""
    return f"{self.path} holds a run of another config ({shown}{more})"

  def experiment(self):
    """The experiment config the run was built from (fdl.build of config())."""
    import fiddle as fdl

    return fdl.build(self.config())

  def leaves(self) -> dict[str, Any]:
    """{dotted path: value} of every config field (JSON values: tuples read as lists,
    types and functions as their repr); {} without config.json; ValueError naming the file
    if it is unreadable."""
    path = self / "config.json"
    if not path.exists():
      return {}
    leaves = (_read_json(path) or {}).get("leaves")
    if not isinstance(leaves, dict):
      raise ValueError(f"{path} is unreadable (not a JSON object with the config's leaves).")
    return leaves

  # Metrics -----------------------------------------------------------------------------------

  @property
  def metrics_path(self) -> pathlib.Path:
    return self / "metrics.jsonl"

  def records(self) -> list[dict]:
    """The evaluation records; a torn last line (a live run still writing it, or a killed
    one) is passed over. Raises ValueError naming the file if any other line is unreadable."""
    records, damage = self.read_records()
    if damage:
      raise ValueError(damage)
    return records

  def read_records(self) -> tuple[list[dict], str | None]:
    """The records before the first unreadable line, and a sentence naming that line (None
    when every line reads; a torn last line is not damage, it is passed over)."""
    if not self.metrics_path.exists():
      return [], None
    try:
      lines = self.metrics_path.read_bytes().decode().splitlines()
    except (OSError, UnicodeDecodeError) as e:
      return [], f"{self.metrics_path} is unreadable ({type(e).__name__}: {e})."
    records: list[dict] = []
    for i, line in enumerate(lines):
      record = _parse_object(line)
      if record is None or "step" not in record:
        if i == len(lines) - 1:
          break  # torn last line
        return records, f"{self.metrics_path} line {i + 1} is not a JSON record with a step."
      records.append(record)
    return records, None

  def write_records(self, records: list[dict]) -> None:
    self.path.mkdir(parents=True, exist_ok=True)
    _write_atomically(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

  def append_record(self, record: dict) -> None:
    with self.metrics_path.open("a") as f:
      f.write(json.dumps(record) + "\n")

  # Summary -----------------------------------------------------------------------------------

  def summary(self) -> dict | None:
    """summary.json, or None while the run is unfinished; raises ValueError naming the file
    if it exists but is not a JSON object."""
    path = self / "summary.json"
    if not path.exists():
      return None
    summary = _read_json(path)
    if summary is None:
      raise ValueError(
        f"{path} is unreadable (not a JSON object); delete it and re-run to rewrite it from "
        "the run's final checkpoint."
      )
    return summary

  def damage(self) -> str | None:
    """Why a finished run's files disagree, in words; None when they agree or the run is not
    finished. metrics.jsonl must read whole (a finished run has no torn line) and end at the
    step summary.json names, so that a truncated or deleted file is never skipped as done."""
    summary = self.summary()
    if summary is None:
      return None
    records, problem = self.read_records()
    if problem:
      return problem
    if not self.metrics_path.exists():
      return f"{self.metrics_path} is missing"
    n_lines = len(self.metrics_path.read_bytes().splitlines())
    if n_lines != len(records):
      return f"{self.metrics_path} ends in a torn line"
    last = records[-1]["step"] if records else None
    if "step" in summary and last != summary["step"]:
      return (
        f"{self.metrics_path} ends at step {last}, but summary.json says the run ended at "
        f"step {summary['step']}"
      )
    return None

  def is_finished(self) -> bool:
    return (self / "summary.json").is_file()

  def write_summary(self, summary: dict) -> None:
    """Writes summary.json in one step (a temporary file renamed over it): a reader sees
    either no summary or the whole of it."""
    _write_atomically(self / "summary.json", json.dumps(summary, indent=2) + "\n")

  # Failures and removal ----------------------------------------------------------------------

  @property
  def error_path(self) -> pathlib.Path:
    return self / "error.txt"

  def write_error(self, text: str) -> None:
    """Writes a failed attempt's traceback to error.txt, where the run directory exists (a run
    that failed before writing anything stays unwritten)."""
    if self.path.is_dir():
      _write_atomically(self.error_path, text)

  def clear_error(self) -> None:
    self.error_path.unlink(missing_ok=True)

  def diverged(self) -> bool:
    """Whether the latest failed attempt stopped on a non-finite loss (the training loop's
    TrainingDiverged): an lr sweep counts such a run as worse than any finished one."""
    return self.error_path.is_file() and "TrainingDiverged" in self.error_path.read_text()

  def remove(self) -> None:
    """Deletes the run directory and everything in it."""
    shutil.rmtree(self.path)

  # Checkpoints -------------------------------------------------------------------------------

  @property
  def checkpoints_dir(self) -> pathlib.Path:
    return self / "checkpoints"

  def checkpoint_steps(self) -> list[int]:
    """Steps of the complete checkpoints (orbax renames a checkpoint to its step once it is
    complete)."""
    if not self.checkpoints_dir.is_dir():
      return []
    return sorted(
      int(p.name) for p in self.checkpoints_dir.iterdir() if p.name.isdigit() and p.is_dir()
    )


def config_leaves(cfg) -> dict[str, Any]:
  """Every field of a fiddle config by dotted path (`data.n_individuals`, `schedule.phases[0]
  .alpha`), unset fields at their defaults (None where there is none) and dataclass defaults
  expanded field by field; values as JSON values, other objects as their repr."""
  import fiddle as fdl

  leaves: dict[str, Any] = {}

  def walk(value, path: str) -> None:
    if isinstance(value, fdl.Buildable):
      params = value.__signature_info__.signature.parameters
      args = value.__arguments__
      names = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
      for name in names + [n for n in args if n not in params]:
        default = params[name].default if name in params else None
        walk(
          args.get(name, None if default is inspect.Parameter.empty else default),
          f"{path}.{name}" if path else name,
        )
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
      for field in dataclasses.fields(value):
        walk(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, (list, tuple)) and any(
      isinstance(x, fdl.Buildable) or dataclasses.is_dataclass(x) for x in value
    ):
      for i, x in enumerate(value):
        walk(x, f"{path}[{i}]")
    else:
      leaves[path] = _jsonable(value)

  walk(cfg, "")
  return leaves


def _short(value, width: int = 40) -> str:
  """A config value as one line of JSON (ABSENT as itself), cut to `width` characters."""
  text = " ".join((value if value == ABSENT else json.dumps(value, default=repr)).split())
  return text if len(text) <= width else text[: width - 3] + "..."


def _jsonable(value):
  try:
    return json.loads(json.dumps(value))
  except (TypeError, ValueError):
    return repr(value)


def _parse_object(text: str) -> dict | None:
  """The JSON object `text` holds, else None."""
  try:
    value = json.loads(text)
  except ValueError:  # JSONDecodeError, and numbers too large to read
    return None
  return value if isinstance(value, dict) else None


def _read_json(path: pathlib.Path) -> dict | None:
  """The JSON object in the file, else None (missing, not text, not an object)."""
  try:
    return _parse_object(path.read_bytes().decode())
  except (OSError, UnicodeDecodeError):
    return None


def _write_atomically(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
