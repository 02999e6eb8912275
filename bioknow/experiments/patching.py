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
and train.seed; `check_sources` compares those with the reference run's config.txt, and `run`
compares the initial parameters themselves with the reference's checkpoint 0 when it has one.
"""

import ast
import dataclasses
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bioknow.data import dataset
from bioknow.experiments import pretrain
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.models.transformer import LanguageModel, ModelConfig
from bioknow.train import loop
from bioknow.train import step as step_lib
from bioknow.train.checkpoint import Checkpointer


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

  def train_flops(self) -> float:
    """The pretraining FLOPs plus the reference's forward pass (about a third of a training
    step) on every patched step."""
    patched = 1 - self.start_patching / self.train.n_steps
    return super().train_flops() * (1 + patched / 3)

  def check(self):
    """Everything that can be checked without the reference run; returns the schedule."""
    schedule = super().check()
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
    return schedule

  def sources(self) -> tuple[str, ...]:
    return (self.reference_run,)

  def reference_dir(self, run_dir: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(self.reference_run)
    return path if path.is_absolute() else pathlib.Path(run_dir).parent / path

  def check_sources(self, run_dir: str | pathlib.Path) -> pathlib.Path:
    """Raises ValueError (one sentence) unless the reference run has the checkpoint at
    reference_step and was started from the same initial parameters; returns its directory.
    Reads files only: nothing is computed or written."""
    ref = self.reference_dir(run_dir)
    steps = checkpoint_steps(ref)
    if self.reference_step not in steps:
      have = f"it has steps {steps}" if steps else "it has no checkpoints (has it run?)"
      raise ValueError(
        f"reference_step: the reference run {ref} has no checkpoint at step "
        f"{self.reference_step}; {have}."
      )
    leaves = _config_leaves(ref / "config.txt")
    if leaves is None and 0 not in steps:
      raise ValueError(
        f"reference_run: {ref} has neither config.txt nor a checkpoint at step "
        "0, so its initial parameters cannot be checked against this run's."
      )
    if leaves is not None:
      self._check_same_initialisation(ref, leaves)
    return ref

  def _check_same_initialisation(self, ref: pathlib.Path, leaves: dict) -> None:
    """Same model shape, tokenizer (vocabulary) and seed give the same initial parameters."""
    for path, mine in (("train.seed", self.train.seed), ("data.tokenizer", self.data.tokenizer)):
      if path in leaves and leaves[path] != mine:
        raise ValueError(
          f"{path}: got {mine!r} but the reference run {ref} used "
          f"{leaves[path]!r}; patching restarts from the reference's initial "
          "parameters, so they must match."
        )
    fields = {
      f.name: leaves.get(f"model.{f.name}", f.default) for f in dataclasses.fields(ModelConfig)
    }
    theirs, mine = ModelConfig(**fields).resolved(), self.model.resolved()
    if theirs != mine:
      diff = [
        f.name
        for f in dataclasses.fields(ModelConfig)
        if getattr(theirs, f.name) != getattr(mine, f.name)
      ]
      raise ValueError(
        f"model.{diff[0]}: got {getattr(mine, diff[0])!r} but the "
        f"reference run {ref} used {getattr(theirs, diff[0])!r}; the model "
        "must be the reference's."
      )

  def run(self, workdir: str | pathlib.Path) -> dict:
    return run(self, pathlib.Path(workdir))


def checkpoint_steps(run_dir: pathlib.Path) -> list[int]:
  """Steps of the finished checkpoints of a run (orbax renames a checkpoint to its step once
  it is complete)."""
  directory = run_dir / "checkpoints"
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir())


def _config_leaves(path: pathlib.Path) -> dict | None:
  """The leaves of a run's config.txt (`path = value` lines written by the launcher), with
  unset ones at their defaults; values that are not Python literals are left out. None if
  there is no config.txt."""
  if not path.is_file():
    return None
  leaves = {}
  for line in path.read_text().splitlines():
    if " = " not in line:
      continue
    key, value = line.split(" = ", 1)
    if value.startswith("<[unset; default: ") and value.endswith("]>"):
      value = value[len("<[unset; default: ") : -2]
    try:
      leaves[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
  return leaves


def initial_model(cfg: PretrainConfig) -> LanguageModel:
  """The model a pretraining run starts from (as pretrain.prepare builds it)."""
  return LanguageModel(cfg.model, dataset.vocab_size(cfg.data), key=jax.random.key(cfg.train.seed))


@eqx.filter_jit
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
  """patterns_fn(batch, step) for loop.train: the reference's patterns on the batch from
  start_patching on, None (the model's own attention) before."""

  def patterns_fn(batch: dict, step: int):
    if step < start_patching:
      return None
    return reference_patterns(
      reference, batch["tokens"], batch.get("positions"), batch.get("segment"), dtype
    )

  return patterns_fn


def _check_initial_parameters(
  model: LanguageModel, reference_ckpt: Checkpointer, ref: pathlib.Path
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
        f"reference_run: the initial parameters of {ref} (its checkpoint 0) "
        "differ from this run's; use the reference's model, tokenizer and "
        "train.seed."
      )


def run(cfg: PatchingConfig, workdir: pathlib.Path) -> dict:
  cfg.check()
  ref = cfg.check_sources(workdir)  # before any compute
  model = initial_model(cfg)
  reference_ckpt = Checkpointer(ref / "checkpoints")
  try:
    if 0 in checkpoint_steps(ref):
      _check_initial_parameters(model, reference_ckpt, ref)
    reference = reference_ckpt.restore_model(cfg.reference_step, model)
  finally:
    reference_ckpt.close()
  mesh = step_lib.data_mesh(cfg.train.check())
  reference = step_lib.replicate(reference, mesh)
  patterns_fn = make_patterns_fn(
    reference, cfg.start_patching, loop.DTYPES[cfg.train.compute_dtype]
  )
  return pretrain.run(
    cfg,
    workdir,
    patterns_fn=patterns_fn,
    reset_opt_at=cfg.start_patching,
    extra_summary={
      "experiment": "patching",
      "reference_run": cfg.reference_run,
      "reference_step": cfg.reference_step,
      "start_patching": cfg.start_patching,
    },
  )
