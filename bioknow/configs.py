"""Fiddle base configs of every experiment kind: the paper's settings and their CPU-sized
counterparts (scale "paper" or "small").

  cfg = configs.pretrain("small")          # a fdl.Config[PretrainConfig]
  cfg.data.n_individuals = 500             # change anything, then
  bioknow.run(cfg, "runs/mine")            # or launch it through a sweep file

pretrain(scale), patching(scale, ...), finetune(scale, source, ...), toy_memory(scale). Only
this module, bioknow.running, the launcher and sweep files import fiddle; experiments see
plain dataclasses.
"""

import copy

import fiddle as fdl

from bioknow.data import schedules
from bioknow.data.dataset import DataConfig
from bioknow.experiments.finetune import FinetuneConfig
from bioknow.experiments.patching import PatchingConfig
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.experiments.toy_memory import ToyMemoryConfig
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
      # rows of 250: attention per biography, and a faster step (docs/benchmarks.md).
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
      # lr: the best final training loss of {4e-3, 8e-3, 1.6e-2} (docs/notes.md).
      optimizer=fdl.Config(OptimizerConfig, lr=8e-3),
      # Batch 64: on 2 CPU cores sequences/s do not depend on the batch (32, 64, 128 within
      # 10%), and a batch of 32 at this lr makes the model's value prior swing from one
      # evaluation to the next (KL from uniform 0.07-0.21 nats), which holds the plateau
      # 4-6% above its floor. Plain rows: packing ~2.8 biographies in rows of 258 costs this
      # model more attention than the 34% padding of rows of 129 (docs/benchmarks.md).
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


def patching(
  scale: str, reference_step: int = 0, start_patching: int = 0, reference_run: str = "reference"
) -> fdl.Config[PatchingConfig]:
  """pretrain(scale) with attention patterns from the checkpoint at reference_step of the
  run reference_run (a run of pretrain(scale), with the same model and seed), used from step
  start_patching on. A relative reference_run is relative to the parent of the patched run's
  directory, so sibling runs name each other."""
  cfg = pretrain(scale)
  fdl.update_callable(cfg, PatchingConfig)
  cfg.reference_run = reference_run
  cfg.reference_step = reference_step
  cfg.start_patching = start_patching
  return cfg


# The small pretraining run ends at lr ~0 from a peak of 8e-3; fine-tuning uses 1/13 of the
# peak, as the paper's 3e-5 is 1/13 of its 4e-4.
_FINETUNE = dict(paper=dict(lr=3e-5, steps=4_000), small=dict(lr=6e-4, steps=400))


def finetune(
  scale: str, source: str = "pretrain", source_config: fdl.Config | None = None, **fields
) -> fdl.Config[FinetuneConfig]:
  """Fine-tuning of the finished pretraining run `source`, built from its pretraining config
  `source_config` (default pretrain(scale)): the same data, model, batch size and seed, a
  constant lr, dense early evaluations. A relative `source` is relative to the parent of the
  fine-tuning run's directory, so sibling runs name each other.

  paper: lr 3e-5 for 4k steps, evaluations every 25 steps up to 500, then 16 evenly spaced.
  small: lr 6e-4 for 400 steps, evaluations every 10 steps up to 100, then every 50.
  `fields` sets the other FinetuneConfig fields: n_finetune (new individuals) or finetune_ids
  (already-seen ones) is required; weight_replay, reset_optimizer, eval_groups."""
  if scale not in SCALES:
    raise ValueError(f"scale: got {scale!r}; allowed: {', '.join(SCALES)}.")
  if scale == "paper":
    evaluation = fdl.Config(EvalConfig, every=25, dense_until=500, n_spaced=16)
  else:
    evaluation = fdl.Config(
      EvalConfig,
      every=10,
      dense_until=100,
      n_spaced=8,
      n_sequences=256,
      batch_size=256,
      n_attention=0,
    )
  source_config = pretrain(scale) if source_config is None else source_config
  train = copy.deepcopy(source_config.train)
  train.n_steps = _FINETUNE[scale]["steps"]
  return fdl.Config(
    FinetuneConfig,
    source=source,
    data=copy.deepcopy(source_config.data),
    model=copy.deepcopy(source_config.model),
    optimizer=fdl.Config(OptimizerConfig, lr=_FINETUNE[scale]["lr"], schedule="constant"),
    train=train,
    eval=evaluation,
    **fields,
  )


def toy_memory(scale: str) -> fdl.Config[ToyMemoryConfig]:
  """The toy associative memory (Appendix F.4): pre-training on key-value pairs, then
  fine-tuning on new ones. paper: 8,192 pairs, 64-dim embeddings, 256 hidden units, 16k + 4k
  steps. small: a quarter of the pairs, half the width, a quarter of the steps (the same ratios
  of new to old pairs and the same number of epochs over the old pairs)."""
  if scale not in SCALES:
    raise ValueError(f"scale: got {scale!r}; allowed: {', '.join(SCALES)}.")
  cfg = fdl.Config(
    ToyMemoryConfig,
    d_embed=64,
    d_hidden=256,
    n_values=30,
    n_pairs=8_192,
    batch_size=128,
    seed=0,
    pretrain_steps=16_000,
    pretrain_eval_every=250,
    pretrain_optimizer=fdl.Config(OptimizerConfig, lr=0.03, schedule="cosine", weight_decay=0.01),
    n_new=128,
    weight_replay=0.0,
    finetune_steps=4_000,
    finetune_eval_every=20,
    finetune_optimizer=fdl.Config(OptimizerConfig, lr=1e-3, schedule="constant", weight_decay=0.01),
  )
  if scale == "small":
    cfg.d_embed, cfg.d_hidden, cfg.n_pairs = 32, 128, 2_048
    cfg.pretrain_steps, cfg.finetune_steps, cfg.finetune_eval_every = 4_000, 1_000, 10
  return cfg
