"""python -m bioknow.launch --sweep=sweeps/population.py [--scale=small|paper]
python -m bioknow.report --workdir=runs/population

Plateau length against the number of individuals (claim 1).

Grid: small, 6 populations (100 to 3,200 people, 32x) x 3 seeds at the quickstart's lr, each
run stopped once its plateau has ended (train.stop_after_plateau); paper, 7 populations (4k to
256k) x 5 seeds x 5 learning rates = 175 runs of 16k steps (spread them with
--executor=ray). At 100 people the first phase and the plateau end together (no plateau to
measure), so the power law rests on 200 to 3,200 people: 5 populations over 16x. 3,200
people stay on the plateau for about 3,000 steps. Runtimes: the README's table.
Reproduces Figure 2 (right) of the paper: the plateau grows almost linearly (a power law
with exponent below 1) with the population. The report keeps per population the learning
rate with the best final training loss (mean over seeds), fits plateau_end = c N^k over every
seed's plateau end and prints k with its 95% confidence interval.
"""

from bioknow import configs

PAPER_N = (4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000)
PAPER_LR = (1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3)
SMALL_N = (100, 200, 400, 800, 1_600, 3_200)
SMALL_SEEDS = 3


def base(scale: str):
  return configs.pretrain(scale)


def sweep(scale: str):
  small_lr = base("small").optimizer.lr  # the quickstart's swept lr
  populations, lrs, seeds = (
    (PAPER_N, PAPER_LR, range(5))
    if scale == "paper"
    else (SMALL_N, (small_lr,), range(SMALL_SEEDS))
  )
  for n in populations:
    for seed in seeds:
      for lr in lrs:
        cfg = base(scale)
        cfg.data.n_individuals = n
        cfg.data.seed = cfg.train.seed = seed
        cfg.optimizer.lr = lr
        if scale == "small":
          # Only the plateau's end matters here: one schedule long enough for the largest
          # population, each run stopped once its plateau has ended; evaluations of the seen set
          # only.
          cfg.train.n_steps, cfg.train.stop_after_plateau = 6_000, True
          # Every 10 steps up to 400 people, whose first phase and plateau end within 50
          # steps of each other, every 25 above: ends read to +-5 and +-12.5 steps.
          every = 10 if n <= 400 else 25
          cfg.eval.every, cfg.eval.dense_until, cfg.eval.n_spaced = every, 6_000, 1
          cfg.eval.n_sequences = cfg.eval.batch_size = 128  # standard error ~0.7% of baseline
          cfg.eval.n_attention = 0
          cfg.data.n_heldout = 0
        yield f"n{n}_seed{seed}_lr{lr:g}", cfg
