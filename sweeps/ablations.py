"""python -m bioknow.launch --sweep=sweeps/ablations.py [--scale=small|paper] [--only='mixer_*']
python -m bioknow.report --workdir=runs/ablations

Robustness of the plateau: one base run, then one change at a time to the learning rate, the
weight decay, the batch size (at constant data seen), the model size, or attention against
Hawk's recurrence. A change that leaves the base config as it is would repeat the base run, so
it is not run again; the report overlays the base run on every family of changes.

Grid: small, 9 runs; paper, 16 runs of up to 64k steps. Runtime: see the table in README.md.
Reproduces Figures B and C of the paper: the three phases and the plateau survive every
change; a recurrent mixer (Hawk) also plateaus, so the plateau is about credit assignment
through token mixing, not attention as such.
"""

from bioknow import configs

PAPER = dict(
  lr=(1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3),
  weight_decay=(0.01, 0.03, 0.1, 0.3, 1.0),
  batch=(32, 64, 128, 256, 512),
  model=("paper", "paper_896", "paper_1536"),
)
SMALL = dict(
  lr=(2e-3, 4e-3, 8e-3), weight_decay=(0.01, 0.1, 1.0), batch=(16, 32, 64), model=("mini", "small")
)


def base(scale: str):
  return configs.pretrain(scale)


def changes(scale: str):
  """Every (name, config) that changes one thing of the base config (some change nothing)."""
  grid = PAPER if scale == "paper" else SMALL
  for lr in grid["lr"]:
    cfg = base(scale)
    cfg.optimizer.lr = lr
    yield f"lr_{lr:g}", cfg
  for wd in grid["weight_decay"]:
    cfg = base(scale)
    cfg.optimizer.weight_decay = wd
    yield f"weight_decay_{wd:g}", cfg
  for batch in grid["batch"]:
    cfg = base(scale)
    data_seen = cfg.train.n_steps * cfg.train.batch_size  # sequences, held constant
    cfg.train.batch_size = batch
    cfg.train.n_steps = data_seen // batch
    yield f"batch_{batch}", cfg
  for preset in grid["model"]:
    cfg = base(scale)
    cfg.model.preset = preset
    yield f"model_{preset}", cfg
  for mixer in ("attention", "hawk"):
    cfg = base(scale)
    cfg.model.mixer = mixer
    yield f"mixer_{mixer}", cfg


def sweep(scale: str):
  unchanged = base(scale)
  yield "base", unchanged
  yield from ((name, cfg) for name, cfg in changes(scale) if cfg != unchanged)
