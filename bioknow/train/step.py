"""Optimizer, and the jitted train and evaluation steps, data parallel over local devices.

Parameters and optimizer state are replicated; batches are split along their first axis over
a one-axis mesh ("data") with NamedSharding, and XLA inserts the gradient all-reduce. The
step index travels as an array, so nothing recompiles as training advances.
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from bioknow.models.cross_entropy import tied_cross_entropy
from bioknow.models.transformer import LanguageModel, take
from bioknow.train import metrics
from bioknow.validate import check_number


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """AdamW with a cosine decay from lr to lr_end and no warm-up (the paper's defaults);
  schedule='constant' keeps lr (fine-tuning). Weight decay applies to matrices only."""

  lr: float = 4e-4
  lr_end: float = 1e-7
  schedule: str = "cosine"
  b1: float = 0.9
  b2: float = 0.95
  weight_decay: float = 0.1
  eps: float = 1e-8

  def check(self) -> None:
    """Validates the fields (one sentence naming the field)."""
    for name in ("lr", "lr_end", "b1", "b2", "weight_decay", "eps"):
      check_number(f"optimizer.{name}", getattr(self, name))
    if not self.lr > 0:
      raise ValueError(f"optimizer.lr: got {self.lr!r}; it must be > 0.")
    if not self.eps > 0:
      raise ValueError(f"optimizer.eps: got {self.eps!r}; it must be > 0 (Adam divides by it).")
    if self.schedule not in ("cosine", "constant"):
      raise ValueError(f"optimizer.schedule: got {self.schedule!r}; allowed: 'cosine', 'constant'.")
    if not 0 <= self.lr_end <= self.lr:
      raise ValueError(f"optimizer.lr_end: got {self.lr_end!r}; allowed: 0 <= lr_end <= lr.")
    for name in ("b1", "b2"):
      if not 0 <= getattr(self, name) < 1:
        raise ValueError(f"optimizer.{name}: got {getattr(self, name)!r}; allowed: [0, 1).")
    if self.weight_decay < 0:
      raise ValueError(f"optimizer.weight_decay: got {self.weight_decay!r}; it must be >= 0.")


def learning_rate(cfg: OptimizerConfig, n_steps: int) -> Callable:
  """The lr as a function of the optimizer's schedule step."""
  if cfg.schedule == "constant":
    return optax.constant_schedule(cfg.lr)
  return optax.cosine_decay_schedule(cfg.lr, max(n_steps, 1), alpha=cfg.lr_end / cfg.lr)


def make_optimizer(cfg: OptimizerConfig, lr_schedule: Callable) -> optax.GradientTransformation:
  """AdamW following `lr_schedule` (from learning_rate: built once, and also what the loop
  logs)."""
  decay_mask = lambda params: jax.tree.map(lambda x: x.ndim >= 2, params)
  return optax.adamw(
    lr_schedule,
    b1=cfg.b1,
    b2=cfg.b2,
    eps=cfg.eps,
    weight_decay=cfg.weight_decay,
    mask=decay_mask,
  )


def _is_schedule_state(x) -> bool:
  return isinstance(x, optax.ScaleByScheduleState)


def schedule_step(opt_state) -> int:
  """The step at which the optimizer evaluates its lr schedule (its schedule count)."""
  counts = [
    s.count for s in jax.tree.leaves(opt_state, is_leaf=_is_schedule_state) if _is_schedule_state(s)
  ]
  if not counts:
    raise ValueError("the optimizer state has no lr schedule count (build it with make_optimizer).")
  return int(counts[0])


def fresh_state(optimizer: optax.GradientTransformation, params, schedule_at: int):
  """A re-initialised optimizer state (zero Adam moments, Adam's bias correction from its
  start) whose lr schedule stands at step `schedule_at`: resetting the optimizer mid-run
  does not restart the lr schedule."""
  state = optimizer.init(params)
  return jax.tree.map(
    lambda s: s._replace(count=jnp.full_like(s.count, schedule_at)) if _is_schedule_state(s) else s,
    state,
    is_leaf=_is_schedule_state,
  )


def data_mesh(n_devices: int | None = None) -> jax.sharding.Mesh:
  devices = jax.local_devices()[:n_devices]
  return jax.sharding.Mesh(np.array(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(batch: dict, mesh: jax.sharding.Mesh) -> dict:
  """Puts host arrays on the devices, split along the batch axis."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return {k: jax.device_put(v, sharding) for k, v in batch.items()}


def model_inputs(batch: dict) -> dict:
  """The arrays the train step reads, from a plain ([B, T]) or a packed ([R, L]) batch."""
  if "tokens_RxL" in batch:
    return {
      "tokens": batch["tokens_RxL"],
      "role": batch["role_RxL"],
      "positions": batch["position_RxL"],
      "segment": batch["segment_RxL"],
    }
  return {"tokens": batch["tokens_BxT"], "role": batch["role_BxT"]}


def replicate(tree, mesh: jax.sharding.Mesh):
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(lambda x: jax.device_put(x, sharding) if eqx.is_array(x) else x, tree)


class _Static(eqx.Module):
  """A jitted function's non-array outputs, carried in the output's structure."""

  value: Any = eqx.field(static=True)


def async_jit(fn: Callable | None = None, *, donate_argnums: tuple[int, ...] = ()):
  """eqx.filter_jit without its wait: the arrays among the arguments are traced, everything
  else is static (hashed, so a new value compiles anew); the arrays of the positional
  arguments in donate_argnums are donated. equinox's filter_jit (0.13) blocks every call
  until the outputs are ready, so the host cannot queue step k + 1 while the device runs
  step k, and the device idles between steps (docs/benchmarks.md). This returns as soon as
  the work is queued."""
  if fn is None:
    return functools.partial(async_jit, donate_argnums=donate_argnums)
  signature = inspect.signature(fn)

  @functools.partial(jax.jit, static_argnums=2, donate_argnums=0)
  def jitted(donated, kept, static):
    leaves, treedef = static
    dynamic = tuple(d if i in donate_argnums else k for i, (d, k) in enumerate(zip(donated, kept)))
    out = fn(*eqx.combine(dynamic, jax.tree.unflatten(treedef, leaves)))
    arrays, rest = eqx.partition(out, eqx.is_array)
    return arrays, _Static(rest)

  @functools.wraps(fn)
  def call(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    dynamic, static = eqx.partition(tuple(bound.arguments.values()), eqx.is_array)
    donated = tuple(d if i in donate_argnums else None for i, d in enumerate(dynamic))
    kept = tuple(None if i in donate_argnums else d for i, d in enumerate(dynamic))
    leaves, treedef = jax.tree.flatten(static)
    arrays, rest = jitted(donated, kept, (tuple(leaves), treedef))
    return eqx.combine(arrays, rest.value)

  return call


def _forward(model: LanguageModel, tokens_BxT, dtype, patterns=None, return_patterns=False):
  return model.batch(
    tokens_BxT, patterns_BxLxHxTxT=patterns, return_patterns=return_patterns, dtype=dtype
  )


@async_jit(donate_argnums=(1, 2))  # the model and the optimizer state
def train_step(
  optimizer: optax.GradientTransformation,
  model: LanguageModel,
  opt_state,
  tokens_BxT,
  role_BxT,
  dtype=jnp.float32,
  patterns_BxLxHxTxT=None,
  positions_BxT=None,
  segment_BxT=None,
  n_compute: int | None = None,
):
  """One AdamW step on the mean next-token loss; returns (model, opt_state, loss).

  Rows may hold several biographies (packing): positions_BxT / segment_BxT give each token's
  position in its biography and the biography's index (default: one biography per row).
  n_compute: compute only the batch's real tokens, in n_compute rows (at least as many as
  it has: the caller checks); None computes every position, padding included.
  """
  if positions_BxT is None:  # numpy: compile-time constants (see LanguageModel.features)
    positions_BxT = np.broadcast_to(np.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
  # metrics.next_token_loss without materialising [B, T, V] log-probabilities: position t
  # predicts token t + 1 where that token is a real target: not padding, and not the BOS
  # that starts the next biography of a packed row.
  target_BxT = (role_BxT != metrics.ROLE_PAD) & (positions_BxT != 0)
  weight_BxT = jnp.concatenate([target_BxT[:, 1:], jnp.zeros_like(target_BxT[:, :1])], axis=1)
  weight_BxT = weight_BxT / jnp.maximum(target_BxT.sum(), 1)
  next_BxT = jnp.concatenate([tokens_BxT[:, 1:], tokens_BxT[:, :1]], axis=1)

  b, t = tokens_BxT.shape
  next_N, weight_N = next_BxT.reshape(b * t), weight_BxT.reshape(b * t)
  if n_compute is not None:
    # Real tokens' flat positions, then fillers at B * T (a zero-weight slot past the end).
    (index_K,) = jnp.nonzero(
      role_BxT.reshape(b * t) != metrics.ROLE_PAD, size=n_compute, fill_value=b * t
    )
    next_N, weight_N = take(next_N, index_K), take(weight_N, index_K)

  def loss_fn(model):
    inputs = dict(
      positions_BxT=positions_BxT,
      segment_BxT=segment_BxT,
      patterns_BxLxHxTxT=patterns_BxLxHxTxT,
      dtype=dtype,
    )
    if n_compute is None:
      h_BxTxD, _ = model.features(tokens_BxT, **inputs)
      h_NxD = h_BxTxD.reshape(b * t, -1)
    else:
      h_NxD = model.token_features(tokens_BxT, index_K, **inputs)
    return tied_cross_entropy(h_NxD, model.embed_VxD, next_N, weight_N)

  loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
  updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
  return eqx.apply_updates(model, updates), opt_state, loss


@async_jit
def eval_step(
  model: LanguageModel,
  tokens_BxT,
  role_BxT,
  attribute_BxT,
  sentence_BxT,
  n_attributes: int,
  dtype=jnp.float32,
  with_attention: bool = False,
  patterns_BxLxHxTxT=None,
  n_scored: int | None = None,
):
  """Per sequence and attribute [B, A] metrics, and per-layer attention statistics (summed
  over the batch, with their normalisers) when `with_attention`. Given patterns (patching)
  replace the model's own, and the statistics are those of the given patterns. n_scored:
  the output layer runs on that many positions, the value tokens (metrics.value_token_scores;
  at least the batch's count: the caller checks); None: on every position."""
  if n_scored is None:
    logits_BxTxV, patterns = _forward(
      model, tokens_BxT, dtype, patterns_BxLxHxTxT, return_patterns=with_attention
    )
    scores = metrics.token_scores(logits_BxTxV, tokens_BxT)
  else:
    h_BxTxD, patterns = model.features(
      tokens_BxT, patterns_BxLxHxTxT=patterns_BxLxHxTxT, return_patterns=with_attention, dtype=dtype
    )
    scores = metrics.value_token_scores(h_BxTxD, model.embed_VxD, tokens_BxT, role_BxT, n_scored)
  out = metrics.attribute_metrics(scores, role_BxT, attribute_BxT, n_attributes)
  if with_attention and patterns is not None:
    out["attention"] = metrics.attention_statistics(patterns, role_BxT, sentence_BxT)
  return out
