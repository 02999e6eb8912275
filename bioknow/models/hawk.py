"""Hawk's recurrent block (De et al. 2024): a sequence mixer without attention.

y = W_out( gelu(W_gate x) * RG-LRU(conv(W_in x)) ), with a causal depthwise convolution of
width 4 and the Real-Gated Linear Recurrent Unit

  r_t = sigmoid(W_a x_t + b_a),   i_t = sigmoid(W_x x_t + b_x),   a_t = a^(c r_t), c = 8,
  h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t),

where a = sigmoid(Lambda) per channel and the gate weights are block-diagonal (one block per
head). The recurrence is linear in h, so it runs as an associative scan in O(log T) depth.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

CONV_WIDTH = 4
GATE_CONSTANT = 8.0


def linear_recurrence(
  a_TxD: Float[Array, "T D"], b_TxD: Float[Array, "T D"]
) -> Float[Array, "T D"]:
  """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, by an associative scan."""

  def combine(left, right):
    a_l, b_l = left
    a_r, b_r = right
    return a_l * a_r, a_r * b_l + b_r

  return jax.lax.associative_scan(combine, (a_TxD, b_TxD))[1]


class Hawk(eqx.Module):
  w_gate_DxD: Float[Array, "D D"]
  w_in_DxD: Float[Array, "D D"]
  conv_WxD: Float[Array, "W D"]
  w_a_HxExE: Float[Array, "H E E"]  # block-diagonal gates: H blocks of E = D / H channels
  b_a_D: Float[Array, " D"]
  w_x_HxExE: Float[Array, "H E E"]
  b_x_D: Float[Array, " D"]
  lambda_D: Float[Array, " D"]
  w_out_DxD: Float[Array, "D D"]

  def __init__(self, d_model: int, n_heads: int, *, key: PRNGKeyArray):
    ks = jax.random.split(key, 7)
    d, e = d_model, d_model // n_heads
    self.w_gate_DxD = jax.random.normal(ks[0], (d, d)) / d**0.5
    self.w_in_DxD = jax.random.normal(ks[1], (d, d)) / d**0.5
    self.conv_WxD = jax.random.normal(ks[2], (CONV_WIDTH, d)) / CONV_WIDTH**0.5
    self.w_a_HxExE = jax.random.normal(ks[3], (n_heads, e, e)) / e**0.5
    self.b_a_D = jnp.zeros(d)
    self.w_x_HxExE = jax.random.normal(ks[4], (n_heads, e, e)) / e**0.5
    self.b_x_D = jnp.zeros(d)
    # a = sigmoid(Lambda) uniform in [0.9, 0.999] at initialisation, as in the paper.
    a_D = jax.random.uniform(ks[5], (d,), minval=0.9**2, maxval=0.999**2) ** 0.5
    self.lambda_D = jnp.log(a_D / (1 - a_D))
    self.w_out_DxD = jax.random.normal(ks[6], (d, d)) / d**0.5

  def _gate(self, x_TxD, w_HxExE, b_D):
    t, (h, e, _) = x_TxD.shape[0], w_HxExE.shape
    y = jnp.einsum("the,hef->thf", x_TxD.reshape(t, h, e), w_HxExE.astype(x_TxD.dtype))
    return jax.nn.sigmoid(y.reshape(t, h * e).astype(jnp.float32) + b_D)

  def __call__(
    self, x_TxD: Float[Array, "T D"], positions_T, segment_T, pattern=None
  ) -> tuple[Float[Array, "T D"], None]:
    """The recurrence and convolution restart at every segment (biography) start."""
    if pattern is not None:
      raise ValueError("model.mixer: 'hawk' has no attention pattern to patch; use 'attention'.")
    dtype = x_TxD.dtype
    gate_TxD = jax.nn.gelu(x_TxD @ self.w_gate_DxD.astype(dtype))
    u_TxD = x_TxD @ self.w_in_DxD.astype(dtype)
    # Causal depthwise convolution: output t sees inputs t-3..t of its own segment.
    t = u_TxD.shape[0]
    padded = jnp.pad(u_TxD, ((CONV_WIDTH - 1, 0), (0, 0)))
    seg = jnp.pad(segment_T, (CONV_WIDTH - 1, 0), constant_values=-1)
    u_TxD = sum(  # type: ignore[assignment]  # sum() starts from 0 but returns an array
      jnp.where((seg[i : i + t] == segment_T)[:, None], padded[i : i + t], 0)
      * self.conv_WxD[i].astype(dtype)
      for i in range(CONV_WIDTH)
    )
    # RG-LRU in float32 (the recurrence multiplies many gates).
    r_TxD = self._gate(u_TxD, self.w_a_HxExE, self.b_a_D)
    i_TxD = self._gate(u_TxD, self.w_x_HxExE, self.b_x_D)
    log_a_TxD = -GATE_CONSTANT * r_TxD * jax.nn.softplus(-self.lambda_D)  # log(a^(c r))
    starts_T = positions_T == 0
    a_TxD = jnp.where(starts_T[:, None], 0.0, jnp.exp(log_a_TxD))  # forget the previous segment
    norm_TxD = jnp.sqrt(-jnp.expm1(2 * log_a_TxD))  # sqrt(1 - a^2), stable near a = 1
    h_TxD = linear_recurrence(a_TxD, norm_TxD * i_TxD * u_TxD.astype(jnp.float32))
    return (gate_TxD * h_TxD.astype(dtype)) @ self.w_out_DxD.astype(dtype), None

  def batch(
    self, x_BxTxD: Float[Array, "B T D"], positions_BxT, segment_BxT, pattern=None
  ) -> tuple[Float[Array, "B T D"], None]:
    """`__call__` on a batch."""
    if pattern is not None:
      raise ValueError("model.mixer: 'hawk' has no attention pattern to patch; use 'attention'.")
    return jax.vmap(self)(x_BxTxD, positions_BxT, segment_BxT)[0], None
