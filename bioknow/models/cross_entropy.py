"""The next-token loss of a model with tied embeddings, from its final hidden states:
sum_n weights_n * -log softmax(h_n @ embed^T)[targets_n], with its gradient computed in the
same pass, a chunk of tokens at a time (the training step's loss; see tied_cross_entropy)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

# Tokens of the loss are processed in chunks of about this many logits (16 MB of float32).
CE_CHUNK_LOGITS = 2**22


@jax.custom_vjp
def tied_cross_entropy(
  h_NxD: Float[Array, "N D"],
  embed_VxD: Float[Array, "V D"],
  targets_N: Int[Array, " N"],
  weights_N: Float[Array, " N"],
) -> Float[Array, ""]:
  """sum_n weights_n * -log softmax(h_n @ embed^T)[targets_n]: the loss that log_softmax and a
  gather of the model's logits give, for hidden states of any number of tokens.

  The gradient is computed with the loss (its cotangent is a scalar), so the logits are
  materialised once and read twice, instead of the log_softmax, gather, scatter and
  transposes that autodiff of the plain version costs; and they are materialised a chunk of
  tokens at a time, so a step touches (and page-faults) less fresh memory.
  """
  return _tied_cross_entropy_fwd(h_NxD, embed_VxD, targets_N, weights_N)[0]


def _token_chunks(n: int, v: int, d: int) -> int:
  """Number of equal token chunks: logits of about CE_CHUNK_LOGITS per chunk, but at least
  4 d tokens per chunk, which keeps re-reading the [V, D] gradient accumulator cheap."""
  sizes = [n // c for c in range(1, n + 1) if n % c == 0]  # decreasing
  fits = [m for m in sizes if m * v <= CE_CHUNK_LOGITS and m >= 4 * d]
  return n // fits[0] if fits else 1


def _cross_entropy_and_grads(h_NxD, embed_VxD, targets_N, weights_N):
  """(loss, d loss / d h, d loss / d embed) of one chunk of tokens."""
  dtype = h_NxD.dtype
  logits_NxV = (h_NxD @ embed_VxD.T.astype(dtype)).astype(jnp.float32)
  lse_N = jax.nn.logsumexp(logits_NxV, axis=-1)
  target_logit_N = jnp.take_along_axis(logits_NxV, targets_N[:, None], axis=-1)[:, 0]
  loss = jnp.sum(weights_N * (lse_N - target_logit_N))
  # d loss / d logits = weight * (softmax - onehot(target)).
  onehot_NxV = targets_N[:, None] == jnp.arange(logits_NxV.shape[1])
  dlogits_NxV = (weights_N[:, None] * (jnp.exp(logits_NxV - lse_N[:, None]) - onehot_NxV)).astype(
    dtype
  )
  dh_NxD = dlogits_NxV @ embed_VxD.astype(dtype)
  dembed_VxD = jnp.einsum("nv,nd->vd", dlogits_NxV, h_NxD, preferred_element_type=jnp.float32)
  return loss, dh_NxD, dembed_VxD


def _tied_cross_entropy_fwd(h_NxD, embed_VxD, targets_N, weights_N):
  (n, d), v = h_NxD.shape, embed_VxD.shape[0]
  c = _token_chunks(n, v, d)
  if c == 1:
    loss, dh_NxD, dembed_VxD = _cross_entropy_and_grads(h_NxD, embed_VxD, targets_N, weights_N)
    return loss, (dh_NxD, dembed_VxD)

  def chunk(dembed_VxD, xs):
    h_MxD, targets_M, weights_M = xs
    loss, dh_MxD, dembed_chunk_VxD = _cross_entropy_and_grads(
      h_MxD, embed_VxD, targets_M, weights_M
    )
    return dembed_VxD + dembed_chunk_VxD, (loss, dh_MxD)

  m = n // c
  xs = (h_NxD.reshape(c, m, d), targets_N.reshape(c, m), weights_N.reshape(c, m))
  dembed_VxD, (loss_C, dh_CxMxD) = jax.lax.scan(chunk, jnp.zeros(embed_VxD.shape, jnp.float32), xs)
  return loss_C.sum(), (dh_CxMxD.reshape(n, d), dembed_VxD)


def _tied_cross_entropy_bwd(res, g):
  dh_NxD, dembed_VxD = res
  return (g * dh_NxD).astype(dh_NxD.dtype), g * dembed_VxD, None, None


tied_cross_entropy.defvjp(_tied_cross_entropy_fwd, _tied_cross_entropy_bwd)
