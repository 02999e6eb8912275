"""Value lists of the six attribute types, read from `third_party/`, and the no-knowledge baseline.

Five attribute types take their values from checked-in text files (one value per line, rank
order); birth dates are generated: every (year, month, day) with year in 1900..2100, month 1..12
and day 1..31, impossible dates included, as in the paper. Nothing is downloaded.

The no-knowledge baseline is ln(number of possible values) per attribute type, as in the paper.
It is the floor of a model that knows nothing tied to individuals only when every value (and
every prefix of its tokens) occurs many times in the trained population: then the population's
value frequencies are uniform up to sampling noise, and their entropy (`frequency_floor`) equals
ln(number of values). With sparse lists the frequencies carry information (300 people over 3,720
dates: a model can learn which dates occur, and which year follows "March 16," without knowing
anyone), so small populations need short lists for every attribute, birth dates included
(`birth_years`, `birth_months`, `birth_days`). The paper's 64k people over its lists are dense
for every value token, so its baseline, 6.785 nats, stays the floor there.
"""

import dataclasses
import functools
import math
import pathlib

import numpy as np

from bioknow.data.templates import ATTRIBUTES
from bioknow.validate import is_int

# The repository's checked-in lists (bioknow is used from a clone: `pip install -e .`).
DEFAULT_LISTS_DIR = pathlib.Path(__file__).resolve().parents[2] / "third_party"

NAME_FILES = {"first_names": "first_names.txt", "last_names": "last_names.txt"}
# Attribute type -> list file; birth_date has no file (generated).
VALUE_FILES = {
  "birth_city": "cities.txt",
  "university": "universities.txt",
  "major": "majors.txt",
  "company": "companies.txt",
  "current_city": "cities.txt",
}
# Sizes of the paper's lists; the shipped files must match them (tested), user lists may differ.
PAPER_SIZES = {
  "first_names.txt": 900,
  "last_names.txt": 1000,
  "cities.txt": 800,
  "universities.txt": 200,
  "majors.txt": 100,
  "companies.txt": 500,
}
MONTHS = (
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
)
YEARS = range(1900, 2101)
DAYS = range(1, 32)
_FORBIDDEN = set("<>\t")


@dataclasses.dataclass(frozen=True)
class ValueLists:
  """Names and, per attribute type, the tuple of its possible values (index = value id)."""

  first_names: tuple[str, ...]
  last_names: tuple[str, ...]
  values: dict[str, tuple[str, ...]]

  @property
  def n_full_names(self) -> int:
    """Distinct (first, middle, last) combinations: first and middle share one list."""
    return len(self.first_names) ** 2 * len(self.last_names)


def birth_dates(
  first_year: int = YEARS[0], last_year: int = YEARS[-1], n_months: int = 12, n_days: int = 31
) -> tuple[str, ...]:
  """All dates as 'March 16, 2042' of the first n_months months and n_days days; value id =
  ((year - first_year) * n_months + month - 1) * n_days + day - 1."""
  return tuple(
    f"{m} {d}, {y}"
    for y in range(first_year, last_year + 1)
    for m in MONTHS[:n_months]
    for d in DAYS[:n_days]
  )


@functools.lru_cache(maxsize=8)
def _birth_dates(years: tuple[int, int], n_months: int, n_days: int) -> tuple[str, ...]:
  return birth_dates(*years, n_months, n_days)


