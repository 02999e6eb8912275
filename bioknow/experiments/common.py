"""What every experiment shares: the Experiment protocol, schedule arguments filled in from the
run, the plateau stop, and the summary written at the end of a run (the one place it is built)."""

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from bioknow.rundir import RunDir
from bioknow.train import evaluation, loop


@runtime_checkable
class Experiment(Protocol):
  """What a sweep point runs, as the launcher and the executors use it."""

  @property
  def n_steps(self) -> int:
    """Training steps in total (all phases)."""
    ...

  def check(self) -> None:
    """Raises ValueError (one sentence naming the field) if the config cannot run; reads no
    files and computes nothing."""
    ...

  def sources(self) -> tuple[str, ...]:
    """Run directories this run reads, relative to the sweep's workdir (run first)."""
    ...

  def check_sources(self, run_dir: RunDir) -> None:
    """Raises ValueError (one sentence) unless the sources are finished runs this run can
    start from; reads files only, writes nothing."""
    ...

  def key_metrics(self) -> tuple[str, ...]:
    """The summary.json keys the launcher's status table shows."""
    ...

  def train_cost(self) -> tuple[float, str]:
    """(rough model FLOPs of the training, compute dtype), for the launcher's estimate; 0 FLOPs
    where they are negligible."""
    ...

  def run(self, run_dir: RunDir) -> dict:
    """Runs (or resumes) the experiment in run_dir; writes and returns summary.json."""
    ...


def finish(
  run_dir: RunDir,
  trained: loop.Trained,
  *fields: dict,
  summarise: Callable[[list[dict]], dict] | None = None,
) -> dict:
  """Writes summary.json once and returns it; every language-model run's summary is built
  here alone. In order, later keys replacing earlier ones: the final evaluation record, the
  phase ends (from the records' own baselines), the loop's throughput (Trained.stats), each
  of `fields` (the run's facts, the experiment's settings), and summarise(records) (what the
  experiment computes from its records, e.g. forgetting)."""
  records = trained.records
  summary = (records[-1] if records else {}) | evaluation.phase_ends(records) | trained.stats
  for extra in (*fields, summarise(records) if summarise else {}):
    summary |= extra
  run_dir.write_summary(summary)
  return summary


def plateau_stop(train: loop.TrainConfig) -> Callable[[list[dict]], bool] | None:
  """Hooks.stop for train.stop_after_plateau (None without it): true once the records
  confirm the plateau's end (phase_ends of a run still training)."""
  if not train.stop_after_plateau:
    return None

  def stop(records: list[dict]) -> bool:
    over = (
      bool(records)
      and evaluation.phase_ends(records, finished=False)["plateau_end_step"] is not None
    )
    if over:
      step = records[-1]["step"]  # the loop stops at the evaluation just recorded
      print(f"plateau ended: stopped at step {step} (train.stop_after_plateau)", flush=True)
    return over

  return stop


def build_schedule(factory, **context):
  """Calls a schedule factory (a class or a functools.partial of one, e.g. from fdl.Partial),
  supplying the run-dependent arguments it accepts and lacks (n_individuals, batch_size,
  n_steps), and building nested factories (schedules of Phases) the same way. A factory
  that sets n_individuals to anything but the run's training population is refused: the
  population a schedule addresses comes from the data config alone."""
  if not callable(factory) or dataclasses.is_dataclass(factory) and not isinstance(factory, type):
    return factory  # already a schedule
  func = factory.func if isinstance(factory, functools.partial) else factory
  given = dict(factory.keywords) if isinstance(factory, functools.partial) else {}
  n = context.get("n_individuals")
  if given.get("n_individuals", n) != n:
    raise ValueError(
      f"n_individuals: got {given['n_individuals']!r} but the training population is "
      f"data.n_individuals = {n}; a schedule may address only training ids, so leave it "
      "unset (the run fills it in)."
    )
  params = inspect.signature(func).parameters
  kwargs = {k: v for k, v in context.items() if k in params and k not in given}
  for k, v in given.items():
    if isinstance(v, (tuple, list)):
      given[k] = type(v)(build_schedule(x, **context) if callable(x) else x for x in v)
  return func(**given, **kwargs)
