import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioknow.models import hawk
from bioknow.models.transformer import LanguageModel, ModelConfig, count_parameters

V = 97


def _model(preset="tiny", mixer="attention", seed=0, **kw):
  return LanguageModel(ModelConfig(preset=preset, mixer=mixer, **kw), V, key=jax.random.key(seed))


def _tokens(t=23, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(4, V, t))


def test_paper_preset_parameter_count():
  cfg = ModelConfig(preset="paper").resolved()
  assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_mlp, cfg.key_size) == (8, 8, 512, 2048, 64)
  m = jax.eval_shape(lambda: LanguageModel(cfg, 32_000, key=jax.random.key(0)))
  d, f, layers = 512, 2048, 8
  per_layer = 4 * d * 8 * 64 + 2 * d * f + 2 * d  # q, k, v, o; MLP in and out; two norms
  expected = layers * per_layer + 32_000 * d + d
  total = sum(x.size for x in jax.tree.leaves(m))
  assert total == expected
  assert 40e6 < total < 45e6


@pytest.mark.slow
def test_small_preset_is_about_a_million_parameters():
  m = LanguageModel(ModelConfig(preset="small"), 4096, key=jax.random.key(0))
  assert 1.0e6 < count_parameters(m)["total"] < 1.6e6


@pytest.mark.slow
@pytest.mark.parametrize("mixer", ["attention", "hawk"])
def test_outputs_and_causality(mixer):
  m = _model(mixer=mixer)
  tokens = _tokens()
  logits, _ = m(tokens)
  assert logits.shape == (23, V) and logits.dtype == jnp.float32
  changed = tokens.at[15:].set(5)
  np.testing.assert_allclose(m(changed)[0][:15], logits[:15], rtol=1e-5, atol=1e-5)
  assert not np.allclose(m(changed)[0][15:], logits[15:])


def test_patterns_are_causal_distributions():
  _, patterns = _model()(_tokens(), return_patterns=True)
  assert patterns.shape == (2, 2, 23, 23)
  np.testing.assert_allclose(patterns.sum(-1), 1.0, rtol=1e-5)
  assert float(jnp.abs(jnp.triu(patterns, k=1)).max()) == 0.0


@pytest.mark.slow
def test_patching_with_own_patterns_changes_nothing():
  m, tokens = _model("mini"), _tokens()
  logits, patterns = m(tokens, return_patterns=True)
  patched, used = m(tokens, patterns_LxHxTxT=patterns, return_patterns=True)
  np.testing.assert_array_equal(patched, logits)
  np.testing.assert_array_equal(used, patterns)


@pytest.mark.slow
def test_packed_biographies_do_not_see_each_other():
  m = _model("mini", mixer="attention")
  for mixer in ("attention", "hawk"):
    m = _model("mini", mixer=mixer)
    a, b = _tokens(11, seed=1), _tokens(9, seed=2)
    packed, _ = m(
      jnp.concatenate([a, b]),
      positions_T=jnp.concatenate([jnp.arange(11), jnp.arange(9)]),
      segment_T=jnp.concatenate([jnp.zeros(11, int), jnp.ones(9, int)]),
    )
    np.testing.assert_allclose(packed[:11], m(a)[0], rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(packed[11:], m(b)[0], rtol=2e-5, atol=2e-5)


def test_linear_recurrence_matches_a_loop():
  rng = np.random.default_rng(0)
  a, b = rng.uniform(0, 1, (17, 3)), rng.normal(size=(17, 3))
  h, expected = np.zeros(3), []
  for t in range(17):
    h = a[t] * h + b[t]
    expected.append(h)
  np.testing.assert_allclose(
    hawk.linear_recurrence(jnp.asarray(a), jnp.asarray(b)), np.array(expected), rtol=1e-5
  )


def test_hawk_refuses_a_pattern():
  with pytest.raises(ValueError, match="hawk"):
    _model(mixer="hawk")(_tokens(), patterns_LxHxTxT=jnp.zeros((2, 2, 23, 23)))


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(preset="huge"), "model.preset: got 'huge'"),
    (dict(preset="tiny", n_heads=3), "model.n_heads: 3 heads do not divide d_model 32"),
    (dict(preset="tiny", mixer="lstm"), "model.mixer"),
    (dict(preset="tiny", d_model=0), "model.d_model"),
  ],
)
def test_bad_model_configs(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ModelConfig(**kwargs).resolved()


@pytest.mark.slow
def test_bf16_compute_keeps_float32_parameters_and_logits():
  m = _model("mini")
  logits, _ = m(_tokens(), dtype=jnp.bfloat16)
  assert logits.dtype == jnp.float32
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(eqx.filter(m, eqx.is_array)))
  np.testing.assert_allclose(logits, m(_tokens())[0], atol=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("t", [1, 2, 7, 12])
def test_causal_attend_matches_full_attention(t):
  """The two query halves give the full computation's outputs, patterns and gradients, for
  plain and packed (two-segment) rows, even and odd lengths."""
  from bioknow.models.attention import attend, causal_attend

  q, k, v = (
    0.5 * jax.random.normal(key, (2, 3, t, 4)) for key in jax.random.split(jax.random.key(0), 3)
  )
  segment_BxT = jnp.stack([jnp.zeros(t, jnp.int32), (jnp.arange(t) >= t // 3).astype(jnp.int32)])
  visible_BxTxT = jnp.tril(jnp.ones((t, t), bool)) & (
    segment_BxT[:, :, None] == segment_BxT[:, None, :]
  )
  full = attend(q, k, v, visible_BxTxT)
  split = causal_attend(q, k, v, visible_BxTxT)
  for a, b in zip(full, split):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  loss = lambda f: lambda q, k, v: jnp.sum(f(q, k, v, visible_BxTxT)[0] ** 3)
  grads_full = jax.grad(loss(attend), argnums=(0, 1, 2))(q, k, v)
  grads_split = jax.grad(loss(causal_attend), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(grads_full, grads_split):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cpu_layout", [True, False])
def test_attend_backward_matches_autodiff(cpu_layout, monkeypatch):
  """`attend`'s hand-written backward, in the layout for XLA:CPU's fast matmuls and in the
  one for other backends, gives autodiff's gradients of plain masked-softmax attention,
  through the output and the pattern."""
  from bioknow.models import attention
  from bioknow.models.attention import attend

  monkeypatch.setattr(attention, "cpu_layout", lambda: cpu_layout)

  b, h, t, k = 2, 3, 9, 4
  q, kk, v = (
    0.5 * jax.random.normal(key, (b, h, t, k)) for key in jax.random.split(jax.random.key(1), 3)
  )
  visible_BxTxT = jnp.broadcast_to(jnp.tril(jnp.ones((t, t), bool)), (b, t, t))
  w_out = jax.random.normal(jax.random.key(2), (b, h, t, k))
  w_pattern = jax.random.normal(jax.random.key(3), (b, h, t, t))

  def plain(q, kk, v, visible_BxTxT):
    logits = jnp.where(visible_BxTxT[:, None], jnp.einsum("bhtk,bhsk->bhts", q, kk), -jnp.inf)
    pattern = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bhts,bhsk->bhtk", pattern, v), pattern

  def loss(f):
    def value(q, kk, v):
      out, pattern = f(q, kk, v, visible_BxTxT)
      return jnp.sum(w_out * out) + jnp.sum(w_pattern * pattern)

    return value

  for a, e in zip(
    jax.jit(jax.grad(loss(attend), argnums=(0, 1, 2)))(q, kk, v),
    jax.grad(loss(plain), argnums=(0, 1, 2))(q, kk, v),
  ):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
