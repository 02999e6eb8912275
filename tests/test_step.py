import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bioknow.data import pipeline, schedules
from bioknow.models.transformer import LanguageModel, ModelConfig
from bioknow.train import step as step_lib


def _losses(ds, n_devices, n_steps=3):
  mesh = step_lib.data_mesh(n_devices)
  model = step_lib.replicate(
    LanguageModel(ModelConfig(preset="tiny"), ds.vocab_size, key=jax.random.key(0)), mesh
  )
  cfg = step_lib.OptimizerConfig(lr=1e-3)
  optimizer = step_lib.make_optimizer(cfg, step_lib.learning_rate(cfg, n_steps))
  opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
  losses = []
  for s in range(n_steps):
    batch = pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), 8, 0, s)
    b = step_lib.shard_batch({"t": batch["tokens_BxT"], "r": batch["role_BxT"]}, mesh)
    model, opt_state, loss = step_lib.train_step(optimizer, model, opt_state, b["t"], b["r"])
    losses.append(float(loss))
  return losses


def _assert_same_step(result_a, result_b) -> None:
  """Two train_step results (model, opt_state, loss) agree in loss and every parameter."""
  (model_a, _, loss_a), (model_b, _, loss_b) = result_a, result_b
  np.testing.assert_allclose(float(loss_b), float(loss_a), rtol=1e-5)
  for a, b in zip(
    jax.tree.leaves(eqx.filter(model_a, eqx.is_array)),
    jax.tree.leaves(eqx.filter(model_b, eqx.is_array)),
  ):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_two_devices_give_the_losses_of_one(small_dataset):
  assert len(jax.local_devices()) >= 2
  np.testing.assert_allclose(_losses(small_dataset, 2), _losses(small_dataset, 1), rtol=1e-5)


def test_adamw_and_cosine_follow_the_paper():
  cfg = step_lib.OptimizerConfig(lr=4e-4)
  lr = step_lib.learning_rate(cfg, 16_000)
  assert float(lr(0)) == pytest.approx(4e-4)
  assert float(lr(8_000)) == pytest.approx((4e-4 + 1e-7) / 2, rel=1e-3)
  assert float(lr(16_000)) == pytest.approx(1e-7, rel=1e-3)
  assert float(step_lib.learning_rate(step_lib.OptimizerConfig(schedule="constant"), 10)(9)) == (
    pytest.approx(4e-4)
  )
  assert (cfg.b1, cfg.b2, cfg.weight_decay) == (0.9, 0.95, 0.1)


def test_weight_decay_spares_norm_scales():
  model = LanguageModel(ModelConfig(preset="tiny"), 50, key=jax.random.key(0))
  cfg = step_lib.OptimizerConfig(lr=1.0, weight_decay=0.5)
  optimizer = step_lib.make_optimizer(cfg, step_lib.learning_rate(cfg, 10))
  params = eqx.filter(model, eqx.is_array)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = optimizer.update(zero_grads, optimizer.init(params), params)
  assert float(jnp.abs(updates.norm_D).max()) == 0.0  # 1-d: no decay
  np.testing.assert_allclose(updates.embed_VxD, -0.5 * model.embed_VxD, rtol=1e-6)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(lr=0), "optimizer.lr"),
    (dict(b2=1.0), "optimizer.b2"),
    (dict(schedule="linear"), "optimizer.schedule"),
    (dict(weight_decay=-1), "weight_decay"),
  ],
)
def test_bad_optimizer_configs(kwargs, match):
  with pytest.raises(ValueError, match=match):
    step_lib.OptimizerConfig(**kwargs).check()


@pytest.mark.slow
def test_packed_rows_give_the_loss_and_gradients_of_padded_ones(small_dataset):
  """Biographies end to end in rows (positions restart, attention stays inside each) train
  exactly like one padded biography per row."""
  from bioknow.data import packing  # pylint: disable=import-outside-toplevel

  ds = small_dataset
  batch = pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), 8, 0, 0)
  packed = packing.pack(batch, *packing.packed_shape(batch["length_B"], 8, ds.seq_len))
  assert packed["dropped"] == 0 and packed["tokens_RxL"].size < batch["tokens_BxT"].size * 1.5
  model = LanguageModel(ModelConfig(preset="tiny"), ds.vocab_size, key=jax.random.key(0))
  optimizer = optax.sgd(1.0)  # parameter change = -gradient
  results = []
  for args in [
    (batch["tokens_BxT"], batch["role_BxT"]),
    (
      packed["tokens_RxL"],
      packed["role_RxL"],
      jnp.float32,
      None,
      packed["position_RxL"],
      packed["segment_RxL"],
    ),
  ]:
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    copy = jax.tree.map(lambda x: x.copy() if eqx.is_array(x) else x, model)
    results.append(step_lib.train_step(optimizer, copy, opt_state, *args))
  _assert_same_step(*results)


