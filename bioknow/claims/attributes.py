"""A claim's view attribute by attribute: the claim's measure taken on each attribute type
(birth_date, birth_city, ...) on its own, from the per-attribute keys the runs record
(`attribute_loss/NAME`, `no_knowledge_baseline/NAME`, `plateau_end_step/NAME`, ...), so the
scorecard shows whether an effect holds in every attribute or is carried by a few. A small
run's result counts only where it is the paper's phenomenon, not one attribute's confound.
"""

import math
from collections.abc import Callable, Iterable

from bioknow.analysis import runs as R
from bioknow.train import phases

BASELINE = "no_knowledge_baseline"


def names(runs: Iterable[dict]) -> list[str]:
  """The attribute types whose own baseline the runs record, in their recorded order."""
  found: dict[str, None] = {}
  for run in runs:
    keys = [*(run["records"][-1] if run["records"] else {}), *run["summary"]]
    for key in keys:
      if key.startswith(BASELINE + "/"):
        found.setdefault(key.split("/", 1)[1])
  return list(found)


def over_baseline(run: dict, key: str, name: str) -> float:
  """The run's final `key/name` over that attribute's own final baseline."""
  return R.final(run, f"{key}/{name}") / R.final(run, f"{BASELINE}/{name}")


def view(runs: list[dict], measure: Callable[[dict, str], float]) -> dict[str, list[float]]:
  """{attribute: [measure(run, attribute) for each run, in order]}, over the attributes
  (names) where at least one run's measure is finite; {} where the runs record none."""
  out = {}
  for name in names(runs):
    values = [float(measure(run, name)) for run in runs]
    if any(math.isfinite(v) for v in values):
      out[name] = values
  return out


def clause(holds: dict[str, bool]) -> str:
  """The per-attribute part of a 'measured' line: 'by attribute: 6 of 6', or 'by attribute:
  4 of 6 (birth_date, company not)' naming those that break the pattern; 'by attribute: not
  recorded' without per-attribute values."""
  if not holds:
    return "by attribute: not recorded"
  broken = [name for name, ok in holds.items() if not ok]
  text = f"by attribute: {len(holds) - len(broken)} of {len(holds)}"
  return text + (f" ({', '.join(broken)} not)" if broken else "")


def plateau_end_bounds(run: dict, name: str) -> tuple[float, float]:
  """R.plateau_end_bounds for one attribute type: (earliest, latest) end of its own plateau
  (the summary's plateau_end_step/NAME, else train.phases' rules on the records so far),
  both the run's training steps where its plateau never ends."""
  key, ends = f"plateau_end_step/{name}", run["summary"]
  if key not in ends:
    ends = phases.phase_ends(run["records"], finished=bool(ends))
  end = ends.get(key)
  if end is None:
    budget = R.n_steps(run)
    budget = float(budget) if R.is_number(budget) else math.nan
    return budget, budget
  steps, _ = R.series(run["records"], f"attribute_loss/{name}")
  before = steps[steps < end]
  return (float(before[-1]) if len(before) else 0.0), float(end)
