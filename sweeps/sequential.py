"""python -m bioknow.launch --sweep=sweeps/sequential.py [--scale=small|paper] [--only='groups*']
python -m bioknow.report --workdir=runs/sequential

Sequential and alternating groups: the training distribution switches between groups of
individuals (uniform inside the current group), and every evaluation reports each group.

Grid: small, 4 runs of 1.4k steps on 300 people; paper, 6 runs of 16k steps on 64k people
(--executor=ray spreads them). Runtime: see the table in README.md.
Reproduces Figures S-W of the paper (Appendix F.5, with claim 6): with n_groups groups
visited once (n_repeats 1), each new group is learned faster than the previous one while the
previous ones are forgotten, faster than they were learned; alternating between two groups
(n_groups 2, n_repeats > 1) shows forgetting and relearning as the learning rate decays.
Metrics: group0/attribute_loss, group0/attribute_accuracy, ... (group g is the g-th block of
ids, as in schedules.Sequential). These are pretraining runs ("experiment": "pretrain").
"""

import fiddle as fdl

from bioknow import configs
from bioknow.data import schedules

PAPER = dict(visits=((4, 1), (8, 1), (16, 1), (2, 2), (2, 4), (2, 8)))
SMALL = dict(visits=((4, 1), (8, 1), (2, 2), (2, 4)))


def base(scale: str):
  return configs.pretrain(scale)


def sweep(scale: str):
  grid = PAPER if scale == "paper" else SMALL
  for n_groups, n_repeats in grid["visits"]:
    cfg = base(scale)
    n, n_steps = cfg.data.n_individuals, cfg.train.n_steps
    cfg.schedule = fdl.Partial(schedules.Sequential, n_groups=n_groups, n_repeats=n_repeats)
    visits = schedules.Sequential(
      n_individuals=n, n_groups=n_groups, n_repeats=n_repeats, n_steps=n_steps
    )
    cfg.eval_groups = tuple((f"group{g}", *visits.group_bounds(g)) for g in range(n_groups))
    # Evaluations evenly spaced (a few per visit), on fewer sequences per set: one set per group.
    if scale == "paper":
      cfg.eval.every, cfg.eval.dense_until, cfg.eval.n_sequences = 250, n_steps, 4_096
      cfg.eval.n_attention = 512
    else:
      cfg.eval.every, cfg.eval.dense_until = 50, n_steps
      cfg.eval.n_attention = 0
    yield f"groups{n_groups}_repeats{n_repeats}", cfg
