"""Causal multi-head attention that returns its pattern and can use a given pattern instead.

The pattern is the softmax output [H, T, T]. Attention patching (twin models) feeds the
pattern of a reference model in place of the layer's own; gradients never flow into it.

`Attention.batch` does the work on a batch [B, T, D]; `__call__` is its single-example view.
Working on the batch, rather than vmapping single examples, keeps the projections 2-D
matmuls over all B * T tokens, whose weight gradients XLA:CPU computes without transposing
the [B * T, 3 D] cotangents.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


def rotary_table(
  positions_BxT: Int[Array, "B T"], key_size: int
) -> tuple[Float[Array, "B T 1 F"], Float[Array, "B T 1 F"]]:
  """cos and sin of the rotary angles, F = key_size / 2 frequencies. Positions given as a
  numpy array (the default ones) give numpy tables, which XLA sees as constants; XLA would
  otherwise recompute cos and sin inside every fusion that uses them (per head, per pass)."""
  xp = np if isinstance(positions_BxT, np.ndarray) else jnp
  freq_F = (10_000.0 ** (-xp.arange(0, key_size // 2) * 2 / key_size)).astype(np.float32)
  angle_BxTx1xF = positions_BxT[:, :, None, None].astype(np.float32) * freq_F
  return xp.cos(angle_BxTx1xF), xp.sin(angle_BxTx1xF)


def rotary(
  x_BxTxHxK: Float[Array, "B T H K"],
  cos_BxTx1xF: Float[Array, "B T 1 F"],
  sin_BxTx1xF: Float[Array, "B T 1 F"],
) -> Float[Array, "B T H K"]:
  """Rotary position embedding over the last axis (pairs of halves)."""
  k = x_BxTxHxK.shape[-1]
  x1, x2 = x_BxTxHxK[..., : k // 2], x_BxTxHxK[..., k // 2 :]
  cos, sin = cos_BxTx1xF.astype(x_BxTxHxK.dtype), sin_BxTx1xF.astype(x_BxTxHxK.dtype)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def cpu_layout() -> bool:
  """Whether `attend`'s backward lays its matmuls out for XLA:CPU (read at trace time)."""
  return jax.default_backend() == "cpu"


@jax.custom_vjp
def attend(
  q_BxHxTxK: Float[Array, "B H T K"],
  k_BxHxTxK: Float[Array, "B H T K"],
  v_BxHxTxK: Float[Array, "B H T K"],
  visible_BxTxT: Bool[Array, "B T T"],
) -> tuple[Float[Array, "B H T K"], Float[Array, "B H T T"]]:
  """(softmax(q k^T over visible keys) v, the softmax pattern); q comes pre-scaled.

  The hand-written backward reuses the saved pattern and lays out its batched matmuls for
  XLA:CPU's fast path (see _attend_bwd).
  """
  return _attend_fwd(q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, visible_BxTxT)[0]


def mix(
  pattern_BxHxTxT: Float[Array, "B H T T"], v_BxHxTxK: Float[Array, "B H T K"]
) -> Float[Array, "B H T K"]:
  """The pattern-weighted values (shared by `attend` and patching, which must agree)."""
  return jnp.einsum("bhts,bhsk->bhtk", pattern_BxHxTxT.astype(v_BxHxTxK.dtype), v_BxHxTxK)


def _attend_fwd(q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, visible_BxTxT):
  logits_BxHxTxT = jnp.einsum("bhtk,bhsk->bhts", q_BxHxTxK, k_BxHxTxK).astype(jnp.float32)
  # Every query sees at least itself, so no row is all -inf.
  logits_BxHxTxT = jnp.where(visible_BxTxT[:, None], logits_BxHxTxT, -jnp.inf)
  pattern_BxHxTxT = jax.nn.softmax(logits_BxHxTxT, axis=-1)
  out_BxHxTxK = mix(pattern_BxHxTxT, v_BxHxTxK)
  return (out_BxHxTxK, pattern_BxHxTxT), (q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, pattern_BxHxTxT)


