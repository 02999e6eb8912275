"""python -m bioknow.launch --sweep=sweeps/finetune.py [--scale=small|paper] [--only='new*']
python -m bioknow.report --workdir=runs/finetune

Fine-tuning on new individuals, with and without replay, and on already-seen rare ones.

Grid: small, 2 pretraining runs (400 and 600 people, 1.25k steps) and 10 fine-tuning runs of 400
steps; paper, 2 pretraining runs (64k people, and 128k with 8k celebrities, 16k steps) and
13 fine-tuning runs of 4k steps (spread them with --executor=ray). Runtime: see the table
in README.md.
Reproduces Figures 5 (middle, right), N and P of the paper (claim 6): fine-tuning on new
individuals (constant lr, 3e-5 at paper scale) erases much of the pre-training knowledge
within the first few hundred steps while the new individuals are learned slowly; more new
individuals make it worse; replaying pre-training individuals (weight_replay per
individual, relative to 1 per new individual) mitigates it; fine-tuning on the rare
non-celebrities of a celebrities run does not collapse.

The sweep yields its own source runs ("pretrain", "celebrities_pretrain"); the launcher runs
each before the points that read it, and skips it when it has already finished. The
optimizer state is reset at the start of fine-tuning (set reset_optimizer=False to carry the
source's AdamW moments and step count over, with a constant lr schedule).
"""

import fractions

import fiddle as fdl

from bioknow import configs
from bioknow.data import schedules

PAPER = dict(
  new=(1_000, 2_000, 4_000, 8_000, 16_000),
  replay_new=4_000,
  replay_weights=(2, 1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32),
  pretrain_n=64_000,
  celebrity_n=128_000,
  n_celebrities=8_000,
  weight_celebrities=8,
)
# Fine-tuning lr and steps: configs.finetune (small: 6e-4, 400 steps). The small pretraining
# run's 400 people end pretraining at ~0.9 accuracy (the base config's 800 at 0.2-0.4 in 1,250
# steps), so there is knowledge to lose.
# Replay weight w puts a share 400w / (400w + 100) of the samples on old people: w = 8 ... 1/8
# gives 0.97 ... 0.33, the paper's range (64k old, 4k new people, w = 2 ... 1/32). The
# celebrities run has 600 people so that its non-celebrities stay rare (~90 sequences each;
# ~11 in the paper).
# New people: 400 steps of 64 biographies show each of 50 ... 800 new people 512 ... 32 times,
# the paper's range (4k steps of 128 over 1k ... 16k). Matching the paper's fractions of the
# population instead (6 ... 100 of 400) shows each of 6 people 4,267 times, and the model
# collapses onto their answers: at seed 0, 6, 12 and 25 new people left 0.135, 0.161 and
# 0.234 of the 0.891 pre-training accuracy, more forgetting with fewer people.
SMALL = dict(
  pretrain_n=400,
  new=(50, 100, 200, 400, 800),
  replay_new=100,
  replay_weights=(8, 2, 1 / 2, 1 / 8),
  celebrity_n=600,
  n_celebrities=40,
  weight_celebrities=8,
)


def base(scale: str):
  return configs.pretrain(scale)


def _weight_name(w: float) -> str:
  return str(fractions.Fraction(w).limit_denominator(1_000)).replace("/", "_")


def sweep(scale: str):
  grid = PAPER if scale == "paper" else SMALL
  pretrain = base(scale)
  pretrain.data.n_individuals = grid["pretrain_n"]
  yield "pretrain", pretrain
  for n in grid["new"]:
    yield f"new{n}", configs.finetune(scale, "pretrain", pretrain, n_finetune=n)
  n = grid["replay_new"]
  for w in grid["replay_weights"]:
    yield (
      f"new{n}_replay{_weight_name(w)}",
      configs.finetune(scale, "pretrain", pretrain, n_finetune=n, weight_replay=w),
    )

  celebrities = base(scale)
  n, n_celebrities = grid["celebrity_n"], grid["n_celebrities"]
  celebrities.data.n_individuals = n
  celebrities.schedule = fdl.Partial(
    schedules.Celebrities,
    n_celebrities=n_celebrities,
    weight_celebrities=grid["weight_celebrities"],
  )
  groups = (("celebrities", 0, n_celebrities), ("non_celebrities", n_celebrities, n))
  celebrities.eval_groups = groups
  yield "celebrities_pretrain", celebrities
  yield (
    "celebrities_finetune",
    configs.finetune(
      scale,
      "celebrities_pretrain",
      celebrities,
      finetune_ids=(n_celebrities, n),
      eval_groups=groups,
    ),
  )
