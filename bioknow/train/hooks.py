"""What an experiment changes in the training loop, passed to loop.train as one Hooks value.

The loop only trains, evaluates on schedule and checkpoints; experiment-specific rules (the
attention patterns and optimizer reset of patching, a sweep's early stop at the plateau's
end) live with the experiments that build the hooks, so the loop holds no science rule.
"""

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Hooks:
  """All optional; the default changes nothing.

  patterns(batch, step) -> patterns [B, L, H, T, T] or None: attention patterns to use in
    place of the model's own at `step`, in its training step and in its evaluation (patching).
    `batch` is the device batch, a dict with 'tokens' [B, T] and, when packed, 'positions' and
    'segment' [B, T]. It must only queue device work (step.async_jit): the host never waits.
  reset_optimizer_at: the step at which the optimizer state is re-initialised (fresh Adam
    moments; the lr schedule goes on at the global step).
  stop(records) -> bool: asked with every record so far after each evaluation, and once when
    a run (re)starts; True ends the run there, a finished run (the caller writes its summary).
  """

  patterns: Callable[[dict, int], Any] | None = None
  reset_optimizer_at: int | None = None
  stop: Callable[[list[dict]], bool] | None = None
