"""Which runs each claim needs: a sweep file's points at the CPU scale, over learning rates
and seeds.

A claim's points are its sweep's points (those matching its globs, and where it names one, at
the population and budget of a reference family of points). Where the claim sweeps the
learning rate, each point is repeated at lr x factor for each factor of its ladder other than
1 (named NAME_lrxFACTOR; factor 1 keeps the sweep's name); only some of them run (run_claim).
Where the sweep has no seeds of its own, each of those is repeated with data and training
seeds 1..K-1 (named NAME_seedK; seed 0 keeps the name), so the sweep's own runs are
reused. A copy that reads another point (reference_run, source) reads that point's copy at
the same lr and seed. --quick keeps the points its `quick` globs name, at seed 0 and the base
lr (quick). Runs live where the launcher puts them, WORKDIR/SWEEP/POINT, so `make tour`
runs, claims runs and quick runs are the same runs.
"""

import copy
import dataclasses
import fnmatch
import pathlib
import re
from collections.abc import Callable, Iterator

from bioknow.claims import (
  figures,
  rules,
  rules_curricula,
  rules_finetune,
  rules_patching,
  rules_phases,
  rules_templates,
  rules_warmup,
)

# The sweep files' folder, relative to the current directory: the claims command runs from a
# bioknow checkout (--sweeps names another).
DEFAULT_SWEEPS = "sweeps"
# Config paths that seed a run, for each kind of experiment config.
SEED_PATHS = (("data", "seed"), ("train", "seed"), ("seed",))
# Config fields naming another point of the sweep that a point reads: a seeded copy reads the
# same seed's copy of it.
SOURCE_FIELDS = ("reference_run", "source")
# The paper keeps, in nearly every experiment, the best of a learning-rate sweep. The claims
# walk a ladder of factors of the base config's lr: every setting starts at x1, x2 and x4
# (LR_START) and, while seed 0's pick has a neighbour on the ladder that has not run, runs
# that neighbour (run_claim, lr_neighbours), so each pick ends bracketed by two worse lrs or
# at the ladder's end: a fixed grid left many picks at its top (docs/claims.md). At the paper
# scale x1-x4 is 4e-4-1.6e-3. A claim whose curves bend with the lr (how long the
# plateau lasts, which schedule ends best) sweeps it, so that a schedule is not judged at an
# lr that suits another one. plateau_law has its own structure (seeds in the sweep, runs
# stopped at their plateau's end, so no final training loss to compare) and keeps the base lr;
# patching and fine-tuning read one reference run each and the toy memory has lrs of its own,
# so they keep theirs too.
LR_FACTORS = (0.25, 0.5, 1, 2, 4, 8, 16)
LR_START = (1, 2, 4)


@dataclasses.dataclass(frozen=True)
class Claim:
  """One claim of the paper: the sweep points it needs and the rule and figure that judge
  them. With lr_factors (a ladder) each point also has copies at lr x factor, of which those
  at lr_start run first and the others where seed 0's pick reaches them; the rule scores
  every setting at its best lr. LR_FACTORS says which claims sweep the lr and why."""

  name: str
  statement: str
  paper: str  # the paper's figure and numbers
  sweep: str  # sweep file name in the sweeps folder (--sweeps)
  score: Callable[[list[dict]], rules.Score]
  figure: Callable[[list[dict], pathlib.Path], pathlib.Path | None]
  seeded_sweep: bool = False  # the sweep's points already carry _seedK in their names
  only: tuple[str, ...] = ()  # globs of the sweep's points the claim needs (default: all)
  # The paper's lr sweep: every point also at lr x factor; the rule keeps, per setting, the
  # lr with the best mean final training loss over seeds (rules.best_lr).
  lr_factors: tuple[float, ...] = ()
  lr_start: tuple[float, ...] = LR_START  # the factors every setting runs (the rest on demand)
  # A glob: only points at a (population, budget) of a point it matches are kept.
  regime_of: str = ""
  quick: tuple[str, ...] = ()  # --quick: globs of the points it keeps (default: all)

  def sweep_path(self, sweeps_dir: pathlib.Path) -> pathlib.Path:
    """Its sweep file in the folder of sweep files."""
    return sweeps_dir / self.sweep

  @property
  def sweep_name(self) -> str:
    """Its sweep's name: the runs live in WORKDIR/SWEEP_NAME/POINT."""
    return pathlib.Path(self.sweep).stem


def check_sweeps(claims, sweeps_dir: pathlib.Path) -> None:
  """Refuses, in one sentence naming --sweeps, a folder that lacks a sweep file of the claims."""
  needed = list(dict.fromkeys(c.sweep for c in claims))
  missing = [s for s in needed if not (sweeps_dir / s).is_file()]
  if not missing:
    return
  where = (
    f"no sweep files in {sweeps_dir}"
    if len(missing) == len(needed)
    else f"{sweeps_dir} has no {', '.join(missing)}"
  )
  raise ValueError(
    f"--sweeps: {where}; run from a bioknow checkout or pass --sweeps=DIR holding "
    f"{', '.join(needed)}."
  )


