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
  on 16k sequences each. small: 300 individuals with short lists (24 first and last names,
  16 values per attribute type, births in the 1990s), only the ~560 tokens of the 4k vocabulary
  that these lists use, a 2-layer 64-wide model, batch 32; it shows the three phases on a
  2-core CPU in minutes.
  """
  if scale == "paper":
    return fdl.Config(
        PretrainConfig,
        data=fdl.Config(DataConfig, n_individuals=64_000, n_heldout=4_096, tokenizer="bio_32k"),
        model=fdl.Config(ModelConfig, preset="paper"),
        optimizer=fdl.Config(OptimizerConfig, lr=4e-4),
        train=fdl.Config(TrainConfig, n_steps=16_000, batch_size=128, compute_dtype="bfloat16"),
        eval=fdl.Config(EvalConfig),
        schedule=fdl.Partial(schedules.Uniform))
  if scale == "small":
    return fdl.Config(
        PretrainConfig,
        # Short lists keep the population large relative to them, as in the paper (64k people,
        # 900 first names): every name and value token then occurs in training.
        data=fdl.Config(DataConfig, n_individuals=300, n_heldout=256, tokenizer="bio_4k",
                        n_first_names=24, n_last_names=24, max_values=16,
                        birth_years=(1990, 1999), compact_vocab=True),
        model=fdl.Config(ModelConfig, preset="mini"),
        optimizer=fdl.Config(OptimizerConfig, lr=8e-3),
        # Packing puts ~2.8 biographies in rows of 258 tokens, and attention over 258
        # positions costs this model more than the 34% padding of plain rows saves: 5.1
        # against 7.4 steps/s on 2 CPU cores.
        train=fdl.Config(TrainConfig, n_steps=1_400, batch_size=32, pack=False),
        # Dense evaluations over the first phase and the plateau, sparse ones after.
        eval=fdl.Config(EvalConfig, every=25, dense_until=300, n_spaced=7, n_sequences=128,
                        batch_size=128, n_attention=128),
        schedule=fdl.Partial(schedules.Uniform))
  raise ValueError(f"scale: got {scale!r}; allowed: {', '.join(SCALES)}.")
