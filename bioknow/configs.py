"""Fiddle base configs: the paper's settings and their CPU-sized counterparts.

  cfg = configs.pretrain("small")          # a fdl.Config[PretrainConfig]
  cfg.data.n_individuals = 500             # change anything, then
  fdl.build(cfg).run("runs/mine")          # or launch it through a sweep file

Only this module, the launcher and sweep files import fiddle; experiments see plain
dataclasses.
"""

import fiddle as fdl

from bioknow.data import schedules
from bioknow.data.dataset import DataConfig
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.models.transformer import ModelConfig
from bioknow.train.evaluation import EvalConfig
from bioknow.train.loop import TrainConfig
from bioknow.train.step import OptimizerConfig

SCALES = ("small", "paper")


def pretrain(scale: str) -> fdl.Config[PretrainConfig]:
  """Pretraining with a uniform schedule.

  paper: 64k individuals, 32k vocabulary, the 8-layer 512-wide model (~42M), batch 128, 16k
  steps, lr 4e-4, bf16 compute, evaluations every 125 steps up to 2k then 32 evenly spaced,
  on 16k sequences each. small: 800 individuals with short lists (24 first and last names,
  16 values per attribute type, birth dates included), only the tokens of the 4k vocabulary
  that these lists use, a 2-layer 64-wide model, batch 64; it shows the three phases on a
  2-core CPU in minutes.
  """
  if scale == "paper":
    return fdl.Config(
      PretrainConfig,
      data=fdl.Config(DataConfig, n_individuals=64_000, n_heldout=4_096, tokenizer="bio_32k"),
      model=fdl.Config(ModelConfig, preset="paper"),
      optimizer=fdl.Config(OptimizerConfig, lr=4e-4),
      # Plain rows trimmed to the longest sampled biography (96 of 125 tokens), not packed
      # rows of 250: attention per biography, 1.3x faster (batch 8, 2-core CPU, under load).
      train=fdl.Config(
        TrainConfig, n_steps=16_000, batch_size=128, compute_dtype="bfloat16", pack=False
      ),
      eval=fdl.Config(EvalConfig),
      schedule=fdl.Partial(schedules.Uniform),
    )
  if scale == "small":
    return fdl.Config(
      PretrainConfig,
      # Every list far shorter than the population, birth dates included (2 years x 4 months
      # x 2 days = 16 dates): each value, and each prefix of its tokens, occurs ~50 times
      # among 800 people, so ln(16) is the true no-knowledge floor of every attribute
      # (lists.frequency_floor is within 1% of it). 24 first and last names give 13,824
      # full names, enough for 4,000 people plus the held-out ones.
      data=fdl.Config(
        DataConfig,
        n_individuals=800,
        n_heldout=256,
        tokenizer="bio_4k",
        n_first_names=24,
        n_last_names=24,
        max_values=16,
        birth_years=(1990, 1991),
        birth_months=4,
        birth_days=2,
        compact_vocab=True,
      ),
      model=fdl.Config(ModelConfig, preset="mini"),
      # lr: the best final training loss of {4e-3, 8e-3, 1.6e-2} (README, runtimes table).
      optimizer=fdl.Config(OptimizerConfig, lr=8e-3),
      # Batch 64: on 2 CPU cores sequences/s do not depend on the batch (32, 64, 128 within
      # 10%), and a batch of 32 at this lr makes the model's value prior swing from one
      # evaluation to the next (KL from uniform 0.07-0.21 nats), which holds the plateau
      # 4-6% above its floor. Plain rows: packing ~2.8 biographies in rows of 258 costs this
      # model more attention than the 34% padding of rows of 129 (5.1 against 7.4 steps/s).
      train=fdl.Config(TrainConfig, n_steps=1_250, batch_size=64, pack=False),
      # Evaluations every 50 steps up to 500, 7 spaced after; 256 sequences per set keep the
      # standard error of the attribute loss near 0.5% of the baseline.
      eval=fdl.Config(
        EvalConfig,
        every=50,
        dense_until=500,
        n_spaced=7,
        n_sequences=256,
        batch_size=256,
        n_attention=128,
      ),
      schedule=fdl.Partial(schedules.Uniform),
    )
  raise ValueError(f"scale: got {scale!r}; allowed: {', '.join(SCALES)}.")
