"""The type and range checks of config fields and records, in one place.

Predicates (is_int, is_number) answer whether a value may be read as an integer or a number;
the checks (check_int, check_number, check_bool) raise ValueError with one sentence that names
the field, shows the value and says what is allowed, e.g. "eval.every: got 0; it must be an
integer >= 1.". A bool is never an integer or a number here, though Python counts it as one.
numpy scalars: `numpy=True` accepts numpy integers (and, for numbers, numpy floats too); without
it only Python's int and float pass (np.float64, a float subclass, passes either way).
Pure Python and numpy: bioknow.analysis reads runs through this without jax or matplotlib.
"""

import math
from typing import Any

import numpy as np


def is_int(x: Any, *, numpy: bool = False) -> bool:
  """Whether x is an int (a numpy integer too, with numpy=True), and not a bool."""
  kinds = (int, np.integer) if numpy else int
  return isinstance(x, kinds) and not isinstance(x, bool)


def is_number(x: Any, *, finite: bool = False, numpy: bool = False) -> bool:
  """Whether x is an int or a float (numpy integers and floats too, with numpy=True), and not
  a bool; with finite=True, also neither infinite nor NaN."""
  kinds = (int, float, np.integer, np.floating) if numpy else (int, float)
  if not isinstance(x, kinds) or isinstance(x, bool):
    return False
  return not finite or math.isfinite(x)


def check_int(
  name: str, value: Any, low: int = 0, high: int | None = None, *, numpy: bool = False
) -> None:
  """Raises ValueError unless value is an integer (is_int) in [low, high] (high=None: no upper
  bound); `name` is the field as the user writes it (e.g. 'eval.every')."""
  if not (is_int(value, numpy=numpy) and value >= low and (high is None or value <= high)):
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name}: got {value!r}; it must be an integer {bounds}.")


def check_number(
  name: str, value: Any, low: float | None = None, *, above: bool = False, numpy: bool = False
) -> None:
  """Raises ValueError unless value is a finite number (is_number) >= low (> low with
  above=True; low=None: any finite number)."""
  ok = is_number(value, finite=True, numpy=numpy)
  if ok and low is not None:
    ok = value > low if above else value >= low
  if not ok:
    bound = "" if low is None else f" {'>' if above else '>='} {low}"
    raise ValueError(f"{name}: got {value!r}; it must be a finite number{bound}.")


def check_bool(name: str, value: Any) -> None:
  """Raises ValueError unless value is True or False (a bool; 0, 1 and numpy bools are not)."""
  if not isinstance(value, bool):
    raise ValueError(f"{name}: got {value!r}; it must be True or False.")
