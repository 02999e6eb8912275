"""python -m bioknow.launch --sweep=sweeps/population.py [--scale=small|paper]
python -m bioknow.report --workdir=runs/population

Plateau length against the number of individuals (claim 1).

Runtime: small, 4 populations (100 to 800 people) of 1k steps, 12 minutes on 2 CPU cores
(measured: plateau ends 100, 150, 250 and 475 steps, fitted exponent 0.75, R^2 0.99); paper,
7 populations (4k to 256k) x 5 seeds x 5 learning rates = 175 runs of 16k steps, a few
minutes each on one H100 (hours in all: spread it with --executor=ray).
Reproduces Figure 2 (right) of the paper: the plateau grows almost linearly (a power law
with exponent below 1) with the population; the report fits it, keeping per population the learning
rate with the best final training loss (mean over seeds).
"""

from bioknow import configs

PAPER_N = (4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000)
PAPER_LR = (1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3)
SMALL_N = (100, 200, 400, 800)
SMALL_LR = (8e-3,)


def base(scale: str):
  return configs.pretrain(scale)


def sweep(scale: str):
  populations, lrs, seeds = (PAPER_N, PAPER_LR, range(5)) if scale == "paper" else (
      SMALL_N, SMALL_LR, range(1))
  for n in populations:
    for seed in seeds:
      for lr in lrs:
        cfg = base(scale)
        cfg.data.n_individuals = n
        cfg.data.seed = cfg.train.seed = seed
        cfg.optimizer.lr = lr
        if scale == "small":  # only the plateau matters here: short runs, dense evaluations
          cfg.train.n_steps = 1_000
          cfg.eval.every, cfg.eval.dense_until, cfg.eval.n_spaced = 25, 1_000, 1
          cfg.eval.n_sequences = cfg.eval.batch_size = 128
          cfg.eval.n_attention = 0
        yield f"n{n}_seed{seed}_lr{lr:g}", cfg