@pytest.mark.slow
def test_rows_cut_to_the_longest_biography_train_and_evaluate_like_full_ones(small_dataset):
  """Cutting padding columns (pipeline.trim, and evaluation sets) changes no loss, gradient or
  evaluation metric."""
  from bioknow.train import evaluation  # pylint: disable=import-outside-toplevel

  ds = small_dataset
  batch = pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), 8, 0, 0)
  cut = pipeline.trim(batch, 8)
  assert cut["tokens_BxT"].shape[1] < batch["tokens_BxT"].shape[1]
  model = LanguageModel(ModelConfig(preset="tiny"), ds.vocab_size, key=jax.random.key(0))
  optimizer = optax.sgd(1.0)  # parameter change = -gradient
  results = []
  for b in (batch, cut):
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    copy = jax.tree.map(lambda x: x.copy() if eqx.is_array(x) else x, model)
    results.append(step_lib.train_step(optimizer, copy, opt_state, b["tokens_BxT"], b["role_BxT"]))
  _assert_same_step(*results)

  bios = pipeline.eval_set(ds, np.arange(50), 16, pool="eval", seed=0, name="seen")
  cfg = evaluation.EvalConfig(n_sequences=16, batch_size=16, n_attention=16)
  mesh = step_lib.data_mesh(1)
  got = evaluation._run_set(model, bios, cfg, mesh, jnp.float32, n_attention=16)
  n_attributes = bios.attribute_BxS.shape[1]
  full = step_lib.eval_step(
    model,
    bios.tokens_BxT,
    bios.role_BxT,
    bios.attribute_BxT,
    bios.sentence_BxT,
    n_attributes,
    jnp.float32,
    True,
  )
  for k, v in got.pop("attention").items():
    np.testing.assert_allclose(v, np.asarray(full["attention"][k]), rtol=1e-5, atol=1e-6)
  for k, v in got.items():
    np.testing.assert_allclose(v, np.asarray(full[k]), rtol=1e-5, atol=1e-6)


def test_a_fresh_state_keeps_the_lr_schedule_on_the_global_step():
  cfg = step_lib.OptimizerConfig(lr=1.0, lr_end=0.0)
  lr = step_lib.learning_rate(cfg, 100)
  optimizer = step_lib.make_optimizer(cfg, lr)
  params = {"w_DxD": jnp.ones((2, 2))}
  state = step_lib.fresh_state(optimizer, params, 60)
  adam = state[0]
  assert int(adam.count) == 0 and float(jnp.abs(adam.mu["w_DxD"]).sum()) == 0.0
  assert step_lib.schedule_step(state) == 60
  # The update applies lr(60), not the schedule's peak: a fresh Adam's first step has |u| = 1.
  grads = {"w_DxD": jnp.ones((2, 2))}
  updates, _ = optimizer.update(grads, state, params)
  expected = -(1.0 + 0.1) * float(lr(60))  # the Adam step and the decoupled weight decay
  np.testing.assert_allclose(updates["w_DxD"], expected, rtol=1e-4)


@pytest.mark.slow
def test_every_evaluation_set_of_a_run_is_cut_to_one_length(small_dataset, monkeypatch):
  """One column count for all of a run's sets: one evaluation program per model (and one with
  attention statistics), not one per set."""
  from bioknow.train import evaluation  # pylint: disable=import-outside-toplevel

  ds = small_dataset
  sets = pipeline.standard_eval_sets(ds, 64, seed=0)
  seen = sets["seen"]  # the held-out set: the seen set's 32 shortest biographies
  shortest = np.argsort(seen.length_B, kind="stable")[:32]
  sets["heldout"] = dataclasses.replace(
    seen, **{f.name: getattr(seen, f.name)[shortest] for f in dataclasses.fields(seen)}
  )
  own = {k: pipeline.round_up(v.length_B.max()) for k, v in sets.items()}
  assert len(set(own.values())) > 1  # the sets' own lengths differ
  assert evaluation.row_len(sets) == max(own.values())
  used, run_set = [], evaluation._run_set
  monkeypatch.setattr(evaluation, "_run_set", lambda *a: used.append(a[-2:]) or run_set(*a))
  model = LanguageModel(ModelConfig(preset="tiny"), ds.vocab_size, key=jax.random.key(0))
  cfg = evaluation.EvalConfig(n_sequences=64, batch_size=32, n_attention=32)
  attributes = ds.tables.attributes
  record, _ = evaluation.evaluate(
    model, sets, cfg, step_lib.data_mesh(1), jnp.float32, attributes, ds.population.size
  )
  # One column count and one count of scored positions for every set.
  assert used == [(max(own.values()), evaluation.n_scored(sets, 32))] * len(sets)
  # The seen set's metrics are those of its own, shorter cut.
  alone = evaluation._run_set(model, sets["seen"], cfg, step_lib.data_mesh(1), jnp.float32, 0)
  np.testing.assert_allclose(record["attribute_loss"], alone["loss"].mean(axis=1).mean(), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["plain", "packed", "patterns", "hawk"])
