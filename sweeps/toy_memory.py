"""python -m bioknow.launch --sweep=sweeps/toy_memory.py [--scale=small|paper] [--only='*replay*']

The toy associative memory: fine-tuning a one-hidden-layer ReLU MLP on new key-value pairs.

Each point pre-trains the memory on its pairs, then fine-tunes it on new pairs, without replay
for a range of new-pair counts, or on a fixed count with old pairs replayed at a range of
per-pair weights. Pre-training is the same in every point (same seed, independent of the
fine-tuning settings). Runs keep no checkpoints: a relaunch skips finished points and restarts
an interrupted one from scratch.
Grid (CPU only; no accelerator is needed): paper, 12 points of 16k + 4k steps on 8,192 pairs;
small, 7 points on 2,048 pairs with a 128-unit memory and 4k + 1k steps. Compilation is a
large share of a point's time: points whose shapes match an earlier point's (same n_new)
reuse its compiled phases. Runtime: see the table in README.md.
Reproduces Figures Q and R of the paper (Appendix F.4, claim 7; the toy counterpart of
Figure 5; the labels are inferred, the stored paper text lacks them): old-pair accuracy starts
falling within a few hundred fine-tuning steps and, without replay, keeps falling, to lower
levels with more new pairs; replaying old pairs shrinks the drop and restores them.
"""

import fractions

from bioknow import configs

PAPER = dict(
  n_new=(32, 64, 128, 256, 512, 1024),
  replay_n_new=128,
  weights=("2", "1/2", "1/8", "1/32", "1/128", "1/512"),
)
# A quarter of the pairs, half the width, a quarter of the steps: the same ratios of new to
# old pairs (1/128 to 1/8, replay at 1/64) and the same number of epochs over the old pairs.
SMALL = dict(n_new=(16, 32, 64, 256), replay_n_new=32, weights=("1/2", "1/32", "1/512"))


def base(scale: str):
  """The paper's toy memory (Appendix F.4) at 'paper'; a smaller one at 'small'."""
  return configs.toy_memory(scale)


def sweep(scale: str):
  grid = PAPER if scale == "paper" else SMALL
  for n_new in grid["n_new"]:
    cfg = base(scale)
    cfg.n_new = n_new
    yield f"new{n_new}_noreplay", cfg
  for weight in grid["weights"]:
    cfg = base(scale)
    cfg.n_new = grid["replay_n_new"]
    cfg.weight_replay = float(fractions.Fraction(weight))
    yield f"new{cfg.n_new}_replay{weight.replace('/', '_')}", cfg
