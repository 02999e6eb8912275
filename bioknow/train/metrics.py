"""Losses and metrics: pure functions of logits, tokens, roles, attribute and sentence ids.

Conventions: logits[:, t] predicts token t + 1, so per-position quantities are shifted to the
position of the token they score ("target" positions t >= 1). Attribute loss is the summed
cross-entropy over a value's tokens (not divided by its length), averaged over attributes and
sequences; an attribute is correct only if all its value tokens are the greedy prediction.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from bioknow.data.biography import (
  ROLE_FIRST_VALUE,
  ROLE_LAST_NAME,
  ROLE_NAME,
  ROLE_PAD,
  ROLE_TEXT,
  ROLE_VALUE,
)
from bioknow.models.transformer import put, take


def _shift(x_BxT, fill):
  """Moves the prediction made at t - 1 onto target position t."""
  return jnp.concatenate([jnp.full_like(x_BxT[:, :1], fill), x_BxT[:, :-1]], axis=1)


def scores_of(logits_NxV: Float[Array, "N V"], target_N: Int[Array, " N"]) -> dict:
  """Per prediction [N]: log-probability of its target, greedy correctness, and the
  max-probability and entropy of the predictive distribution."""
  logp_NxV = jax.nn.log_softmax(logits_NxV.astype(jnp.float32), axis=-1)
  return {
    "logp": jnp.take_along_axis(logp_NxV, target_N[..., None], axis=-1)[..., 0],
    "correct": jnp.argmax(logp_NxV, axis=-1) == target_N,
    "max_prob": jnp.exp(jnp.max(logp_NxV, axis=-1)),
    "entropy": -jnp.sum(jnp.exp(logp_NxV) * logp_NxV, axis=-1),
  }


# What a position that is not scored holds: the first position of a row, and, in
# `value_token_scores`, every position but the value tokens.
UNSCORED = {"logp": 0.0, "correct": True, "max_prob": 0.0, "entropy": 0.0}


def token_scores(logits_BxTxV: Float[Array, "B T V"], tokens_BxT: Int[Array, "B T"]) -> dict:
  """Per target position [B, T]: `scores_of` the prediction made at t - 1."""
  next_BxT = jnp.concatenate([tokens_BxT[:, 1:], tokens_BxT[:, :1]], axis=1)
  scores = jax.vmap(scores_of)(logits_BxTxV, next_BxT)
  return {k: _shift(v, UNSCORED[k]) for k, v in scores.items()}


def value_token_scores(
  h_BxTxD: Float[Array, "B T D"],
  embed_VxD: Float[Array, "V D"],
  tokens_BxT: Int[Array, "B T"],
  role_BxT: Int[Array, "B T"],
  n_scored: int,
) -> dict:
  """`token_scores` at the value tokens only (what `attribute_metrics` reads), from the final
  hidden states and the tied output layer: logits for n_scored positions (at least the
  batch's value tokens: the caller checks), not B x T of them."""
  b, t, d = h_BxTxD.shape
  (target_K,) = jnp.nonzero(
    (role_BxT >= ROLE_VALUE).reshape(b * t), size=n_scored, fill_value=b * t
  )
  # A value token is never first in its row, so its prediction is the one before it; fillers
  # read a zero row past the end and are scattered there, then dropped.
  source_K = jnp.where(target_K < b * t, target_K - 1, b * t)
  h_KxD = take(h_BxTxD.reshape(b * t, d), source_K)
  logits_KxV = (h_KxD @ embed_VxD.T.astype(h_KxD.dtype)).astype(jnp.float32)
  scores = scores_of(logits_KxV, take(tokens_BxT.reshape(b * t), target_K))
  return {k: put(v, target_K, b * t, UNSCORED[k]).reshape(b, t) for k, v in scores.items()}


def next_token_loss(logits_BxTxV, tokens_BxT, role_BxT) -> Float[Array, ""]:
  """Mean cross-entropy over every real target token (BOS and padding are not targets)."""
  logp_BxT = token_scores(logits_BxTxV, tokens_BxT)["logp"]
  target_BxT = role_BxT != ROLE_PAD
  target_BxT = target_BxT.at[:, 0].set(False)
  return -jnp.sum(jnp.where(target_BxT, logp_BxT, 0.0)) / jnp.maximum(target_BxT.sum(), 1)


def attribute_metrics(scores: dict, role_BxT, attribute_BxT, n_attributes: int) -> dict:
  """Per sequence and attribute type [B, A]: loss, correctness, and at the first value token
  the max-probability and entropy of the prediction."""
  is_value_BxT = role_BxT >= ROLE_VALUE
  onehot_BxTxA = attribute_BxT[..., None] == jnp.arange(n_attributes)
  value_BxTxA = onehot_BxTxA & is_value_BxT[..., None]
  first_BxTxA = onehot_BxTxA & (role_BxT == ROLE_FIRST_VALUE)[..., None]
  wrong_BxT = (~scores["correct"]).astype(jnp.float32)
  return {
    "loss": -jnp.einsum("bt,bta->ba", scores["logp"], value_BxTxA),
    "correct": jnp.einsum("bt,bta->ba", wrong_BxT, value_BxTxA) == 0,
    "max_prob": jnp.einsum("bt,bta->ba", scores["max_prob"], first_BxTxA),
    "entropy": jnp.einsum("bt,bta->ba", scores["entropy"], first_BxTxA),
  }


def attention_statistics(
  patterns_BxLxHxTxT: Float[Array, "B L H T T"], role_BxT, sentence_BxT
) -> dict:
  """Per layer [L]: summed attention weights on a key set, averaged over query occurrences,
  heads and sequences, plus sharpness.

  name_to_name: from each last name token to the other name tokens of its sentence.
  value_to_name / value_to_text: from the position predicting a first value token to the name
  tokens / template text tokens of that value's sentence.
  sharpness: attention entropy / ln(number of attendable tokens), over real query positions
  with at least two attendable tokens (1 = uniform).
  """
  is_name_BxT = (role_BxT == ROLE_NAME) | (role_BxT == ROLE_LAST_NAME)
  same_BxTxT = sentence_BxT[:, :, None] == sentence_BxT[:, None, :]
  # Query q predicts the first value token at q + 1; the keys belong to that token's sentence.
  predicts_first_BxT = jnp.concatenate(
    [role_BxT[:, 1:] == ROLE_FIRST_VALUE, jnp.zeros_like(role_BxT[:, :1], bool)], axis=1
  )
  target_sentence_BxT = jnp.concatenate([sentence_BxT[:, 1:], sentence_BxT[:, :1]], axis=1)
  same_target_BxTxT = target_sentence_BxT[:, :, None] == sentence_BxT[:, None, :]

  def mean_mass(query_BxT: Bool[Array, "B T"], key_BxTxT: Bool[Array, "B T T"]):
    mass_BxLxHxT = jnp.einsum("blhqk,bqk->blhq", patterns_BxLxHxTxT, key_BxTxT.astype(jnp.float32))
    total_L = jnp.einsum("blhq,bq->l", mass_BxLxHxT, query_BxT.astype(jnp.float32))
    return total_L / (patterns_BxLxHxTxT.shape[2] * jnp.maximum(query_BxT.sum(), 1))

  p = patterns_BxLxHxTxT
  entropy_BxLxHxT = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), -1)
  n_keys_T = jnp.arange(p.shape[-1]) + 1
  query_BxT = (role_BxT != ROLE_PAD) & (n_keys_T >= 2)
  sharp_BxLxHxT = entropy_BxLxHxT / jnp.log(jnp.maximum(n_keys_T, 2))
  sharpness_L = jnp.einsum("blht,bt->l", sharp_BxLxHxT, query_BxT.astype(jnp.float32)) / (
    p.shape[2] * jnp.maximum(query_BxT.sum(), 1)
  )
  return {
    "attn_name_to_name": mean_mass(
      role_BxT == ROLE_LAST_NAME, same_BxTxT & (role_BxT == ROLE_NAME)[:, None, :]
    ),
    "attn_value_to_name": mean_mass(predicts_first_BxT, same_target_BxTxT & is_name_BxT[:, None]),
    "attn_value_to_text": mean_mass(
      predicts_first_BxT, same_target_BxTxT & (role_BxT == ROLE_TEXT)[:, None, :]
    ),
    "attn_sharpness": sharpness_L,
  }


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
  """Area under the ROC curve of a score separating positives from negatives (ties count
  half): the probability that a random positive scores above a random negative."""
  scores = np.concatenate([positive, negative])
  order = np.argsort(scores, kind="mergesort")
  ranks = np.empty(len(scores))
  sorted_scores = scores[order]
  # Average ranks over ties.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
  n_pos, n_neg = len(positive), len(negative)
  return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