def test_computing_only_real_tokens_gives_the_loss_and_gradients_of_every_position(
  small_dataset, layout
):
  """train_step with n_compute (real tokens in K rows, fillers past them) trains exactly like
  the step over every position: plain and packed rows, given attention patterns, Hawk."""
  from bioknow.data import packing  # pylint: disable=import-outside-toplevel

  ds = small_dataset
  batch = pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), 8, 0, 0)
  n_real = int(batch["length_B"].sum())
  mixer = "hawk" if layout == "hawk" else "attention"
  model = LanguageModel(
    ModelConfig(preset="tiny", mixer=mixer), ds.vocab_size, key=jax.random.key(0)
  )
  args: tuple = (batch["tokens_BxT"], batch["role_BxT"])
  if layout == "packed":
    packed = packing.pack(batch, *packing.packed_shape(batch["length_B"], 8, ds.seq_len))
    args = (packed["tokens_RxL"], packed["role_RxL"], jnp.float32, None)
    args += (packed["position_RxL"], packed["segment_RxL"])
  if layout == "patterns":  # a reference model's (causal) patterns, as patching gives them
    reference = LanguageModel(ModelConfig(preset="tiny"), ds.vocab_size, key=jax.random.key(1))
    _, patterns = reference.batch(jnp.asarray(batch["tokens_BxT"]), return_patterns=True)
    args += (jnp.float32, patterns)
  args += (None,) * (6 - len(args))
  assert n_real < args[0].size
  optimizer = optax.sgd(1.0)  # parameter change = -gradient
  results = []
  for n_compute in (None, n_real, n_real + 13):  # exactly the real tokens, and fillers too
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    copy = jax.tree.map(lambda x: x.copy() if eqx.is_array(x) else x, model)
    results.append(step_lib.train_step(optimizer, copy, opt_state, *args, n_compute))
  _assert_same_step(results[0], results[1])
  _assert_same_step(results[0], results[2])


@pytest.mark.slow
def test_train_step_matches_equinox_filter_jit_bit_for_bit_and_donates_model_and_state(
  small_dataset,
):
  """async_jit (no wait for the outputs) compiles the same step as eqx.filter_jit: the same
  losses and parameters to the bit over 3 steps. The model and optimizer state passed in are
  donated (deleted); the batch is not, so a batch can be fed again."""
  ds = small_dataset
  optimizer = optax.adamw(1e-3)
  reference = eqx.filter_jit(step_lib.train_step.__wrapped__)
  batch = pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), 8, 0, 0)
  tokens, role = jnp.asarray(batch["tokens_BxT"]), jnp.asarray(batch["role_BxT"])
  results = []
  for step in (reference, step_lib.train_step):
    model = LanguageModel(ModelConfig(preset="tiny"), ds.vocab_size, key=jax.random.key(0))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    losses = []
    for _ in range(3):
      given = model
      model, opt_state, loss = step(optimizer, model, opt_state, tokens, role)
      losses.append(float(loss))
    results.append((losses, model))
  assert results[0][0] == results[1][0]
  for a, b in zip(
    jax.tree.leaves(eqx.filter(results[0][1], eqx.is_array)),
    jax.tree.leaves(eqx.filter(results[1][1], eqx.is_array)),
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert given.embed_VxD.is_deleted() and not tokens.is_deleted()


@pytest.mark.slow
def test_layers_unroll_fully_off_a_cpu_and_every_unroll_gives_the_same_logits(
  small_dataset, monkeypatch
):
  """transformer.unroll: 4 layers a scan iteration on a CPU, every layer elsewhere (a scan
  is a host-driven while loop on a GPU); an explicit UNROLL wins. The logits do not depend
  on it."""
  from bioknow.models import transformer  # pylint: disable=import-outside-toplevel

  assert transformer.unroll(8) == 4
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert transformer.unroll(8) == 8 and transformer.unroll(12) == 12
  monkeypatch.setattr(transformer, "UNROLL", 2)
  assert transformer.unroll(8) == 2
  monkeypatch.undo()
  ds = small_dataset
  batch = pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), 8, 0, 0)
  model = LanguageModel(
    ModelConfig(preset="tiny", n_layers=3), ds.vocab_size, key=jax.random.key(0)
  )
  logits = []
  for n in (1, 2, 3):
    monkeypatch.setattr(transformer, "UNROLL", n)
    logits.append(np.asarray(model.batch(jnp.asarray(batch["tokens_BxT"]))[0]))
  np.testing.assert_allclose(logits[1], logits[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logits[2], logits[0], rtol=1e-5, atol=1e-5)
