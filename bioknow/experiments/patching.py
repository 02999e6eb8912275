"""Attention patching (claim 2 of the paper: recall circuits form during the plateau).

Section 2.2 and appendix D.1 of the paper: train a reference run and keep its checkpoints;
restart from the *same initial parameters* and, from step `start_patching` on, let every
attention layer use the pattern (softmax output) that the reference checkpoint at step
`reference_step` computes on the same input, with gradients stopped; reset the optimizer state
when patching starts. start_patching = reference_step freezes attention at that point;
start_patching = 0 patches throughout training (the paper's main figure).

The paper runs the twin models layer by layer; here the reference checkpoint computes all its
patterns [B, L, H, T, T] in one jitted forward pass before each step, on the step's own batch
(packed rows included: positions and segments go to the reference too). The paper notes this
is equivalent and simpler; memory allows it at every scale of this library. The patterns
enter the model through `LanguageModel.batch(patterns_BxLxHxTxT=...)`, which stops their
gradient, so the reference parameters never train and the patched model's own query and key
projections receive no gradient from the loss once patching starts.

Evaluation follows training: from start_patching on, the evaluation sets are also run with the
reference checkpoint's patterns, so metrics.jsonl measures the model that is being trained
(its own queries and keys are untrained past that point) and its attention statistics are
those of the patterns in use.

Same initial parameters: the patched run is initialised from its own model config, tokenizer
and train.seed; `check_sources` compares those with the reference run's stored config, and
`run` compares the initial parameters themselves with the reference's checkpoint 0 when it
has one.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bioknow.experiments import pretrain
from bioknow.experiments.common import plateau_stop
from bioknow.experiments.pretrain import PretrainConfig, initial_model
from bioknow.models.transformer import LanguageModel
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train import step as step_lib
from bioknow.train.checkpoint import Checkpointer
from bioknow.train.hooks import Hooks


@dataclasses.dataclass(frozen=True)
class PatchingConfig(PretrainConfig):
  """A pretraining run whose attention patterns come from a reference run's checkpoint.

  It is a PretrainConfig (the run to train, with the reference's model and seed) plus three
  fields, so a sweep's `--config=set:train.n_steps=...` applies alike to the reference run and
  to the patched runs. reference_run: the reference run directory; relative paths are
  relative to the sweep's workdir (the parent of this run's directory); its checkpoint at
  reference_step must exist.
  """

  reference_run: str = "reference"
  reference_step: int = 0
  start_patching: int = 0

  @classmethod
  def of(cls, pretrain_cfg: PretrainConfig, **patching) -> "PatchingConfig":
    """The patched version of a pretraining config."""
    fields = {f.name: getattr(pretrain_cfg, f.name) for f in dataclasses.fields(PretrainConfig)}
    return cls(**fields, **patching)

  def train_cost(self) -> tuple[float, str]:
    """The pretraining FLOPs plus the reference's forward pass (about a third of a training
    step) on every patched step."""
    flops, dtype = super().train_cost()
    patched = 1 - self.start_patching / self.train.n_steps
    return flops * (1 + patched / 3), dtype

  def check(self) -> None:
    """Everything that can be checked without the reference run."""
    super().check()
    if self.model.mixer != "attention":
      raise ValueError(
        f"model.mixer: got {self.model.mixer!r}; attention patching needs 'attention'."
      )
    if not isinstance(self.reference_run, str) or not self.reference_run:
      raise ValueError(
        f"reference_run: got {self.reference_run!r}; it must name the reference run directory."
      )
    if not isinstance(self.reference_step, int) or self.reference_step < 0:
      raise ValueError(
        f"reference_step: got {self.reference_step!r}; it must be an integer "
        ">= 0 (a step at which the reference run saved a checkpoint)."
      )
    n_steps = self.train.n_steps
    if not isinstance(self.start_patching, int) or not 0 <= self.start_patching < n_steps:
      raise ValueError(
        f"start_patching: got {self.start_patching!r}; allowed: 0 <= "
        f"start_patching < train.n_steps ({n_steps})."
      )

  def sources(self) -> tuple[str, ...]:
    return (self.reference_run,)

  def key_metrics(self) -> tuple[str, ...]:
    return ("plateau_end_step", "attribute_loss", "attribute_accuracy")

  def check_sources(self, run_dir: RunDir) -> None:
    """Raises ValueError (one sentence) unless the reference run has the checkpoint at
    reference_step, that checkpoint and the one of step 0 (if any) restore, and it was
    started from the same initial parameters. Reads files only: nothing is computed or
    written."""
    ref = RunDir(run_dir).source(self.reference_run)
    steps = ref.checkpoint_steps()
    if self.reference_step not in steps:
      have = f"it has steps {steps}" if steps else "it has no checkpoints (has it run?)"
      raise ValueError(
        f"reference_step: the reference run {ref.path} has no checkpoint at step "
        f"{self.reference_step}; {have}."
      )
    if not ref.has_config() and 0 not in steps:
      raise ValueError(
        f"reference_run: {ref.path} has neither config.json nor a checkpoint at step "
        "0, so its initial parameters cannot be checked against this run's."
      )
    if ref.has_config():
      self._check_same_initialisation(ref, ref.experiment())
    ckpt = Checkpointer(ref.checkpoints_dir, create=False)
    try:
      shapes = pretrain.model_shapes(self.model, self.data)
      for step in sorted({0, self.reference_step} & set(steps)):  # the ones `run` reads
        if error := ckpt.restore_error(step, model=shapes):
          raise ValueError(
            f"reference_run: the checkpoint of step {step} in {ref.path} does not restore "
            f"({error}); re-run the reference afresh (remove its directory, then re-run its "
            "sweep) to rebuild it."
          )
    finally:
      ckpt.close()

  def _check_same_initialisation(self, ref: RunDir, theirs: PretrainConfig) -> None:
    """Same model shape, tokenizer (vocabulary) and seed give the same initial parameters."""
    pairs = (
      ("train.seed", self.train.seed, theirs.train.seed),
      ("data.tokenizer", self.data.tokenizer, theirs.data.tokenizer),
    )
    for path, mine, other in pairs:
      if mine != other:
        raise ValueError(
          f"{path}: got {mine!r} but the reference run {ref.path} used {other!r}; patching "
          "restarts from the reference's initial parameters, so they must match."
        )
    mine_model, their_model = self.model.resolved(), theirs.model.resolved()
    for field in dataclasses.fields(mine_model):
      a, b = getattr(mine_model, field.name), getattr(their_model, field.name)
      if a != b:
        raise ValueError(
          f"model.{field.name}: got {a!r} but the reference run {ref.path} used {b!r}; "
          "the model must be the reference's."
        )

  def run(self, run_dir: RunDir) -> dict:
    return run(self, RunDir(run_dir))


@step_lib.async_jit  # queued with the step it feeds, not waited for
def reference_patterns(
  reference: LanguageModel, tokens_BxT, positions_BxT=None, segment_BxT=None, dtype=jnp.float32
):
  """The attention patterns [B, L, H, T, T] of the reference model on a batch (XLA drops the
  unused rest: the last MLP and the final norm)."""
  _, patterns_BxLxHxTxT = reference.features(
    tokens_BxT,
    positions_BxT=positions_BxT,
    segment_BxT=segment_BxT,
    return_patterns=True,
    dtype=dtype,
  )
  return patterns_BxLxHxTxT


def make_patterns_fn(reference: LanguageModel, start_patching: int, dtype=jnp.float32):
  """Hooks.patterns: the reference's patterns on the batch from start_patching on, None (the
  model's own attention) before."""

  def patterns_fn(batch: dict, step: int):
    if step < start_patching:
      return None
    return reference_patterns(
      reference, batch["tokens"], batch.get("positions"), batch.get("segment"), dtype
    )

  return patterns_fn


