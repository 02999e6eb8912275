"""Which runs each claim needs: a sweep file's points at the CPU scale, over several seeds.

A claim's points are its sweep's points; where the sweep has no seeds of its own, each point
is repeated with data and training seeds 1..K-1 (named NAME_seedK; seed 0 keeps the sweep's
name, so the sweep's own runs are reused). Runs live where the launcher puts them,
WORKDIR/SWEEP/POINT, so `make tour` runs and claims runs are the same runs.
"""

import copy
import dataclasses
import fnmatch
import pathlib
import re
from collections.abc import Callable, Iterator

from bioknow.claims import figures, rules

SWEEPS = pathlib.Path(__file__).resolve().parents[2] / "sweeps"
# Config paths that seed a run, for each kind of experiment config.
SEED_PATHS = (("data", "seed"), ("train", "seed"), ("seed",))
# Config fields naming another point of the sweep that a point reads: a seeded copy reads the
# same seed's copy of it.
SOURCE_FIELDS = ("reference_run", "source")


@dataclasses.dataclass(frozen=True)
class Claim:
  name: str
  statement: str
  paper: str  # the paper's figure and numbers
  sweep: str  # sweep file name under sweeps/
  score: Callable[[list[dict]], rules.Score]
  figure: Callable[[list[dict], pathlib.Path], pathlib.Path | None]
  seeded_sweep: bool = False  # the sweep's points already carry _seedK in their names
  only: tuple[str, ...] = ()  # globs of the sweep's points the claim needs (default: all)

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
    "patching",
    "attention patterns of a post-plateau checkpoint remove the plateau",
    "Fig. 3: final patterns remove most of the plateau; 0.5k-1k-step ones worse than initial",
    "patching.py",
    rules.patching,
    figures.patching,
    only=("reference", "patch_start0_*"),
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
  Claim(
    "finetune",
    "fine-tuning on new people erases old knowledge; replay and rare seen people do not",
    "Figs. 5, N, P: forgetting grows with 1k-16k new people; replay 2 to 1/32 limits it",
    "finetune.py",
    rules.finetune,
    figures.finetune,
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


def seeded(
  points: Iterator, seeds: int, seeded_sweep: bool, only: tuple[str, ...] = ()
) -> Iterator:
  """The sweep's (name, cfg) points matching `only` over seeds 0..seeds-1 (see the module
  docstring)."""
  for name, cfg in points:
    if only and not any(fnmatch.fnmatch(name, glob) for glob in only):
      continue
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
        for field in SOURCE_FIELDS:
          if isinstance(getattr(twin, field, None), str):
            setattr(twin, field, f"{getattr(twin, field)}_seed{seed}")
        yield f"{name}_seed{seed}", twin
