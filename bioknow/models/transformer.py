"""Decoder-only pre-norm language model (Hoffmann et al. style) with a choice of sequence mixer.

Blocks are built stacked (one leading layer axis on every parameter) and applied with
`lax.scan`, which compiles one block instead of L. Each block: x += mixer(norm(x));
x += mlp(norm(x)). The mixer is attention (returns its pattern [H, T, T], accepts one to use
instead) or Hawk's RG-LRU recurrence (no pattern). Embeddings are tied.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from bioknow.models.attention import Attention
from bioknow.models.hawk import Hawk


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shape of the model. `preset` fills the shape fields; explicit fields override it."""

  preset: str = "paper"
  n_layers: int | None = None
  n_heads: int | None = None
  d_model: int | None = None
  d_mlp: int | None = None
  key_size: int | None = None
  mixer: str = "attention"  # 'attention' or 'hawk'

  def resolved(self) -> "ModelConfig":
    """Fills unset shape fields from the preset and checks them (one sentence if bad)."""
    if self.preset not in PRESETS:
      raise ValueError(f"model.preset: got {self.preset!r}; allowed: {', '.join(PRESETS)}.")
    if self.mixer not in ("attention", "hawk"):
      raise ValueError(f"model.mixer: got {self.mixer!r}; allowed: 'attention', 'hawk'.")
    shape = dict(zip(("n_layers", "n_heads", "d_model", "d_mlp"), PRESETS[self.preset]))
    shape = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in shape.items()}
    for k, v in shape.items():
      if not isinstance(v, int) or v < 1:
        raise ValueError(f"model.{k}: got {v!r}; it must be a positive integer.")
    if shape["d_model"] % shape["n_heads"]:
      raise ValueError(f"model.n_heads: {shape['n_heads']} heads do not divide d_model "
                       f"{shape['d_model']}; pick a divisor of d_model.")
    key_size = self.key_size or shape["d_model"] // shape["n_heads"]
    if key_size % 2:
      raise ValueError(f"model.key_size: got {key_size}; it must be even (rotary positions).")
    return dataclasses.replace(self, key_size=key_size, **shape)


# preset: (n_layers, n_heads, d_model, d_mlp); key size d_model / n_heads unless set.
UNROLL = 1  # layers unrolled per scan iteration
PRESETS = {
    "paper": (8, 8, 512, 2048),  # ~42M with the 32k vocabulary
    "paper_896": (12, 16, 896, 3584),
    "paper_1536": (12, 12, 1536, 6144),
    "small": (4, 4, 128, 512),  # ~1.3M with the 4k vocabulary
    "mini": (2, 4, 64, 256),  # ~0.36M with the 4k vocabulary: the quickstart
    "tiny": (2, 2, 32, 64),  # tests
}


class Block(eqx.Module):
  norm1_D: Float[Array, " D"]
  mixer: Attention | Hawk
  norm2_D: Float[Array, " D"]
  w_in_DxF: Float[Array, "D F"]
  w_out_FxD: Float[Array, "F D"]

  def __init__(self, cfg: ModelConfig, *, key: PRNGKeyArray):
    k_mix, k_in, k_out = jax.random.split(key, 3)
    d, f = cfg.d_model, cfg.d_mlp
    self.norm1_D = jnp.ones(d)
    self.norm2_D = jnp.ones(d)
    if cfg.mixer == "attention":
      self.mixer = Attention(d, cfg.n_heads, cfg.key_size, key=k_mix)
    else:
      self.mixer = Hawk(d, cfg.n_heads, key=k_mix)
    self.w_in_DxF = jax.random.normal(k_in, (d, f)) / d**0.5
    self.w_out_FxD = jax.random.normal(k_out, (f, d)) / f**0.5 / (2 * cfg.n_layers) ** 0.5

  def __call__(self, x_TxD, positions_T, segment_T, pattern_HxTxT=None):
    y_TxD, pattern = self.mixer(rms_norm(x_TxD, self.norm1_D), positions_T, segment_T,
                                pattern_HxTxT)
    x_TxD = x_TxD + y_TxD
    h_TxF = jax.nn.gelu(rms_norm(x_TxD, self.norm2_D) @ self.w_in_DxF.astype(x_TxD.dtype))
    return x_TxD + h_TxF @ self.w_out_FxD.astype(x_TxD.dtype), pattern


def rms_norm(x_TxD, scale_D, eps: float = 1e-6):
  x32 = x_TxD.astype(jnp.float32)
  x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (x32 * scale_D).astype(x_TxD.dtype)


class LanguageModel(eqx.Module):
  """Single-example model: tokens [T] -> logits [T, V] (position t predicts token t + 1)."""

  embed_VxD: Float[Array, "V D"]
  blocks: Block  # every array has a leading layer axis
  norm_D: Float[Array, " D"]
  cfg: ModelConfig = eqx.field(static=True)

  def __init__(self, cfg: ModelConfig, vocab_size: int, *, key: PRNGKeyArray):
    cfg = cfg.resolved()
    k_embed, k_blocks = jax.random.split(key)
    self.cfg = cfg
    self.embed_VxD = jax.random.normal(k_embed, (vocab_size, cfg.d_model)) / cfg.d_model**0.5
    self.blocks = eqx.filter_vmap(lambda k: Block(cfg, key=k))(
        jax.random.split(k_blocks, cfg.n_layers))
    self.norm_D = jnp.ones(cfg.d_model)

  def __call__(self, tokens_T: Int[Array, " T"], *, positions_T: Int[Array, " T"] | None = None,
               segment_T: Int[Array, " T"] | None = None,
               patterns_LxHxTxT: Float[Array, "L H T T"] | None = None,
               return_patterns: bool = False, dtype=jnp.float32):
    """Returns (logits [T, V] in float32, patterns [L, H, T, T] or None).

    positions_T / segment_T: position inside its biography and biography index of each token
    (default: one biography starting at 0), so a row may hold several biographies.
    `patterns_LxHxTxT` replaces every attention layer's pattern (patching); `dtype` is the
    compute dtype of activations and matmuls (parameters stay float32).
    """
    d = self.cfg.d_model
    if positions_T is None:
      positions_T = jnp.arange(tokens_T.shape[0])
    if segment_T is None:
      segment_T = jnp.zeros_like(tokens_T)
    x_TxD = (self.embed_VxD[tokens_T] * d**0.5).astype(dtype)
    params, static = eqx.partition(self.blocks, eqx.is_array)

    def layer(x_TxD, xs):
      block_params, pattern = xs
      x_TxD, pattern = eqx.combine(block_params, static)(x_TxD, positions_T, segment_T, pattern)
      return x_TxD, pattern if return_patterns else None

    x_TxD, patterns = jax.lax.scan(layer, x_TxD, (params, patterns_LxHxTxT), unroll=UNROLL)
    h_TxD = rms_norm(x_TxD, self.norm_D)
    logits_TxV = (h_TxD @ self.embed_VxD.T.astype(dtype)).astype(jnp.float32)
    return logits_TxV, patterns


def count_parameters(model: LanguageModel) -> dict[str, int]:
  """Parameter counts: all, and those other than the embedding table (for FLOP counts)."""
  total = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
  return {"total": total, "non_embedding": total - model.embed_VxD.size}
