"""What one call of the training loop prints and times: a progress line every few seconds, a
line per evaluation, and the throughput figures that summary.json and bioknow.bench.device read."""

import contextlib
import time
from collections.abc import Iterator

import jax


def format_seconds(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
  """The wall clock of one loop call, from its first evaluation on."""

  def __init__(self, step: int, n_steps: int, every_seconds: float):
    self.n_steps, self.every_seconds = n_steps, every_seconds
    self.start = time.perf_counter()
    self.eval_seconds = 0.0
    # The first evaluation and the first step of this process include compiling their
    # programs: kept apart so that a projection counts compilation once (bench.device), as is
    # the timeline [step, seconds since start, evaluation seconds so far] at each evaluation.
    self.first_seconds: dict[str, float] = {}
    self.timeline: list[list[float]] = []
    self.n_tokens, self.n_dropped = 0, 0
    self.last_print, self.steps_at_print = self.start, step
    self.now = self.start

  def count(self, batch: dict) -> int:
    """Counts a host batch's targets and dropped biographies; returns its real tokens."""
    n_real = int(batch["length_B"].sum())
    self.n_tokens += n_real - len(batch["length_B"])  # targets, not BOS
    self.n_dropped += int(batch.get("dropped", 0))
    return n_real

  def stepped(self, loss, started: float) -> None:
    """Times the first step (compilation included) by waiting on it: the one wait, once."""
    if "first_step_seconds" not in self.first_seconds:
      loss.block_until_ready()
      self.first_seconds["first_step_seconds"] = time.perf_counter() - started

  @contextlib.contextmanager
  def evaluation(self, step: int) -> Iterator[None]:
    """Times an evaluation (and its checkpoint) into eval_seconds and the timeline."""
    started = time.perf_counter()
    yield
    self.eval_seconds += time.perf_counter() - started
    self.first_seconds.setdefault("first_eval_seconds", time.perf_counter() - started)
    self.timeline.append([step, time.perf_counter() - self.start, self.eval_seconds])

  def due(self) -> bool:
    """Whether a progress line is due (every_seconds since the last one)."""
    self.now = time.perf_counter()
    return self.now - self.last_print >= self.every_seconds

  def print_progress(self, step: int, mean_loss: float) -> None:
    """The line due(): the mean loss since the last evaluation, steps/s since the last line."""
    rate = (step - self.steps_at_print) / (self.now - self.last_print)
    eta = (self.n_steps - step) / max(rate, 1e-9)
    print(
      f"step {step}/{self.n_steps}  loss {mean_loss:.4f}  {rate:.2f} steps/s  "
      f"ETA {format_seconds(eta)}",
      flush=True,
    )
    self.last_print, self.steps_at_print = self.now, step

  def print_evaluation(self, record: dict, baseline: float) -> None:
    print(
      f"eval step {record['step']}: attribute loss {record['attribute_loss']:.4f} (baseline "
      f"{baseline:.4f}), accuracy {record['attribute_accuracy']:.3f}, held-out loss "
      f"{record.get('unseen_attribute_loss', float('nan')):.4f}",
      flush=True,
    )

  def stats(self, steps_done: int, n_devices: int) -> dict:
    """The throughput of this call, as summary.json holds it."""
    wall = time.perf_counter() - self.start
    return {
      "wall_seconds": wall,
      "eval_seconds": self.eval_seconds,  # evaluations and checkpoints, within wall_seconds
      **self.first_seconds,  # first_step_seconds, first_eval_seconds: compilation included
      "timeline": self.timeline,
      "steps_per_second": steps_done / wall,
      "tokens_per_second": self.n_tokens / wall,
      "device_kind": jax.local_devices()[0].device_kind,
      "n_devices": n_devices,
      "dropped_biographies": self.n_dropped,
    }
