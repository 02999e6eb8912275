"""Attention patching: the twin computation, the optimizer reset, evaluation and the checks
on the reference run."""

import dataclasses
import functools
import json
import shutil

import equinox as eqx
import fiddle as fdl
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioknow.data.dataset import DataConfig
from bioknow.experiments import pretrain
from bioknow.experiments.patching import PatchingConfig, reference_patterns
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.models.transformer import PRESETS, LanguageModel, ModelConfig
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train import step as step_lib
from bioknow.train.evaluation import EvalConfig

V = 61


def _model(seed=0, **kw):
  return LanguageModel(ModelConfig(**{"preset": "tiny", **kw}), V, key=jax.random.key(seed))


def _tokens(b=3, t=19, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(4, V, (b, t)))


def _loss(model, tokens_BxT, patterns=None):
  logits_BxTxV, _ = model.batch(tokens_BxT, patterns_BxLxHxTxT=patterns)
  logp = jax.nn.log_softmax(logits_BxTxV[:, :-1])
  return -jnp.take_along_axis(logp, tokens_BxT[:, 1:, None], axis=-1).mean()


@eqx.filter_jit
def _forward(model, tokens_BxT, patterns=None):
  return model.batch(tokens_BxT, patterns_BxLxHxTxT=patterns, return_patterns=True)


def _close(actual, desired):
  """Equal up to float32 rounding: the two backward passes compile to different programs."""
  desired = np.asarray(desired)
  np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6 * np.abs(desired).max())


def _query_key(grads):
  return grads.blocks.mixer.w_qkv_Dx3xHxK[:, :, :2]  # [L, D, q/k, H, K]


@pytest.fixture(scope="module")
def twins():
  return _model(seed=0), _model(seed=1), _tokens()


@pytest.mark.slow
def test_self_patching_gives_the_unpatched_loss_and_gradients(twins):
  """With its own current patterns, a model's loss is unchanged (bit for bit), and so is the
  gradient of every parameter that the patterns do not depend on (the last layer's values,
  output projection and MLP, the final norm; up to float32 rounding); the query and key
  projections get no gradient, since a patched pattern is a constant."""
  model, _, tokens = twins
  value_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(_loss))
  loss, grads = value_and_grad(model, tokens)
  patched_loss, patched_grads = value_and_grad(model, tokens, reference_patterns(model, tokens))
  np.testing.assert_array_equal(patched_loss, loss)
  last = lambda g: jax.tree.map(lambda x: x[-1], g.blocks)
  g, pg = last(grads), last(patched_grads)
  for name in ("w_in_DxF", "w_out_FxD", "norm2_D"):
    _close(getattr(pg, name), getattr(g, name))
  _close(pg.mixer.w_o_HxKxD, g.mixer.w_o_HxKxD)
  _close(pg.mixer.w_qkv_Dx3xHxK[:, 2], g.mixer.w_qkv_Dx3xHxK[:, 2])  # value projection
  _close(patched_grads.norm_D, grads.norm_D)
  assert float(jnp.abs(_query_key(patched_grads)).max()) == 0.0
  assert float(jnp.abs(_query_key(grads)).max()) > 0.0


@pytest.mark.slow
@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_patched_layers_use_the_reference_patterns(twins, n_heads):
  _, reference, tokens = twins
  model = _model(n_heads=n_heads) if n_heads != 2 else twins[0]
  if n_heads != 2:
    reference = _model(seed=1, n_heads=n_heads)
  ref_patterns = reference_patterns(reference, tokens)
  ref_logits, expected = _forward(reference, tokens)
  np.testing.assert_allclose(ref_patterns, expected, rtol=1e-6, atol=1e-7)
  # The reference patched with its own patterns is the reference, bit for bit.
  np.testing.assert_array_equal(_forward(reference, tokens, expected)[0], ref_logits)
  logits, used = _forward(model, tokens, ref_patterns)
  assert used.shape == (3, 2, n_heads, 19, 19)
  np.testing.assert_array_equal(used, ref_patterns)  # every layer, every head
  assert not np.allclose(logits, _forward(model, tokens)[0])