def _check_initial_parameters(
  model: LanguageModel, reference_ckpt: Checkpointer, ref: RunDir
) -> None:
  """Compares this run's initial parameters with the reference's checkpoint 0 (a tolerance
  allows for a reference trained on another backend; another seed differs by O(1))."""
  theirs = reference_ckpt.restore_model(0, model)
  for a, b in zip(
    jax.tree.leaves(eqx.filter(model, eqx.is_array)),
    jax.tree.leaves(eqx.filter(theirs, eqx.is_array)),
  ):
    if not np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6):
      raise ValueError(
        f"reference_run: the initial parameters of {ref.path} (its checkpoint 0) "
        "differ from this run's; use the reference's model, tokenizer and "
        "train.seed."
      )


def run(cfg: PatchingConfig, run_dir: RunDir) -> dict:
  cfg.check()
  cfg.check_sources(run_dir)  # before any compute
  ref = run_dir.source(cfg.reference_run)
  model = initial_model(cfg)
  reference_ckpt = Checkpointer(ref.checkpoints_dir)
  try:
    if 0 in ref.checkpoint_steps():
      _check_initial_parameters(model, reference_ckpt, ref)
    reference = reference_ckpt.restore_model(cfg.reference_step, model)
  finally:
    reference_ckpt.close()
  mesh = step_lib.data_mesh(cfg.train.device_count())
  reference = step_lib.replicate(reference, mesh)
  # The patterns replace the model's own from start_patching on, with a fresh optimizer there.
  hooks = Hooks(
    patterns=make_patterns_fn(reference, cfg.start_patching, loop.DTYPES[cfg.train.compute_dtype]),
    reset_optimizer_at=cfg.start_patching,
    stop=plateau_stop(cfg.train),
  )
  fields = {
    "experiment": "patching",
    "reference_run": cfg.reference_run,
    "reference_step": cfg.reference_step,
    "start_patching": cfg.start_patching,
  }
  return pretrain.run(cfg, run_dir, hooks=hooks, fields=fields)
