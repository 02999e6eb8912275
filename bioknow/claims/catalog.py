"""Which runs each claim needs: a sweep file's points at the CPU scale, over several seeds.

A claim's points are its sweep's points; where the sweep has no seeds of its own, each point
is repeated with data and training seeds 1..K-1 (named NAME_seedK; seed 0 keeps the sweep's
name, so the sweep's own runs are reused). Runs live where the launcher puts them,
WORKDIR/SWEEP/POINT, so `make tour` runs and claims runs are the same runs.
"""

import copy
import dataclasses
import pathlib
import re
from collections.abc import Callable, Iterator

from bioknow.claims import figures, rules

SWEEPS = pathlib.Path(__file__).resolve().parents[2] / "sweeps"
# Config paths that seed a run, for each kind of experiment config.
SEED_PATHS = (("data", "seed"), ("train", "seed"), ("seed",))


@dataclasses.dataclass(frozen=True)
class Claim:
  name: str
  statement: str
  paper: str  # the paper's figure and numbers
  sweep: str  # sweep file name under sweeps/
  score: Callable[[list[dict]], rules.Score]
  figure: Callable[[list[dict], pathlib.Path], pathlib.Path | None]
  seeded_sweep: bool = False  # the sweep's points already carry _seedK in their names

  @property
  def sweep_path(self) -> pathlib.Path:
    return SWEEPS / self.sweep


CLAIMS = (
  Claim(
    "three_phases",
    "loss drops to the no-knowledge floor, stays there, then falls below it",
    "Fig. 2 left: at 64k people the plateau is the longest phase",
    "quickstart.py",
    rules.three_phases,
    figures.three_phases,
  ),
  Claim(
    "plateau_law",
    "the plateau grows almost linearly with the population",
    "Fig. 2 right: power law, exponent below 1, over 4k-256k people",
    "population.py",
    rules.plateau_law,
    figures.plateau_law,
    seeded_sweep=True,
  ),
  Claim(
    "hallucination",
    "held-out people's loss rises above the floor as knowledge emerges; less confidence",
    "Fig. 2 left and Fig. 6: held-out loss above the baseline, lower max-probability",
    "quickstart.py",
    rules.hallucination,
    figures.hallucination,
  ),
  Claim(
    "toy_memory",
    "a one-hidden-layer memory forgets old pairs with new ones; replay limits it",
    "Figs. Q, R: forgetting grows with 32-1024 new pairs; replay 2 to 1/512",
    "toy_memory.py",
    rules.toy_memory,
    figures.toy_memory,
  ),
)
BY_NAME = {c.name: c for c in CLAIMS}


def _set_seed(cfg, seed: int) -> None:
  """Sets every seed field the config has (data, training, or the toy memory's one)."""
  for path in SEED_PATHS:
    node = cfg
    for part in path[:-1]:
      node = getattr(node, part, None)
    if node is not None and hasattr(node, path[-1]):
      setattr(node, path[-1], seed)


def seeded(points: Iterator, seeds: int, seeded_sweep: bool) -> Iterator:
  """The sweep's (name, cfg) points over seeds 0..seeds-1 (see the module docstring)."""
  for name, cfg in points:
    if seeded_sweep:
      match = re.search(r"seed(\d+)", name)
      if match is None or int(match.group(1)) < seeds:
        yield name, cfg
      continue
    for seed in range(seeds):
      if seed == 0:
        yield name, cfg
      else:
        twin = copy.deepcopy(cfg)
        _set_seed(twin, seed)
        yield f"{name}_seed{seed}", twin
