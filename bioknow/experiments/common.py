"""What every experiment shares: the Experiment protocol, schedule arguments filled in from the
run, and the summary written at the end of a run."""

import dataclasses
import functools
import inspect
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


def finish(run_dir: RunDir, trained: loop.Trained, **extra) -> dict:
  """The summary of a language-model run (final evaluation, phase ends, throughput and the
  experiment's own keys), written once. Phase ends come from the records' own baselines."""
  records = trained.records
  summary = (
    (records[-1] if records else {}) | evaluation.phase_ends(records) | trained.stats | extra
  )
  run_dir.write_summary(summary)
  return summary


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
