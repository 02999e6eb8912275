"""The time a run took over all its attempts: RUN_DIR/attempts.json holds, per attempt (an
interrupted one, its resumption, a rebuild of its summary), the wall seconds and steps it
spent, noted at every evaluation, so that a killed attempt's time is kept up to its last one.
summary.json's wall_seconds and steps_per_second are these totals; the records themselves
hold no time, so a resumed run's metrics equal an uninterrupted run's.
"""

import json
import os
import time

from bioknow.rundir import RunDir

FILE = "attempts.json"


class Ledger:
  """This attempt's entry in attempts.json."""

  def __init__(self, run_dir: RunDir):
    self.path = run_dir / FILE
    self.key = f"{time.time():.3f}-{os.getpid()}"
    self.start = time.perf_counter()

  def _read(self) -> dict:
    try:
      entries = json.loads(self.path.read_text())
      return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
      return {}

  def note(self, steps: int) -> None:
    """Records this attempt's wall seconds so far and the `steps` it has trained."""
    entries = self._read()
    entries[self.key] = {"wall_seconds": time.perf_counter() - self.start, "steps": steps}
    tmp = self.path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n")
    tmp.replace(self.path)

  def totals(self, steps: int) -> dict:
    """Notes this attempt's end, then summary.json's timing over every attempt."""
    self.note(steps)
    entries = list(self._read().values())
    wall = sum(e.get("wall_seconds", 0.0) for e in entries)
    trained = sum(e.get("steps", 0) for e in entries)
    return {
      "wall_seconds": wall,
      "steps_per_second": trained / wall if wall > 0 else 0.0,
      "attempts": len(entries),
      "attempt_wall_seconds": entries[-1]["wall_seconds"] if entries else 0.0,
    }
