"""python -m bioknow.launch --sweep=sweeps/ablations.py [--scale=small|paper] [--only='mixer_*']
python -m bioknow.report --workdir=runs/ablations

Robustness of the plateau: learning rate, weight decay, batch size at constant data seen,
model size, and attention against Hawk's recurrence.

Runtime: small, 20 runs, ~1 hour on 2 CPU cores; paper, 20 runs of up to 64k steps, a few
hours on one H100.
Reproduces Figures B and C of the paper: the three phases and the plateau survive every
change; a recurrent mixer (Hawk) also plateaus, so the plateau is about credit assignment
through token mixing, not attention as such.
"""

from bioknow import configs

PAPER_LR = (1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3)
SMALL_LR = (1e-3, 2e-3, 3e-3, 6e-3)
WEIGHT_DECAY = (0.01, 0.03, 0.1, 0.3, 1.0)
PAPER_BATCH = (32, 64, 128, 256, 512)
SMALL_BATCH = (8, 16, 32, 64)
PAPER_MODELS = ("paper", "paper_896", "paper_1536")
SMALL_MODELS = ("mini", "small")


def base(scale: str):
  return configs.pretrain(scale)


def sweep(scale: str):
  paper = scale == "paper"
  for lr in PAPER_LR if paper else SMALL_LR:
    cfg = base(scale)
    cfg.optimizer.lr = lr
    yield f"lr_{lr:g}", cfg
  for wd in WEIGHT_DECAY:
    cfg = base(scale)
    cfg.optimizer.weight_decay = wd
    yield f"weight_decay_{wd:g}", cfg
  for batch in PAPER_BATCH if paper else SMALL_BATCH:
    cfg = base(scale)
    data_seen = cfg.train.n_steps * cfg.train.batch_size  # sequences, held constant
    cfg.train.batch_size = batch
    cfg.train.n_steps = data_seen // batch
    yield f"batch_{batch}", cfg
  for preset in PAPER_MODELS if paper else SMALL_MODELS:
    cfg = base(scale)
    cfg.model.preset = preset
    yield f"model_{preset}", cfg
  for mixer in ("attention", "hawk"):
    cfg = base(scale)
    cfg.model.mixer = mixer
    yield f"mixer_{mixer}", cfg