def test_the_reference_receives_no_gradient(twins):
  model, reference, tokens = twins
  twin = lambda reference, model: _loss(model, tokens, reference_patterns(reference, tokens))
  ref_grads = eqx.filter_jit(eqx.filter_grad(twin))(reference, model)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(ref_grads))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_patterns_of_every_preset(preset):
  cfg = ModelConfig(preset=preset).resolved()
  model = eqx.filter_eval_shape(LanguageModel, cfg, 512, key=jax.random.key(0))
  tokens = jax.ShapeDtypeStruct((2, 7), jnp.int32)
  patterns = eqx.filter_eval_shape(reference_patterns, model, tokens)
  assert patterns.shape == (2, cfg.n_layers, cfg.n_heads, 7, 7)


# A reference run and a patched run of the tiny model.
START, REF_STEP, N_STEPS = 4, 8, 8
TINY = PretrainConfig(
  data=DataConfig(n_individuals=50, n_heldout=16, tokenizer="bio_4k"),
  model=ModelConfig(preset="tiny"),
  train=loop.TrainConfig(n_steps=N_STEPS, batch_size=8),
  eval=EvalConfig(steps=(0, START, REF_STEP), n_sequences=32, batch_size=32, n_attention=32),
)


def _fdl(value):
  """The fiddle config of a (nested) frozen dataclass, as sweeps write them."""
  if not dataclasses.is_dataclass(value) or isinstance(value, type):
    return value
  return fdl.Config(
    type(value), **{f.name: _fdl(getattr(value, f.name)) for f in dataclasses.fields(value)}
  )


def _records(run):
  return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("patching")
  real_step, seen = step_lib.train_step, []

  def spy(optimizer, model, opt_state, tokens, role, dtype, patterns, *rest):
    adam = opt_state[0]
    moments = sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves((adam.mu, adam.nu)))
    counts = (int(adam.count), step_lib.schedule_step(opt_state))
    seen.append((moments, patterns is not None, counts))
    return real_step(optimizer, model, opt_state, tokens, role, dtype, patterns, *rest)

  cfg = PatchingConfig.of(
    TINY, reference_run="reference", reference_step=REF_STEP, start_patching=START
  )
  with pytest.MonkeyPatch.context() as mp:
    # One optimizer object for both runs: the jitted train step (static in its optimizer)
    # then compiles once for both, which halves the time of this fixture.
    mp.setattr(pretrain, "learning_rate", functools.cache(pretrain.learning_rate))
    mp.setattr(pretrain, "make_optimizer", functools.cache(pretrain.make_optimizer))
    TINY.run(root / "reference")
    mp.setattr(step_lib, "train_step", spy)
    summary = cfg.run(root / "patched")
  return root, summary, seen


@pytest.mark.slow
def test_patching_starts_with_a_fresh_optimizer(runs):
  _, _, seen = runs
  assert [patched for _, patched, _ in seen] == [False] * START + [True] * (N_STEPS - START)
  moments = [norm for norm, _, _ in seen]
  assert moments[0] == 0.0 and moments[START - 1] > 0.0
  assert moments[START] == 0.0  # re-initialised: zero moments
  assert seen[START][2][0] == 0  # and Adam's bias correction starts again


def test_optimizer_reset_keeps_the_lr_schedule_on_the_global_step(runs):
  root, _, seen = runs
  # The schedule count runs on through the reset: the cosine does not restart at its peak.
  assert [schedule for _, _, (_, schedule) in seen] == list(range(N_STEPS))
  reference, patched = _records(root / "reference"), _records(root / "patched")
  lr = step_lib.learning_rate(TINY.optimizer, N_STEPS)
  for step in (START, N_STEPS):
    assert patched[step]["lr"] == pytest.approx(float(lr(step))) == reference[step]["lr"]


