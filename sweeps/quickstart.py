"""python -m bioknow.launch --sweep=sweeps/quickstart.py        (what `make demo` runs)

One small pretraining run that shows the three phases of knowledge acquisition: 800 people,
every attribute with 16 possible values, 1,250 steps of batch 64. Runtime: the README's table.
--scale=paper runs the paper's default run instead: 64k individuals, 16k steps, ~42M
parameters.
Reproduces Figure 2 (left) of the paper: the attribute loss on evaluation templates of seen
individuals drops to the no-knowledge baseline, stays there (the plateau), then falls as
knowledge about individuals emerges, while the loss on held-out individuals rises above the
baseline (hallucinations).
"""

from bioknow import configs


def base(scale: str):
  return configs.pretrain(scale)


def sweep(scale: str):
  yield "quickstart", base(scale)
