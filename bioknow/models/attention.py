"""Causal multi-head attention that returns its pattern and can use a given pattern instead.

The pattern is the softmax output [H, T, T]. Attention patching (twin models) feeds the
pattern of a reference model in place of the layer's own; gradients never flow into it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


def rotary(x_HxTxK: Float[Array, "H T K"], positions_T: Int[Array, " T"]) -> Float[Array, "H T K"]:
  """Rotary position embedding over the last axis (pairs of halves)."""
  k = x_HxTxK.shape[-1]
  freq_F = 10_000.0 ** (-jnp.arange(0, k // 2) * 2 / k)
  angle_TxF = positions_T[:, None].astype(jnp.float32) * freq_F[None, :]
  cos, sin = jnp.cos(angle_TxF), jnp.sin(angle_TxF)
  x1, x2 = x_HxTxK[..., :k // 2], x_HxTxK[..., k // 2:]
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x_HxTxK.dtype)


class Attention(eqx.Module):
  """Multi-head causal self-attention with rotary positions. Head-major layouts ([H, T, K])
  keep the batched matmuls contiguous once the module is vmapped over the batch."""

  w_qkv_3xHxDxK: Float[Array, "3 H D K"]
  w_o_HxKxD: Float[Array, "H K D"]

  def __init__(self, d_model: int, n_heads: int, key_size: int, *, key: PRNGKeyArray):
    k1, k2 = jax.random.split(key)
    self.w_qkv_3xHxDxK = jax.random.normal(k1, (3, n_heads, d_model, key_size)) / d_model**0.5
    self.w_o_HxKxD = jax.random.normal(k2, (n_heads, key_size, d_model)) / (
        n_heads * key_size) ** 0.5

  def __call__(self, x_TxD: Float[Array, "T D"], positions_T: Int[Array, " T"],
               segment_T: Int[Array, " T"],
               pattern_HxTxT: Float[Array, "H T T"] | None = None,
               ) -> tuple[Float[Array, "T D"], Float[Array, "H T T"]]:
    """Tokens attend to earlier tokens of the same segment (biography); a given pattern is
    used as is, without gradient, and the layer's own queries and keys are not computed."""
    w = self.w_qkv_3xHxDxK.astype(x_TxD.dtype)
    v_HxTxK = jnp.einsum("td,hdk->htk", x_TxD, w[2])
    if pattern_HxTxT is None:
      q_HxTxK = rotary(jnp.einsum("td,hdk->htk", x_TxD, w[0]), positions_T)
      k_HxTxK = rotary(jnp.einsum("td,hdk->htk", x_TxD, w[1]), positions_T)
      logits_HxTxT = jnp.einsum("htk,hsk->hts", q_HxTxK, k_HxTxK).astype(jnp.float32)
      t = x_TxD.shape[0]
      visible_TxT = jnp.tril(jnp.ones((t, t), bool)) & (segment_T[:, None] == segment_T[None, :])
      logits_HxTxT = jnp.where(visible_TxT, logits_HxTxT / q_HxTxK.shape[-1] ** 0.5, -1e30)
      pattern_HxTxT = jax.nn.softmax(logits_HxTxT, axis=-1)
    else:
      pattern_HxTxT = jax.lax.stop_gradient(pattern_HxTxT)
    out_HxTxK = jnp.einsum("hts,hsk->htk", pattern_HxTxT.astype(x_TxD.dtype), v_HxTxK)
    y_TxD = jnp.einsum("htk,hkd->td", out_HxTxK, self.w_o_HxKxD.astype(x_TxD.dtype))
    return y_TxD, pattern_HxTxT