def test_patched_run_trains_and_evaluates_with_the_reference_patterns(runs):
  root, summary, _ = runs
  reference, patched = _records(root / "reference"), _records(root / "patched")
  # Same initial parameters and data: identical until patching starts.
  for key in ("attribute_loss", "attn_value_to_name"):
    assert patched[0][key] == reference[0][key]
  assert patched[START]["train_loss"] == reference[START]["train_loss"]
  # From start_patching on, evaluation (and its attention statistics) uses the patterns of
  # the reference's checkpoint, whatever the patched model's own queries and keys are.
  for step in (START, N_STEPS):
    for key in ("attn_name_to_name", "attn_value_to_name", "attn_value_to_text", "attn_sharpness"):
      assert len(patched[step][key]) == 2  # one per layer
      np.testing.assert_allclose(patched[step][key], reference[REF_STEP][key], rtol=1e-5)
  assert patched[N_STEPS]["attribute_loss"] != reference[N_STEPS]["attribute_loss"]
  assert {
    k: summary[k] for k in ("experiment", "reference_run", "reference_step", "start_patching")
  } == {
    "experiment": "patching",
    "reference_run": "reference",
    "reference_step": REF_STEP,
    "start_patching": START,
  }
  assert "plateau_end_step" in summary


def test_missing_reference_checkpoint_fails_before_anything_is_written(runs, tmp_path):
  root, _, _ = runs
  cfg = PatchingConfig.of(TINY, reference_run=str(root / "reference"), reference_step=7)
  with pytest.raises(ValueError, match=r"no checkpoint at step 7; it has steps \[0, 4, 8\]"):
    cfg.run(tmp_path / "run")
  assert not (tmp_path / "run").exists()
  cfg = PatchingConfig.of(TINY, reference_run="nowhere")
  with pytest.raises(ValueError, match="has no checkpoints"):
    cfg.check_sources(tmp_path / "run")
  assert not (tmp_path / "nowhere").exists()


def test_reference_with_other_initial_parameters_is_rejected(runs, tmp_path):
  root, _, _ = runs
  shutil.copytree(root / "reference", tmp_path / "ref")
  RunDir(tmp_path / "ref").write_config(_fdl(TINY))  # as the launcher writes it
  seed1 = PretrainConfig(
    data=TINY.data,
    model=TINY.model,
    eval=TINY.eval,
    train=loop.TrainConfig(n_steps=N_STEPS, batch_size=8, seed=1),
  )
  with pytest.raises(ValueError, match="train.seed: got 1 but the reference run .* used 0"):
    PatchingConfig.of(seed1, reference_run="ref").check_sources(tmp_path / "run")
  heads4 = PretrainConfig(
    data=TINY.data, eval=TINY.eval, train=TINY.train, model=ModelConfig(preset="tiny", n_heads=4)
  )
  with pytest.raises(ValueError, match="model.n_heads: got 4 but the reference run .* used 2"):
    PatchingConfig.of(heads4, reference_run="ref").check_sources(tmp_path / "run")
  PatchingConfig.of(TINY, reference_run="ref").check_sources(tmp_path / "run")  # matches
  # Without config.json, the initial parameters are compared with checkpoint 0.
  (tmp_path / "ref" / "config.json").unlink()
  with pytest.raises(ValueError, match="initial parameters of .* differ"):
    PatchingConfig.of(seed1, reference_run="ref").run(tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (
      dict(start_patching=8),
      r"start_patching: got 8; allowed: 0 <= start_patching < "
      r"train.n_steps \(8\)",
    ),
    (dict(reference_step=-1), "reference_step: got -1"),
    (dict(reference_run=""), "reference_run"),
  ],
)
def test_bad_patching_configs(kwargs, match):
  with pytest.raises(ValueError, match=match):
    PatchingConfig.of(TINY, **kwargs).check()
  hawk = PretrainConfig(
    data=TINY.data, train=TINY.train, eval=TINY.eval, model=ModelConfig(preset="tiny", mixer="hawk")
  )
  with pytest.raises(ValueError, match="model.mixer: got 'hawk'"):
    PatchingConfig.of(hawk).check()
