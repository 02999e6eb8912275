"""Keeps freed host memory mapped in the process (glibc only; elsewhere nothing happens).

XLA:CPU allocates each step's temporary buffer (128 MB for the small model at batch 64) from
a worker thread. A thread's malloc arena cannot hold a block that large, so glibc maps it
fresh and unmaps it every step, and the step page-faults it back in: 32,800 faults and a
quarter of the step's CPU time spent in the kernel. One arena, with mmap and trim thresholds
above any such buffer, keeps the memory mapped and reused: no faults, and a faster small-model
step (figures: docs/benchmarks.md). The price: the process keeps its peak heap. It must run
before any thread allocates, so bioknow/__init__ calls it.
"""

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
# The same settings as environment variables, which glibc reads when a process starts: for
# processes whose threads run before bioknow is imported, such as Ray's workers (there,
# unset, the small model's step page-faulted throughout: docs/benchmarks.md).
ENV = {
  "MALLOC_ARENA_MAX": "1",
  "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
  "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1),
}


def keep_freed_memory() -> bool:
  """Sets the malloc options; True where they took effect."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):  # not glibc (musl)
    return False
  settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, (1 << 31) - 1))
  return all(mallopt(option, value) == 1 for option, value in settings)
