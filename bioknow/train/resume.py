"""Where an interrupted run continues: the newest checkpoint that has its metrics record and
restores, with the records and per-individual rows past it dropped so that they are recomputed.

Checkpoints newer than that one (torn by a crash, or saved after a record that was lost) are
set aside in skipped_checkpoints/, each with one printed line saying why, so that the run saves
those steps again and the final files equal an uninterrupted run's.
"""

from typing import Any, NamedTuple

from bioknow.rundir import RunDir
from bioknow.train import checkpoint
from bioknow.train import step as step_lib
from bioknow.train.checkpoint import Checkpointer
from bioknow.train.per_individual import PerIndividual


class Resumed(NamedTuple):
  """The state a run continues from; start is None for a fresh start (no usable checkpoint)."""

  start: int | None
  model: Any
  opt_state: Any
  iterator: Any
  records: list[dict]


def resume(
  run_dir: RunDir, ckpt: Checkpointer, store: PerIndividual, model, opt_state, batches, mesh
) -> Resumed:
  """Restores (model, opt_state) (replicated skeletons) and a fresh iterator over `batches`
  from the newest usable checkpoint, or keeps them for a fresh start; rewrites metrics.jsonl
  and the store to the records up to that step (none for a fresh start)."""
  records, damage = run_dir.read_records()
  if damage:
    print(f"{damage} Records from there on are dropped and recomputed.", flush=True)
  records = records[: store.n_rows]  # rows of both, or neither
  recorded = {r["step"] for r in records}
  start, model, opt_state, iterator = _newest_usable(
    ckpt, run_dir, recorded, model, opt_state, batches
  )
  if start is not None:
    model, opt_state = step_lib.replicate((model, opt_state), mesh)
    print(f"resuming from step {start}", flush=True)
  records = [r for r in records if start is not None and r["step"] <= start]
  run_dir.write_records(records)
  store.truncate(len(records))
  return Resumed(start, model, opt_state, iterator, records)


def _newest_usable(
  ckpt: Checkpointer, run_dir: RunDir, recorded: set[int], model, opt_state, batches
):
  """(step, model, opt_state, iterator) of the newest checkpoint that has its evaluation
  record and restores, or (None, model, opt_state, a fresh iterator) if none does. Newer
  checkpoints are set aside in skipped_checkpoints/ (the run saves those steps again), each
  with one line saying why."""
  iterator, step, skipped = iter(batches), None, []
  for candidate in reversed(ckpt.steps()):
    if candidate not in recorded:
      skipped.append((candidate, "its record in metrics.jsonl is missing or unreadable"))
      continue
    try:
      model, opt_state, _ = ckpt.restore(candidate, model, opt_state, iterator)
      step = candidate
      break
    except Exception as e:  # whatever is broken in it, an older checkpoint may restore
      skipped.append((candidate, f"it does not restore ({checkpoint.failure(e)})"))
      if hasattr(iterator, "close"):
        iterator.close()
      iterator = iter(batches)  # a failed restore may have moved it
  moved = ckpt.set_aside([s for s, _ in skipped], run_dir.path / "skipped_checkpoints")
  for (candidate, why), where in zip(skipped, moved):
    print(f"skipped checkpoint step {candidate}: {why}; moved to {where}.", flush=True)
  return step, model, opt_state, iterator