CLAIMS = (
  Claim(
    "three_phases",
    "loss drops to the no-knowledge floor, stays there, then falls below it",
    "Fig. 2 left: at 64k people the plateau is the longest phase",
    # 1,600 people with the 128-wide model for 4,000 steps: at the quickstart's 5 minutes
    # knowledge reaches 20-40% accuracy only, and at 800 people the plateau is about as long
    # as the first phase. The sweep's own seed and lr copies carry the names the claim gives
    # its copies of `phases`, so the two share runs.
    "phases.py",
    rules_phases.three_phases,
    figures.three_phases,
    only=("phases",),
    lr_factors=LR_FACTORS,
    quick=("phases_n800",),  # the quickstart's 800 people: `phases` alone takes over 30 min
  ),
  Claim(
    "plateau_law",
    "the plateau grows almost linearly with the population",
    "Fig. 2 right: power law, exponent below 1, over 4k-256k people",
    "population.py",
    rules_phases.plateau_law,
    figures.plateau_law,
    seeded_sweep=True,
    # The rule needs 5 populations over 16x (100 people end their plateau with their first
    # phase, and it leaves them out): 1,600 and 3,200 people alone would take over a quarter
    # of the quick check's 30 minutes, so it fits k over the three smallest (4x): not shown.
    quick=tuple(f"n{n}_seed*" for n in (200, 400, 800)),  # --seeds keeps seeds
  ),
  Claim(
    "patching",
    "attention patterns of a post-plateau checkpoint remove the plateau",
    "Fig. 3: final patterns remove most of the plateau; 0.5k-1k-step ones worse than initial",
    "patching.py",
    rules_patching.patching,
    figures.patching,
    only=("reference", "patch_start0_*"),
    # The final patterns against the reference; the initial and plateau-time ones (steps
    # 200-650, docs/claims.md) are the full grid's, so the quick row is not shown at best.
    quick=("reference", "patch_start0_ref1250"),
  ),
  Claim(
    "alpha",
    "imbalanced sampling shortens the plateau; the best alpha grows with N, shrinks with budget",
    "Fig. 4 left, middle: the plateau is shortest at alpha 0.6-0.8; the final-loss-optimal "
    "alpha grows with 16k-256k people and shrinks with 8k-32k steps",
    "curricula.py",
    rules_curricula.alpha,
    figures.alpha,
    only=("powerlaw_*",),
    lr_factors=LR_FACTORS,
    # One regime, the warm-up's (its two runs are warmup's too, so they cost the quick check
    # nothing): the paper's range (0.75) against uniform (0). One regime cannot test the
    # trends, so the quick row is not shown at best.
    quick=tuple(f"powerlaw_n1200_steps1500_alpha{a}" for a in ("0", "0.75")),
  ),
  Claim(
    "warmup",
    "at a population large for its budget, a warm-up beats uniform and every static mix",
    "Fig. 4 right, Figs. I-K: at 128k people, a warm-up on a subset ends above uniform "
    "sampling, every power law and every celebrity mix",
    "curricula.py",
    rules_warmup.warmup,
    figures.warmup,
    # Static schedules count only at the warm-ups' population and budget (the other power
    # laws are the alpha claim's).
    only=("uniform_*", "warmup_*", "celebrities_*", "powerlaw_*"),
    lr_factors=LR_FACTORS,
    regime_of="warmup_*",
    # Uniform, and the full grid's best warm-up, power law and celebrity mix at the base lr
    # (docs/claims.md): 4 of its 16 settings.
    quick=("*alpha0", "*alpha0.75", "celebrities_n120_w8", "warmup_n1200_indiv300_epochs40"),
  ),
  Claim(
    "hallucination",
    "held-out people's loss rises above the floor as knowledge emerges; less confidence",
    "Fig. 2 left and Fig. 6: held-out loss above the baseline, lower max-probability",
    "phases.py",  # three_phases' runs: no run of its own
    rules_phases.hallucination,
    figures.hallucination,
    only=("phases",),
    lr_factors=LR_FACTORS,
    quick=("phases_n800",),
  ),
  Claim(
    "toy_memory",
    "a one-hidden-layer memory forgets old pairs with new ones; replay limits it",
    "Figs. Q, R: forgetting grows with 32-1024 new pairs; replay 2 to 1/512",
    "toy_memory.py",
    rules_finetune.toy_memory,
    figures.toy_memory,
  ),
  Claim(
    "finetune",
    "fine-tuning on new people erases old knowledge fast; replay and rare seen people do not",
    "Figs. 5, N, P: collapse in the first few hundred steps; forgetting grows with 1k-16k new "
    "people; replay 2 to 1/32 limits it",
    "finetune.py",
    rules_finetune.finetune,
    figures.finetune,
    # Two sizes over 8x and one replay weight (2, at 100 new people): what forgetting and
    # replay measure; the third size, the weights 1/2 and 1/8 and the rare seen people (a
    # second pretraining) are the full grid's, so the quick row is not shown at best.
    quick=("pretrain", "new100", "new800", "new100_replay2"),
  ),
  Claim(
    "templates",
    "with one template per attribute the model memorises sentences; more templates close the gap",
    "Fig. A: one template: training-template loss near 0, evaluation templates above the "
    "baseline; 2-16 templates close the gap; shuffled sentence order is needed",
    "templates.py",
    rules_templates.templates,
    figures.templates,
    lr_factors=LR_FACTORS,
    # One template against the most, shuffled; sentence order is the full grid's, so the
    # quick row is not shown at best.
    quick=("templates1_shuffled", "templates16_shuffled"),
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


def _matching(points: Iterator, only: tuple[str, ...]) -> Iterator:
  return (p for p in points if not only or any(fnmatch.fnmatch(p[0], g) for g in only))


def _regime(cfg) -> tuple:
  """(population, training steps) of a pretraining config; (None, None) for other kinds."""
  data, train = getattr(cfg, "data", None), getattr(cfg, "train", None)
  return getattr(data, "n_individuals", None), getattr(train, "n_steps", None)


def at_regime_of(points: Iterator, glob: str) -> Iterator:
  """The points at the (population, budget) of some point whose name matches `glob`."""
  listed = list(points)
  regimes = {_regime(cfg) for name, cfg in listed if fnmatch.fnmatch(name, glob)}
  return iter([(name, cfg) for name, cfg in listed if _regime(cfg) in regimes])


def _rename_sources(cfg, suffix: str) -> None:
  """A copy reads the same copy (lr, seed) of the points it reads."""
  for field in SOURCE_FIELDS:
    if isinstance(getattr(cfg, field, None), str):
      setattr(cfg, field, getattr(cfg, field) + suffix)


def learning_rate(cfg) -> float | None:
  """A point's optimizer.lr, None where its config has none (the toy memory's)."""
  lr = getattr(getattr(cfg, "optimizer", None), "lr", None)
  return lr if isinstance(lr, (int, float)) else None


def with_lrs(points: Iterator, factors: tuple[float, ...]) -> Iterator:
  """Each point at optimizer.lr x factor, for each factor in order: factor 1 is the point as
  it is, any other a copy named NAME_lrxFACTOR. No factors: the points as they are."""
  for name, cfg in points:
    for factor in factors or (1,):
      if factor == 1:
        yield name, cfg
        continue
      lr = learning_rate(cfg)
      if lr is None:
        raise ValueError(f"point {name}: lr_factors need a config with optimizer.lr; it has none.")
      twin = copy.deepcopy(cfg)
      twin.optimizer.lr = lr * factor
      suffix = f"_lrx{factor:g}"
      _rename_sources(twin, suffix)
      yield name + suffix, twin


def seeded(
  points: Iterator, seeds: int, seeded_sweep: bool, only: tuple[str, ...] = ()
) -> Iterator:
  """The sweep's (name, cfg) points matching `only` over seeds 0..seeds-1 (see the module
  docstring)."""
  for name, cfg in _matching(points, only):
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
        _rename_sources(twin, f"_seed{seed}")
        yield f"{name}_seed{seed}", twin


def claim_points(claim: Claim, points: Iterator, seeds: int) -> Iterator:
  """The claim's points among the sweep's: its globs, its regime, its lrs, then its seeds."""
  selected = _matching(points, claim.only)
  if claim.regime_of:
    selected = at_regime_of(selected, claim.regime_of)
  return seeded(with_lrs(selected, claim.lr_factors), seeds, claim.seeded_sweep)


def quick(claim: Claim) -> Claim:
  """The claim as --quick runs it (at one seed): its quick points, at the base lr."""
  return dataclasses.replace(claim, only=claim.quick or claim.only, lr_factors=())


# --dry_run's estimate at the small scale, one run at a time on 2 cores, fitted to the slower
# of the 2-core machines measured (matmul peak 168-179 GFLOP/s: the old quick grid's 37 runs,
# 31,000 steps, took 3,048 s with --executor=ray; docs/benchmarks.md): RUN_SECONDS to start,
# then STEP_SECONDS a step of the 64-wide model with its evaluations, in proportion to the
# width; TOY_SECONDS a toy-memory point. A run stopped at its plateau's end counts N + 100
# steps for N people. Two runs at a time (--executor=ray) do RAY_SPEEDUP x the work of one: on
# 2 cores the two share the same compute (docs/benchmarks.md).
RUN_SECONDS, STEP_SECONDS, TOY_SECONDS, RAY_SPEEDUP = 9.0, 0.094, 2.0, 1.05


def cost(experiment) -> tuple[int, float]:
  """(steps, seconds) of a built point, by the estimate above."""
  train, data, model = (getattr(experiment, k, None) for k in ("train", "data", "model"))
  steps = experiment.n_steps
  if getattr(train, "stop_after_plateau", False) and data is not None:
    steps = min(steps, data.n_individuals + 100)
  if model is None:
    return steps, TOY_SECONDS
  return steps, RUN_SECONDS + STEP_SECONDS * model.resolved().d_model / 64 * steps
