"""bioknow.run: the one way to run a config, from Python and from the launcher's executors.

  summary = bioknow.run(configs.pretrain("small"), "runs/mine")

It builds the fiddle config and checks it before any compute, then runs it in its run
directory, whose files RunDir owns (config.json, metrics.jsonl, checkpoints/, summary.json,
...). A run's identity is its config: a directory holding a run of another config is refused,
naming the differing fields, and nothing is written; one holding an unfinished run of this
config resumes from its latest checkpoint; a finished one is skipped and its summary returned.
A failed attempt leaves its traceback in error.txt. The whole run holds the run directory's
lock (bioknow.runlock): a second caller reaching it meanwhile is refused, naming the holder.
The launcher builds and checks every point of a sweep first, then its executors run each
through `run_built`, the second half of `run`.
"""

import os
import traceback

import fiddle as fdl

from bioknow import provenance, runlock
from bioknow.experiments.common import Experiment
from bioknow.rundir import RunDir


class OtherRunError(ValueError):
  """The run directory holds something other than a run of the config; nothing was run or
  written."""


class StaleRun(ValueError):
  """A run whose source changed since it ran (bioknow.provenance); nothing was run."""


class DamagedRun(ValueError):
  """A finished run whose metrics.jsonl disagrees with its summary.json; nothing was run."""


def build(config) -> Experiment:
  """The experiment that the fiddle config builds, checked (Experiment.check); ValueError or
  TypeError, one sentence, before any compute."""
  if not isinstance(config, fdl.Buildable):
    # config.json is fiddle's serialization: a built dataclass has none.
    raise TypeError(
      f"config: got a {type(config).__name__}; give the fiddle config that builds it, e.g. "
      "configs.pretrain('small')."
    )
  experiment = fdl.build(config)
  if not isinstance(experiment, Experiment):
    raise TypeError(
      f"config: it builds a {type(experiment).__name__}, not an experiment (one with check, "
      "sources, check_sources, n_steps, key_metrics, train_cost and run)."
    )
  experiment.check()
  return experiment


def run(config, run_dir: "str | os.PathLike | RunDir") -> dict:
  """Runs the fiddle `config` (any experiment kind: configs.pretrain, patching, finetune,
  toy_memory) in `run_dir`, or resumes it there, or skips it if finished; returns its summary.

  Raises ValueError (one sentence) before anything runs or is written when the config fails
  its check (TypeError when it is no fiddle config of an experiment), when run_dir holds a run
  of another config (OtherRunError), or when the runs it reads (a fine-tuning source, a
  patching reference) are not ready; relative source paths are relative to run_dir's parent,
  as in a sweep's workdir."""
  experiment = build(config)
  path = RunDir(run_dir).path.expanduser().resolve()
  if path.exists() and not path.is_dir():
    raise ValueError(f"run_dir: {path} is a file; give a directory (it is created if missing).")
  return run_built(config, experiment, RunDir(path))


def run_built(config, experiment: Experiment, run_dir: RunDir) -> dict:
  """`run` after building: runs `experiment`, already built from `config` and checked, in
  run_dir (the launcher's executors call this for every point)."""
  if (problem := run_dir.identity_problem(config)) is not None:
    raise OtherRunError(
      f"{problem}; give another run directory, or delete that one to start afresh."
    )
  if (why := provenance.stale(run_dir, experiment.sources())) is not None:
    raise StaleRun(
      f"{run_dir.path} is stale: {why}; rerun it (the launcher's --overwrite) or delete it."
    )
  try:
    if (done := run_dir.summary()) is not None:  # ValueError if unreadable
      if (damage := run_dir.damage()) is not None:
        raise DamagedRun(
          f"{damage}: the finished run is damaged; delete {run_dir / 'summary.json'} and run "
          "it again to resume from its last checkpoint with a record, which rewrites the rest."
        )
      return done
    experiment.check_sources(run_dir)  # before anything is written
    if (ckpts := run_dir.checkpoints_dir).exists() and not ckpts.is_dir():  # orbax would hang
      raise ValueError(
        f"{ckpts} is not a directory; move it away and run again (the run then starts over)."
      )
  except Exception:
    run_dir.write_error(traceback.format_exc())  # only where the directory exists
    raise
  with runlock.held(run_dir.path):  # one writer: a second caller is refused, naming this one
    try:
      if (done := run_dir.summary()) is not None:  # finished while this caller waited
        return done
      run_dir.clear_error()
      run_dir.write_config(config)
      provenance.record(run_dir, experiment.sources())
      return experiment.run(run_dir)
    except Exception:
      run_dir.write_error(traceback.format_exc())
      raise
