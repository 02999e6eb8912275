"""python -m bioknow.launch --sweep=sweeps/curricula.py [--scale=small|paper] [--only='warmup_*']
python -m bioknow.report --workdir=runs/curricula

Curricula over individuals: power laws, celebrities, warm-ups, and gradual growth.

Grid: small, 6 alphas x (600, 1,200 people) x (750, 1,500 steps) + 12 runs of 1.5k steps on
1,200 people (filter with --only); paper, 6 alphas x 5 populations x 3 budgets + 12
celebrity + 25 warm-up + 4 growth runs (spread them with --executor=ray). Runtime: see the
table in README.md.
Reproduces Figures 4 and I-L of the paper (claims 3 and 4): imbalanced sampling shortens the
plateau (alpha around 0.6-0.8 minimises it), the alpha that minimises the final loss grows
with the population and shrinks with the budget, celebrities behave like power laws, and a
warm-up on a subset beats every static distribution when the population is large for the
budget. Gradual growth of the population is proposed, not tested, in the paper.
"""

import fiddle as fdl

from bioknow import configs
from bioknow.data import schedules

PAPER = dict(
  alphas=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
  populations=(16_000, 32_000, 64_000, 128_000, 256_000),
  budgets=(8_000, 16_000, 32_000),
  celebrities=(4_000, 16_000, 64_000),
  weights=(2, 4, 8, 16),
  celebrity_n=128_000,
  warmup_indiv=(2_000, 4_000, 8_000, 16_000, 32_000),
  warmup_epochs=(1, 2, 3, 4, 8),
  warmup_n=128_000,
  growth_start=(4_000, 16_000),
)
# Small: 6 alphas at 2 populations x 2 budgets, so that both where the plateau is shortest
# and which way the best-loss alpha moves can show; the warm-up, celebrity and growth runs
# are at 1,200 people and 1,500 steps. The paper's warm-ups cover 1/64-1/4 of the population
# for 6-50% of the budget (1-8 epochs of 16k steps); the small ones 1/16-1/4 for 6-50%
# (5 epochs of 1,200 people at batch 64 are 93 steps, 40 are 750).
SMALL = dict(
  alphas=(0.0, 0.25, 0.5, 0.75, 1.0, 1.2),
  populations=(600, 1_200),
  budgets=(750, 1_500),
  steps=1_500,  # the budget of the celebrity, warm-up and growth runs
  celebrities=(120,),
  weights=(8,),
  celebrity_n=1_200,
  warmup_indiv=(75, 150, 300),
  warmup_epochs=(5, 16, 40),
  warmup_n=1_200,
  growth_start=(150,),
)


def base(scale: str):
  return configs.pretrain(scale)


def _point(scale, n, n_steps=None):
  cfg = base(scale)
  cfg.data.n_individuals = n
  if n_steps:
    cfg.train.n_steps = n_steps
  elif scale == "small":
    cfg.train.n_steps = SMALL["steps"]
  return cfg


def sweep(scale: str):
  grid = PAPER if scale == "paper" else SMALL
  for n in grid["populations"]:
    for steps in grid["budgets"]:
      for alpha in grid["alphas"]:
        cfg = _point(scale, n, steps)
        cfg.schedule = fdl.Partial(schedules.PowerLaw, alpha=alpha)
        if scale == "small":
          # The alpha claim compares plateau ends, which fall anywhere from step 250 to the
          # end of the budget: evaluate every 25 steps throughout, so that each end is read
          # to +-12.5 steps (bioknow.analysis.ends).
          cfg.eval.every, cfg.eval.dense_until = 25, steps
        yield f"powerlaw_n{n}_steps{steps}_alpha{alpha:g}", cfg
  n = grid["celebrity_n"]
  for n_celebrities in grid["celebrities"]:
    for weight in grid["weights"]:
      cfg = _point(scale, n)
      cfg.schedule = fdl.Partial(
        schedules.Celebrities, n_celebrities=n_celebrities, weight_celebrities=weight
      )
      cfg.eval_groups = (("celebrities", 0, n_celebrities), ("non_celebrities", n_celebrities, n))
      yield f"celebrities_n{n_celebrities}_w{weight}", cfg
  n = grid["warmup_n"]
  if n not in grid["populations"] or _point(scale, n).train.n_steps not in grid["budgets"]:
    yield f"uniform_n{n}", _point(scale, n)  # else the alpha = 0 power law is this run
  for indiv in grid["warmup_indiv"]:
    for epochs in grid["warmup_epochs"]:
      cfg = _point(scale, n)
      cfg.schedule = fdl.Partial(schedules.Warmup, indiv_warmup=indiv, epochs_warmup=epochs)
      cfg.eval_groups = (("warmup", 0, indiv),)
      yield f"warmup_n{n}_indiv{indiv}_epochs{epochs}", cfg
  for start in grid["growth_start"]:
    for mode in ("linear", "geometric"):
      cfg = _point(scale, n)
      cfg.schedule = fdl.Partial(
        schedules.Growth, n_start=start, mode=mode, growth_steps=cfg.train.n_steps // 2
      )
      yield f"growth_n{n}_start{start}_{mode}", cfg
