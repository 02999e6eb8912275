"""Orbax checkpoints of a run: model arrays, optimizer state, data-iterator state and step.

Models are saved as their array leaves (`eqx.partition`) and restored into the skeleton of a
freshly built model, so the static structure always comes from code and config.
"""

import pathlib
import shutil

import equinox as eqx
import grain
import jax
import orbax.checkpoint as ocp


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
    sets `iterator` to its saved position; returns (model, opt_state, meta)."""
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(
        model=ocp.args.StandardRestore(_target(model)),
        opt_state=ocp.args.StandardRestore(_target(opt_state)),
        data=grain.checkpoint.CheckpointRestore(iterator),
        meta=ocp.args.JsonRestore(),
      ),
    )
    return (_combine(restored.model, model), _combine(restored.opt_state, opt_state), restored.meta)

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
