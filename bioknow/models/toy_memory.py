"""The toy associative memory of the paper's Appendix F.4: a one-hidden-layer ReLU MLP.

A key (a fixed random unit vector standing for a name) goes through one hidden layer of ReLU
units to a vector in the embedding space; its logits are the dot products with the fixed random
unit embeddings of the possible values (a tied read-out, as the language model's unembedding):

  logits_V = values_VxD (W_out relu(W_in key_D + b_in) + b_out)

Only W_in, b_in, W_out, b_out are trained; key and value embeddings are inputs, never
parameters, so neither the optimizer nor weight decay touches them.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class ToyMemory(eqx.Module):
  w_in_HxD: Float[Array, "H D"]
  b_in_H: Float[Array, " H"]
  w_out_DxH: Float[Array, "D H"]
  b_out_D: Float[Array, " D"]

  def __init__(self, d_embed: int, d_hidden: int, *, key: PRNGKeyArray):
    k_in, k_out = jax.random.split(key)
    # Keys have unit norm, so unit-variance rows give hidden pre-activations of unit variance
    # (a 1/sqrt(D) scale would shrink them to 1/sqrt(D) for unit-norm inputs).
    self.w_in_HxD = jax.random.normal(k_in, (d_hidden, d_embed))
    self.b_in_H = jnp.zeros(d_hidden)
    # He scaling: the output has unit variance per coordinate, so logits against unit value
    # vectors start with unit variance.
    self.w_out_DxH = jax.random.normal(k_out, (d_embed, d_hidden)) * (2.0 / d_hidden) ** 0.5
    self.b_out_D = jnp.zeros(d_embed)

  def __call__(
    self, key_D: Float[Array, " D"], values_VxD: Float[Array, "V D"]
  ) -> Float[Array, " V"]:
    """Logits over the values for one key."""
    hidden_H = jax.nn.relu(self.w_in_HxD @ key_D + self.b_in_H)
    return values_VxD @ (self.w_out_DxH @ hidden_H + self.b_out_D)

  def batch(
    self, keys_BxD: Float[Array, "B D"], values_VxD: Float[Array, "V D"]
  ) -> Float[Array, "B V"]:
    return jax.vmap(self, in_axes=(0, None))(keys_BxD, values_VxD)