def _attend_bwd(res, cotangents):
  q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, pattern_BxHxTxT = res
  dout_BxHxTxK, dpattern_BxHxTxT = cotangents
  dtype = v_BxHxTxK.dtype
  p_BxHxTxT = pattern_BxHxTxT.astype(dtype)
  # XLA:CPU runs a batched matmul on its fast path (a YNN fusion) only when the left operand
  # contracts its last axis. dv and dk contract over queries, so their [T, K] operands are
  # transposed to [K, T] and the results kept [K, T]; the barriers stop XLA from folding the
  # transposes back into the dots, which it would run as plain (3x slower) dots with the
  # [T, T] operand transposed. Small-shape training step +13% (64 x 112, 4 heads of 16).
  # Other backends take transposed operands for free, so they skip the barriers.
  barrier = jax.lax.optimization_barrier if cpu_layout() else lambda x: x
  dout_BxHxKxT, q_BxHxKxT = barrier(
    (jnp.swapaxes(dout_BxHxTxK, 2, 3), jnp.swapaxes(q_BxHxTxK, 2, 3))
  )
  dv_BxHxKxT = jnp.einsum("bhkt,bhts->bhks", dout_BxHxKxT, p_BxHxTxT)
  dp_BxHxTxT = jnp.einsum("bhtk,bhsk->bhts", dout_BxHxTxK, v_BxHxTxK).astype(jnp.float32)
  dp_BxHxTxT = dp_BxHxTxT + dpattern_BxHxTxT  # zero (and folded away) unless patterns are used
  dlogits_BxHxTxT = pattern_BxHxTxT * (
    dp_BxHxTxT - jnp.sum(dp_BxHxTxT * pattern_BxHxTxT, axis=-1, keepdims=True)
  )
  dlogits_BxHxTxT = dlogits_BxHxTxT.astype(dtype)
  dq_BxHxTxK = jnp.einsum("bhts,bhsk->bhtk", dlogits_BxHxTxT, k_BxHxTxK)
  dk_BxHxKxT = jnp.einsum("bhkt,bhts->bhks", q_BxHxKxT, dlogits_BxHxTxT)
  dk_BxHxKxT, dv_BxHxKxT = barrier((dk_BxHxKxT, dv_BxHxKxT))
  return (dq_BxHxTxK, jnp.swapaxes(dk_BxHxKxT, 2, 3), jnp.swapaxes(dv_BxHxKxT, 2, 3), None)


attend.defvjp(_attend_fwd, _attend_bwd)


def causal_attend(
  q_BxHxTxK: Float[Array, "B H T K"],
  k_BxHxTxK: Float[Array, "B H T K"],
  v_BxHxTxK: Float[Array, "B H T K"],
  visible_BxTxT: Bool[Array, "B T T"],
) -> tuple[Float[Array, "B H T K"], Float[Array, "B H T T"]]:
  """`attend` for a causal `visible` (no query sees a later key), in two query halves: the
  first half attends only to the first half of the keys, so the quarter of the [T, T] scores
  that the causal mask hides is never computed: faster attention, and two halves beat four
  blocks on a CPU (figures: docs/benchmarks.md). The returned pattern is the full [T, T] one."""
  t, half = q_BxHxTxK.shape[2], q_BxHxTxK.shape[2] // 2
  if half == 0:
    return attend(q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, visible_BxTxT)
  out0, pattern0_BxHxHalfxHalf = attend(
    q_BxHxTxK[:, :, :half],
    k_BxHxTxK[:, :, :half],
    v_BxHxTxK[:, :, :half],
    visible_BxTxT[:, :half, :half],
  )
  out1, pattern1_BxHxRestxT = attend(
    q_BxHxTxK[:, :, half:], k_BxHxTxK, v_BxHxTxK, visible_BxTxT[:, half:]
  )
  hidden = ((0, 0), (0, 0), (0, 0), (0, t - half))  # keys a first-half query cannot see
  pattern_BxHxTxT = jnp.concatenate(
    [jnp.pad(pattern0_BxHxHalfxHalf, hidden), pattern1_BxHxRestxT], 2
  )
  return jnp.concatenate([out0, out1], axis=2), pattern_BxHxTxT


