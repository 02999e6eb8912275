"""Orbax checkpoints of a run: model arrays, optimizer state, data-iterator state and step.

Models are saved as their array leaves (`eqx.partition`) and restored into the skeleton of a
freshly built model, so the static structure always comes from code and config. Each checkpoint
carries a fingerprint of its arrays' bits in its meta, computed on the device when it is saved
and checked when it is restored: a checkpoint whose bytes changed on disk (a flipped bit, a
torn write that still parses) raises CorruptCheckpoint instead of resuming into wrong results.
"""

import hashlib
import pathlib
import shutil

import equinox as eqx
import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CorruptCheckpoint(ValueError):
  """A checkpoint restored, but its arrays are not the ones saved (their fingerprint differs)."""


def _words(x: jax.Array) -> jax.Array:
  """The bits of array `x` as uint32 words (narrower types widened, 64-bit ones split)."""
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32).ravel()
  width = x.dtype.itemsize
  if width == 8:
    return jax.lax.bitcast_convert_type(x, jnp.uint32).ravel()
  unsigned = {4: jnp.uint32, 2: jnp.uint16, 1: jnp.uint8}[width]
  return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).ravel()


@jax.jit
def _fingerprint_words(leaves: list) -> jax.Array:
  """Two uint32 sums per leaf of its words times odd weights (2i + 1 and 2i + 1 xor a fixed
  pattern): a change to any one word always changes the first (an odd weight is invertible
  mod 2^32), and the second makes several changes that cancel in one unlikely to cancel in
  both."""
  sums = []
  for leaf in leaves:
    words = _words(leaf)
    odd = jnp.arange(words.size, dtype=jnp.uint32) * 2 + 1
    sums += [jnp.sum(words * odd), jnp.sum(words * (odd ^ jnp.uint32(0x9E3779B1)))]
  return jnp.stack(sums) if sums else jnp.zeros((0,), jnp.uint32)


def fingerprint(*trees) -> str:
  """A hex fingerprint of the bits of every array leaf of `trees`, in tree order."""
  leaves = [x for tree in trees for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]
  sums = np.asarray(_fingerprint_words(leaves)).astype(np.uint32)
  return hashlib.sha256(sums.tobytes()).hexdigest()[:32] + f"-{len(leaves)}"


class Checkpointer:
  """Keeps every checkpoint (patching and fine-tuning read intermediate ones)."""

  def __init__(self, directory: str | pathlib.Path, create: bool = True):
    self.directory = pathlib.Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(create=create, enable_async_checkpointing=True),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def steps(self) -> list[int]:
    """The steps of the complete checkpoints, oldest first."""
    return sorted(self.manager.all_steps())

  def set_aside(self, steps: list[int], to: pathlib.Path) -> list[pathlib.Path]:
    """Moves the checkpoints of `steps` into the directory `to` (a step already there gets a
    suffix), so that those steps can be saved again; returns where each went."""
    moved = []
    for step in steps:
      target, n = to / str(step), 1
      while target.exists():
        target, n = to / f"{step}_{n}", n + 1
      to.mkdir(parents=True, exist_ok=True)
      shutil.move(self.directory / str(step), target)
      moved.append(target)
    self.manager.reload()
    return moved

  def save(self, step: int, model, opt_state, iterator: grain.DatasetIterator, meta: dict):
    """Saves checkpoint `step`, its meta with the arrays' fingerprint added."""
    meta = meta | {"fingerprint": fingerprint(model, opt_state)}
    self.manager.save(
      step,
      args=ocp.args.Composite(
        model=ocp.args.StandardSave(eqx.filter(model, eqx.is_array)),
        opt_state=ocp.args.StandardSave(eqx.filter(opt_state, eqx.is_array)),
        data=grain.checkpoint.CheckpointSave(iterator),
        meta=ocp.args.JsonSave(meta),
      ),
    )

  def restore(self, step: int, model, opt_state, iterator: grain.DatasetIterator):
    """Restores into `model`/`opt_state` (skeletons with the right shapes and shardings) and
    sets `iterator` to its saved position; returns (model, opt_state, meta). Raises
    CorruptCheckpoint when the arrays' fingerprint is not the one saved with them."""
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(
        model=ocp.args.StandardRestore(_target(model)),
        opt_state=ocp.args.StandardRestore(_target(opt_state)),
        data=grain.checkpoint.CheckpointRestore(iterator),
        meta=ocp.args.JsonRestore(),
      ),
    )
    model, opt_state = _combine(restored.model, model), _combine(restored.opt_state, opt_state)
    saved = (restored.meta or {}).get("fingerprint")
    if saved is not None and saved != (found := fingerprint(model, opt_state)):
      raise CorruptCheckpoint(
        f"checkpoint step {step}: its arrays' fingerprint is {found}, not the {saved} saved "
        "with them"
      )
    return model, opt_state, restored.meta

  def restore_arrays(self, step: int, **skeletons) -> dict:
    """Some parts of checkpoint `step` (model=..., opt_state=...), each restored into its
    skeleton: reference models, fine-tuning sources."""
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(
        **{k: ocp.args.StandardRestore(_target(v)) for k, v in skeletons.items()}
      ),
    )
    return {k: _combine(restored[k], v) for k, v in skeletons.items()}

  def restore_model(self, step: int, model):
    """Only the model of checkpoint `step`."""
    return self.restore_arrays(step, model=model)["model"]

  def restore_error(self, step: int, **shapes) -> str | None:
    """None if those parts of checkpoint `step` restore into `shapes` (trees of
    jax.ShapeDtypeStruct, as eqx.filter_eval_shape gives), else one line on why not. Reads
    every array, then lets them go."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    args = {
      k: ocp.args.StandardRestore(
        jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
          eqx.filter(v, lambda x: isinstance(x, jax.ShapeDtypeStruct)),
        )
      )
      for k, v in shapes.items()
    }
    try:
      self.manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # every reason it does not restore is reported alike
      return failure(e)
    return None

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def failure(e: BaseException) -> str:
  """One line on why a restore failed: the innermost exception of the chain (orbax wraps
  the tensorstore error that names the broken file)."""
  while (inner := e.__cause__ or e.__context__) is not None:
    e = inner
  return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def _target(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, eqx.filter(tree, eqx.is_array))


def _combine(arrays, skeleton):
  _, static = eqx.partition(skeleton, eqx.is_array)
  return eqx.combine(arrays, static)
