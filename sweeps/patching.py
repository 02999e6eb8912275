"""python -m bioknow.launch --sweep=sweeps/patching.py [--scale=small|paper] [--only='*start0_*']
python -m bioknow.report --workdir=runs/patching

Attention patching: a reference run, then runs restarted from its initial parameters whose
attention layers use the patterns of one of its checkpoints (from step start_patching on,
gradients stopped, optimizer state reset; bioknow/experiments/patching.py).

Points: `reference` (an ordinary pretraining run; its plateau_end_step is the unpatched one),
then `patch_start{S}_ref{R}`: patterns of the reference's checkpoint at step R from step S
on. S = 0 patches throughout training (Figure 3, middle); S = R freezes attention at step R.
The launcher runs the reference first. The attention statistics of every run (name->name,
value->name, value->text, sharpness per layer, in metrics.jsonl) show how attention changes
over training (Figure 3, right; for patched runs, those of the patterns in use).

Grid: small, the reference, S = 0 with R in {0, 100, 200, 400, 800, 1250} and S = R in
{200, 400}: 9 runs of 1.25k steps; paper, the reference and the full grid S, R in {0, 0.5k,
1k, 2k, 4k, 8k, 16k} (S < 16k): 43 runs of 16k steps (spread them with --executor=ray once
the reference is done). Runtime: see the table in README.md.
Reproduces Figure 3 (middle and right) and Figure D of the paper (claim 2): patterns from a
post-plateau checkpoint remove most of the plateau, patterns from early checkpoints are worse
than the initial ones, and attention from the first value token to the name tokens in the
last layer rises during the plateau.
"""

import fiddle as fdl

from bioknow import configs

REFERENCE = "reference"
# Reference steps; frozen: the S = R points (the paper's grid has every S, R pair). At small
# scale the first phase ends near step 200 and the plateau a few hundred steps later;
# evaluations every 50 steps up to 800 resolve both.
PAPER = dict(steps=(0, 500, 1_000, 2_000, 4_000, 8_000, 16_000), frozen=None, eval_steps=None)
SMALL = dict(
  steps=(0, 100, 200, 400, 800, 1_250),
  frozen=(200, 400),
  eval_steps=tuple(range(0, 800, 50)) + tuple(range(800, 1_251, 150)),
)


def base(scale: str):
  cfg = configs.pretrain(scale)
  if scale != "paper":
    cfg.eval.steps = SMALL["eval_steps"]
  return cfg


def _patched(scale: str, start: int, reference_step: int):
  cfg = configs.patching(scale, reference_step, start, REFERENCE)
  if scale != "paper":  # the reference's evaluations
    cfg.eval.steps = SMALL["eval_steps"]
  return cfg


def sweep(scale: str):
  grid = PAPER if scale == "paper" else SMALL
  reference = base(scale)
  built = fdl.build(reference)
  checkpointed = set(built.eval.schedule(built.train.n_steps))
  missing = [s for s in grid["steps"] if s not in checkpointed]
  if missing:  # checkpoints are written at every evaluation
    raise ValueError(
      f"sweep: the reference run evaluates (and checkpoints) at no step "
      f"{missing}; add them to its eval schedule."
    )
  yield REFERENCE, reference
  n_steps = built.train.n_steps
  starts = [s for s in grid["steps"] if s < n_steps]
  for start in starts:
    for ref in grid["steps"]:
      if grid["frozen"] is None or start == 0 or start == ref and start in grid["frozen"]:
        yield f"patch_start{start}_ref{ref}", _patched(scale, start, ref)