def causal_mix(
  pattern_BxHxTxT: Float[Array, "B H T T"], v_BxHxTxK: Float[Array, "B H T K"]
) -> Float[Array, "B H T K"]:
  """`mix` of a causal pattern, in the query halves of `causal_attend`, so that a model fed its
  own patterns (patching) computes exactly what it computes unpatched."""
  half = pattern_BxHxTxT.shape[2] // 2
  if half == 0:
    return mix(pattern_BxHxTxT, v_BxHxTxK)
  out0 = mix(pattern_BxHxTxT[:, :, :half, :half], v_BxHxTxK[:, :, :half])
  return jnp.concatenate([out0, mix(pattern_BxHxTxT[:, :, half:], v_BxHxTxK)], axis=2)


class Attention(eqx.Module):
  """Multi-head causal self-attention with rotary positions."""

  w_qkv_Dx3xHxK: Float[Array, "D 3 H K"]  # query, key, value projections as one matmul
  w_o_HxKxD: Float[Array, "H K D"]

  def __init__(self, d_model: int, n_heads: int, key_size: int, *, key: PRNGKeyArray):
    k1, k2 = jax.random.split(key)
    self.w_qkv_Dx3xHxK = jax.random.normal(k1, (d_model, 3, n_heads, key_size)) / d_model**0.5
    self.w_o_HxKxD = (
      jax.random.normal(k2, (n_heads, key_size, d_model)) / (n_heads * key_size) ** 0.5
    )

  def __call__(
    self,
    x_TxD: Float[Array, "T D"],
    positions_T: Int[Array, " T"],
    segment_T: Int[Array, " T"],
    pattern_HxTxT: Float[Array, "H T T"] | None = None,
  ) -> tuple[Float[Array, "T D"], Float[Array, "H T T"]]:
    """Tokens attend to earlier tokens of the same segment (biography); a given pattern is
    used as is, without gradient, and the layer's own queries and keys are not used."""
    y_1xTxD, pattern_1xHxTxT = self.batch(
      x_TxD[None],
      positions_T[None],
      segment_T[None],
      None if pattern_HxTxT is None else pattern_HxTxT[None],
    )
    return y_1xTxD[0], pattern_1xHxTxT[0]

  def batch(
    self,
    x_BxTxD: Float[Array, "B T D"],
    positions_BxT: Int[Array, "B T"],
    segment_BxT: Int[Array, "B T"],
    pattern_BxHxTxT: Float[Array, "B H T T"] | None = None,
  ) -> tuple[Float[Array, "B T D"], Float[Array, "B H T T"]]:
    """`__call__` on a batch."""
    (b, t, d), (_, _, h, k) = x_BxTxD.shape, self.w_qkv_Dx3xHxK.shape
    dtype = x_BxTxD.dtype
    w_qkv_Dx3xHxK = self.w_qkv_Dx3xHxK.astype(dtype)
    x_NxD = x_BxTxD.reshape(b * t, d)
    qkv_BxTx3xHxK = (x_NxD @ w_qkv_Dx3xHxK.reshape(d, 3 * h * k)).reshape(b, t, 3, h, k)
    head_major = lambda x_BxTxHxK: jnp.swapaxes(x_BxTxHxK, 1, 2)
    v_BxHxTxK = head_major(qkv_BxTx3xHxK[:, :, 2])
    if pattern_BxHxTxT is None:
      cos_sin = rotary_table(positions_BxT, k)
      q_BxTxHxK = rotary(qkv_BxTx3xHxK[:, :, 0], *cos_sin) * k**-0.5
      k_BxTxHxK = rotary(qkv_BxTx3xHxK[:, :, 1], *cos_sin)
      visible_BxTxT = jnp.tril(jnp.ones((t, t), bool)) & (
        segment_BxT[:, :, None] == segment_BxT[:, None, :]
      )
      out_BxHxTxK, pattern_BxHxTxT = causal_attend(
        head_major(q_BxTxHxK), head_major(k_BxTxHxK), v_BxHxTxK, visible_BxTxT
      )
    else:
      pattern_BxHxTxT = jax.lax.stop_gradient(pattern_BxHxTxT)
      out_BxHxTxK = causal_mix(pattern_BxHxTxT, v_BxHxTxK)
    out_BxTxHxK = jnp.swapaxes(out_BxHxTxK, 1, 2)
    y_NxD = out_BxTxHxK.reshape(b * t, h * k) @ self.w_o_HxKxD.reshape(h * k, d).astype(dtype)
    return y_NxD.reshape(b, t, d), pattern_BxHxTxT