def read_list(path: pathlib.Path) -> tuple[str, ...]:
  """Reads one list file; a missing or malformed file raises one sentence naming it."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"lists_dir: list file {path} is missing (expected one value per line).")
  return _read_list(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_list(path: pathlib.Path, mtime_ns: int) -> tuple[str, ...]:
  if not path.is_file():
    raise ValueError(f"lists_dir: list file {path} is missing (expected one value per line).")
  lines = path.read_text(encoding="utf-8").splitlines()
  for i, line in enumerate(lines, start=1):
    if not line.strip() or line != line.strip() or _FORBIDDEN & set(line):
      raise ValueError(
        f"lists_dir: {path} line {i} is malformed ({line!r}); each line must be one value "
        "without surrounding spaces, tabs, '<' or '>'."
      )
  if len(set(lines)) != len(lines):
    dup = next(x for x in lines if lines.count(x) > 1)
    raise ValueError(f"lists_dir: {path} lists {dup!r} more than once; values must be unique.")
  if not lines:
    raise ValueError(f"lists_dir: {path} is empty; it needs at least one value.")
  return tuple(lines)


def load_lists(
  lists_dir: str | pathlib.Path | None = None,
  attributes: tuple[str, ...] = ATTRIBUTES,
  *,
  n_first_names: int | None = None,
  n_last_names: int | None = None,
  max_values: int | None = None,
  birth_years: tuple[int, int] = (YEARS[0], YEARS[-1]),
  birth_months: int = 12,
  birth_days: int = 31,
) -> ValueLists:
  """Loads names and the values of `attributes` from `lists_dir` (default: third_party/).

  The caps keep the head of each list (the most common names, largest cities, ...): small
  populations need small lists, or most names and values never occur in training.
  """
  check_attributes(attributes)
  for name, cap in (
    ("n_first_names", n_first_names),
    ("n_last_names", n_last_names),
    ("max_values", max_values),
  ):
    if cap is not None and not (is_int(cap) and cap >= 1):
      raise ValueError(f"{name}: got {cap!r}; it must be None (whole list) or an integer >= 1.")
  if not (
    isinstance(birth_years, (tuple, list))
    and len(birth_years) == 2
    and YEARS[0] <= birth_years[0] <= birth_years[1] <= YEARS[-1]
  ):
    raise ValueError(
      f"birth_years: got {birth_years!r}; give (first, last) with "
      f"{YEARS[0]} <= first <= last <= {YEARS[-1]}."
    )
  for name, value, top in (("birth_months", birth_months, 12), ("birth_days", birth_days, 31)):
    if not (is_int(value) and 1 <= value <= top):
      raise ValueError(
        f"{name}: got {value!r}; allowed: an integer in 1..{top} (the first "
        f"{name.split('_')[1]} of the calendar)."
      )
  root = pathlib.Path(lists_dir) if lists_dir is not None else DEFAULT_LISTS_DIR
  cache: dict[str, tuple[str, ...]] = {}

  def get(name: str) -> tuple[str, ...]:
    if name not in cache:
      cache[name] = read_list(root / name)
    return cache[name]

  dates = lambda: _birth_dates(tuple(birth_years), birth_months, birth_days)
  values = {
    a: dates() if a == "birth_date" else get(VALUE_FILES[a])[:max_values] for a in attributes
  }
  return ValueLists(
    get(NAME_FILES["first_names"])[:n_first_names],
    get(NAME_FILES["last_names"])[:n_last_names],
    values,
  )


def check_attributes(attributes: tuple[str, ...]) -> None:
  unknown = [a for a in attributes if a not in ATTRIBUTES]
  if unknown or not attributes or len(set(attributes)) != len(attributes):
    raise ValueError(
      f"attributes: got {tuple(attributes)}; use distinct names among {', '.join(ATTRIBUTES)}."
    )


def baselines(lists: ValueLists) -> dict[str, float]:
  """Per attribute type, ln(number of possible values): the loss of a model that knows the
  (uniform) value distribution but nothing about individuals."""
  return {a: math.log(len(v)) for a, v in lists.values.items()}


def no_knowledge_baseline(lists: ValueLists) -> float:
  """Mean over attribute types of `baselines`. ~6.785 nats for the paper."""
  per_attribute = baselines(lists)
  return sum(per_attribute.values()) / len(per_attribute)


def frequency_floor(
  values_NxA: np.ndarray, attributes: tuple[str, ...], weights_N: np.ndarray | None = None
) -> dict[str, float]:
  """Per attribute type, the entropy (nats) of the value frequencies among individuals sampled
  with `weights_N` (uniform if None): the loss of the best predictor that knows the population's
  value frequencies and nothing else. It equals `baselines` when the lists are dense."""
  weights_N = np.ones(len(values_NxA)) if weights_N is None else np.asarray(weights_N, float)
  floor = {}
  for a, name in enumerate(attributes):
    p = np.bincount(values_NxA[:, a], weights=weights_N)
    p = p[p > 0] / p.sum()
    floor[name] = float(-(p * np.log(p)).sum())
  return floor
