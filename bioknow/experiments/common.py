"""Pieces shared by experiments: filling run-dependent schedule arguments."""

import dataclasses
import functools
import inspect


def build_schedule(factory, **context):
  """Calls a schedule factory (a class or a functools.partial of one, e.g. from fdl.Partial),
  supplying the run-dependent arguments it accepts and lacks (n_individuals, batch_size,
  n_steps), and building nested factories (schedules of Phases) the same way."""
  if not callable(factory) or dataclasses.is_dataclass(factory) and not isinstance(factory, type):
    return factory  # already a schedule
  func = factory.func if isinstance(factory, functools.partial) else factory
  given = dict(factory.keywords) if isinstance(factory, functools.partial) else {}
  params = inspect.signature(func).parameters
  kwargs = {k: v for k, v in context.items() if k in params and k not in given}
  for k, v in given.items():
    if isinstance(v, (tuple, list)):
      given[k] = type(v)(build_schedule(x, **context) if callable(x) else x for x in v)
  return func(**given, **kwargs)
