"""Decoder-only pre-norm language model (Hoffmann et al. style) with a choice of sequence mixer.

Blocks are built stacked (one leading layer axis on every parameter) and applied with
`lax.scan`, which compiles one block instead of L. Each block: x += mixer(norm(x));
x += mlp(norm(x)). The mixer is attention (returns its pattern [H, T, T], accepts one to use
instead) or Hawk's RG-LRU recurrence (no pattern). Embeddings are tied.

The blocks work on a batch [B, T, D] with their projections as 2-D matmuls over all B * T
tokens: vmapping single examples makes XLA:CPU transpose every [B, T, F] cotangent for the
weight gradients, which cost more than the matmuls. `LanguageModel.__call__` (one example)
is the B = 1 view of `LanguageModel.batch`.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from bioknow.models.attention import Attention
from bioknow.models.hawk import Hawk
from bioknow.validate import check_int, is_int


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

  def resolved(self) -> "ModelShape":
    """Fills unset shape fields from the preset and checks them (one sentence if bad)."""
    if self.preset not in PRESETS:
      raise ValueError(f"model.preset: got {self.preset!r}; allowed: {', '.join(PRESETS)}.")
    if self.mixer not in ("attention", "hawk"):
      raise ValueError(f"model.mixer: got {self.mixer!r}; allowed: 'attention', 'hawk'.")
    shape = dict(zip(("n_layers", "n_heads", "d_model", "d_mlp"), PRESETS[self.preset]))
    shape = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in shape.items()}
    for k, v in shape.items():
      check_int(f"model.{k}", v, 1)
    if self.key_size is not None and not (is_int(self.key_size) and self.key_size >= 2):
      raise ValueError(
        f"model.key_size: got {self.key_size!r}; it must be None (d_model / n_heads) or an "
        "even integer >= 2."
      )
    if shape["d_model"] % shape["n_heads"]:
      raise ValueError(
        f"model.n_heads: {shape['n_heads']} heads do not divide d_model "
        f"{shape['d_model']}; pick a divisor of d_model."
      )
    key_size = self.key_size or shape["d_model"] // shape["n_heads"]
    if key_size % 2:
      raise ValueError(f"model.key_size: got {key_size}; it must be even (rotary positions).")
    return ModelShape(
      preset=self.preset,
      n_layers=shape["n_layers"],
      n_heads=shape["n_heads"],
      d_model=shape["d_model"],
      d_mlp=shape["d_mlp"],
      key_size=key_size,
      mixer=self.mixer,
    )


@dataclasses.dataclass(frozen=True)
class ModelShape:
  """A ModelConfig with every shape field filled in: what ModelConfig.resolved() returns and
  what the modules are built from."""

  preset: str
  n_layers: int
  n_heads: int
  d_model: int
  d_mlp: int
  key_size: int
  mixer: str

  def resolved(self) -> "ModelShape":
    return self


# Layers unrolled per scan iteration; None: by backend (unroll). On a CPU 4: a rolled loop
# stacks residuals with copies. Elsewhere every layer: XLA:GPU runs a scan as a while loop
# driven from the host, which keeps the host waiting on the device each iteration and adds
# the stacking copies; unrolled, the GPU step is faster (figures: docs/benchmarks.md).
UNROLL: int | None = None


def unroll(n_layers: int) -> int:
  """Layers unrolled per scan iteration (UNROLL)."""
  if UNROLL:
    return UNROLL
  return 4 if jax.default_backend() == "cpu" else n_layers


# preset: (n_layers, n_heads, d_model, d_mlp); key size d_model / n_heads unless set.
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

  def __init__(self, cfg: ModelShape, *, key: PRNGKeyArray):
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

  def __call__(self, x_BxTxD, positions_BxT, segment_BxT, pattern_BxHxTxT=None):
    """One block on a batch; the MLP runs as 2-D matmuls over all B * T tokens."""
    b, t, d = x_BxTxD.shape
    y_BxTxD, pattern = self.mixer.batch(
      rms_norm(x_BxTxD, self.norm1_D), positions_BxT, segment_BxT, pattern_BxHxTxT
    )
    return self.mlp((x_BxTxD + y_BxTxD).reshape(b * t, d)).reshape(b, t, d), pattern

  def tokens(self, x_KxD, index_K, shape, positions_BxT, segment_BxT, pattern_BxHxTxT=None):
    """One block on K tokens of a [B, T] batch (`index_K`: their flat positions in it, B * T
    for a filler): only the mixer sees the [B, T] layout, padding zeros there."""
    y_BxTxD, pattern = self.mixer.batch(
      to_rows(rms_norm(x_KxD, self.norm1_D), index_K, shape), positions_BxT, segment_BxT,
      pattern_BxHxTxT,
    )  # fmt: skip
    return self.mlp(x_KxD + from_rows(y_BxTxD, index_K)), pattern

  def mlp(self, x_NxD):
    """x + mlp(norm(x)) over N tokens."""
    dtype = x_NxD.dtype
    # Recomputing GELU in the backward pass from the pre-activation is cheaper on CPU than
    # saving and re-reading its intermediates.
    pre_NxF = rms_norm(x_NxD, self.norm2_D) @ self.w_in_DxF.astype(dtype)
    h_NxF = jax.checkpoint(jax.nn.gelu)(pre_NxF)
    return x_NxD + h_NxF @ self.w_out_FxD.astype(dtype)


def take(x_NxEtc, index_K):
  """x at flat positions index_K, where index N (one past the end) is a filler and reads
  zeros: how the real-token paths (training, evaluation) name the rows they leave out."""
  zero = jnp.zeros((1, *x_NxEtc.shape[1:]), x_NxEtc.dtype)
  return jnp.concatenate([x_NxEtc, zero])[index_K]


def put(x_KxEtc, index_K, n: int, fill=0):
  """`take` reversed: an [N, ...] array of `fill` with x_K at index_K (fillers, index N,
  dropped)."""
  out = jnp.full((n + 1, *x_KxEtc.shape[1:]), fill, x_KxEtc.dtype)
  return out.at[index_K].set(x_KxEtc)[:-1]


def to_rows(x_KxD, index_K, shape: tuple[int, int]):
  """K tokens into a zero [B, T, D] batch at their flat positions (index B * T: dropped)."""
  (b, t), d = shape, x_KxD.shape[-1]
  return put(x_KxD, index_K, b * t).reshape(b, t, d)


def from_rows(x_BxTxD, index_K):
  """The K tokens of a [B, T, D] batch at their flat positions (index B * T: zeros)."""
  b, t, d = x_BxTxD.shape
  return take(x_BxTxD.reshape(b * t, d), index_K)


def rms_norm(x_etcxD, scale_D, eps: float = 1e-6):
  """Normalises over the last axis, in float32."""
  x32 = x_etcxD.astype(jnp.float32)
  x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (x32 * scale_D).astype(x_etcxD.dtype)


class LanguageModel(eqx.Module):
  """Single-example model: tokens [T] -> logits [T, V] (position t predicts token t + 1).

  `__call__` is the single-example view of `batch` (tokens [B, T]); vmapping `__call__` works,
  but `batch` is much faster on a batch.
  """

  embed_VxD: Float[Array, "V D"]
  blocks: Block  # every array has a leading layer axis
  norm_D: Float[Array, " D"]
  cfg: ModelShape = eqx.field(static=True)

  def __init__(self, cfg: ModelConfig | ModelShape, vocab_size: int, *, key: PRNGKeyArray):
    cfg = cfg.resolved()
    k_embed, k_blocks = jax.random.split(key)
    self.cfg = cfg
    self.embed_VxD = jax.random.normal(k_embed, (vocab_size, cfg.d_model)) / cfg.d_model**0.5
    self.blocks = eqx.filter_vmap(lambda k: Block(cfg, key=k))(
      jax.random.split(k_blocks, cfg.n_layers)
    )
    self.norm_D = jnp.ones(cfg.d_model)

  def __call__(
    self,
    tokens_T: Int[Array, " T"],
    *,
    positions_T: Int[Array, " T"] | None = None,
    segment_T: Int[Array, " T"] | None = None,
    patterns_LxHxTxT: Float[Array, "L H T T"] | None = None,
    return_patterns: bool = False,
    dtype=jnp.float32,
  ):
    """Returns (logits [T, V] in float32, patterns [L, H, T, T] or None).

    positions_T / segment_T: position inside its biography and biography index of each token
    (default: one biography starting at 0), so a row may hold several biographies.
    `patterns_LxHxTxT` replaces every attention layer's pattern (patching); `dtype` is the
    compute dtype of activations and matmuls (parameters stay float32).
    """
    add_batch = lambda x: None if x is None else x[None]
    logits_1xTxV, patterns = self.batch(
      tokens_T[None],
      positions_BxT=add_batch(positions_T),
      segment_BxT=add_batch(segment_T),
      patterns_BxLxHxTxT=add_batch(patterns_LxHxTxT),
      return_patterns=return_patterns,
      dtype=dtype,
    )
    return logits_1xTxV[0], None if patterns is None else patterns[0]

  def batch(
    self,
    tokens_BxT: Int[Array, "B T"],
    *,
    positions_BxT: Int[Array, "B T"] | np.ndarray | None = None,
    segment_BxT: Int[Array, "B T"] | None = None,
    patterns_BxLxHxTxT: Float[Array, "B L H T T"] | None = None,
    return_patterns: bool = False,
    dtype=jnp.float32,
  ):
    """`__call__` on a batch: (logits [B, T, V] in float32, patterns [B, L, H, T, T] or None)."""
    h_BxTxD, patterns = self.features(
      tokens_BxT,
      positions_BxT=positions_BxT,
      segment_BxT=segment_BxT,
      patterns_BxLxHxTxT=patterns_BxLxHxTxT,
      return_patterns=return_patterns,
      dtype=dtype,
    )
    logits_BxTxV = (h_BxTxD @ self.embed_VxD.T.astype(dtype)).astype(jnp.float32)
    return logits_BxTxV, patterns

  def features(
    self,
    tokens_BxT: Int[Array, "B T"],
    *,
    positions_BxT: Int[Array, "B T"] | np.ndarray | None = None,
    segment_BxT: Int[Array, "B T"] | None = None,
    patterns_BxLxHxTxT: Float[Array, "B L H T T"] | None = None,
    return_patterns: bool = False,
    dtype=jnp.float32,
  ):
    """`batch` without the output layer: (final normalised hidden states [B, T, D] in `dtype`,
    patterns), for losses that apply the tied output layer themselves."""
    positions_BxT, segment_BxT = _default_layout(tokens_BxT, positions_BxT, segment_BxT)
    x_BxTxD = (self.embed_VxD[tokens_BxT] * self.cfg.d_model**0.5).astype(dtype)
    apply = lambda block, x_BxTxD, pattern: block(x_BxTxD, positions_BxT, segment_BxT, pattern)
    return self._scan_blocks(x_BxTxD, apply, patterns_BxLxHxTxT, return_patterns)

  def token_features(
    self,
    tokens_BxT: Int[Array, "B T"],
    index_K: Int[Array, " K"],
    *,
    positions_BxT: Int[Array, "B T"] | np.ndarray | None = None,
    segment_BxT: Int[Array, "B T"] | None = None,
    patterns_BxLxHxTxT: Float[Array, "B L H T T"] | None = None,
    dtype=jnp.float32,
  ) -> Float[Array, "K D"]:
    """`features` of the K tokens at flat positions `index_K` of the batch (B * T: a filler,
    computed on zeros), the others never computed: embeddings, norms, MLPs and the output
    layer run on K rows; the mixer on the [B, T] layout. Equal to `features` at those tokens
    when `index_K` holds every token the kept ones attend to (all real tokens do: padding
    ends a row and nothing attends to it)."""
    positions_BxT, segment_BxT = _default_layout(tokens_BxT, positions_BxT, segment_BxT)
    b, t = tokens_BxT.shape
    tokens_K = take(tokens_BxT.reshape(b * t), index_K)
    x_KxD = (self.embed_VxD[tokens_K] * self.cfg.d_model**0.5).astype(dtype)
    apply = lambda block, x_KxD, pattern: block.tokens(
      x_KxD, index_K, (b, t), positions_BxT, segment_BxT, pattern
    )
    return self._scan_blocks(x_KxD, apply, patterns_BxLxHxTxT, False)[0]

  def _scan_blocks(self, x, apply, patterns_BxLxHxTxT, return_patterns: bool):
    """apply(block, x, pattern) -> (x, pattern) over the stacked blocks (lax.scan), then the
    final norm; returns (x, patterns [B, L, H, T, T] or None)."""
    params, static = eqx.partition(self.blocks, eqx.is_array)
    if patterns_BxLxHxTxT is not None:  # scanned over layers
      patterns_BxLxHxTxT = jnp.moveaxis(patterns_BxLxHxTxT, 1, 0)

    def layer(x, xs):
      block_params, pattern = xs
      x, pattern = apply(eqx.combine(block_params, static), x, pattern)
      return x, pattern if return_patterns else None

    x, patterns = jax.lax.scan(
      layer, x, (params, patterns_BxLxHxTxT), unroll=unroll(self.cfg.n_layers)
    )
    if patterns is not None:
      patterns = jnp.moveaxis(patterns, 0, 1)
    return rms_norm(x, self.norm_D), patterns


def _default_layout(tokens_BxT, positions_BxT, segment_BxT):
  """Positions (default: 0..T-1, numpy, so that rotary tables are compile-time constants) and
  segments (default: one biography per row) of a batch."""
  if positions_BxT is None:
    positions_BxT = np.broadcast_to(np.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
  if segment_BxT is None:
    segment_BxT = jnp.zeros_like(tokens_BxT)
  return positions_BxT, segment_BxT


def flops_per_token(cfg: ModelConfig | ModelShape, vocab_size: int, seq_len: int) -> float:
  """Model FLOPs to train on one token: 6 x parameters (the tied table counted once, as the
  output layer; lookups are free) + 12 x layers x d_model x seq_len (attention)."""
  cfg = cfg.resolved()
  shapes = jax.eval_shape(lambda: LanguageModel(cfg, vocab_size, key=jax.random.key(0)))
  params = sum(x.size for x in jax.tree.leaves(shapes))
  return 6 * params + 12 * cfg.n_layers * cfg.d_model * seq_len


def count_parameters(model: LanguageModel) -> dict[str, int]:
  """Parameter counts: all, and those other than the embedding table (for FLOP counts)."""
  total = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
  return {"total": total, "non_embedding": total - model.embed_VxD.size}
