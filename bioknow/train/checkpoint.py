"""Orbax checkpoints of a run: model arrays, optimizer state, data-iterator state and step.

Models are saved as their array leaves (`eqx.partition`) and restored into the skeleton of a
freshly built model, so the static structure always comes from code and config.
"""

import pathlib

import equinox as eqx
import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Keeps every checkpoint (patching and fine-tuning read intermediate ones)."""

  def __init__(self, directory: str | pathlib.Path):
    self.directory = pathlib.Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=True),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

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

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def _target(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, eqx.filter(tree, eqx.is_array))


def _combine(arrays, skeleton):
  _, static = eqx.partition(skeleton, eqx.is_array)
  return eqx.combine(arrays, static)
