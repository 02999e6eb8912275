"""bioknow: how language models learn facts (Zucchet et al. 2025), in JAX.

From Python, a base config of bioknow.configs, changed at will, runs in a run directory; run
again, it skips the finished run (an interrupted one resumes); the launcher
(python -m bioknow.launch) runs the points of a sweep file the same way:

```python
import bioknow
from bioknow import configs

cfg = configs.pretrain("small")
cfg.train.n_steps = 200
summary = bioknow.run(cfg, "runs/mine")
```
"""

import os

from bioknow import _malloc

__version__ = "0.1.0"

# Before jax starts its threads: XLA:CPU steps otherwise page-fault their buffers every step.
MALLOC_TUNED = _malloc.keep_freed_memory()


def run(config, run_dir: str | os.PathLike) -> dict:
  """Runs a fiddle config of any experiment kind in `run_dir` (resuming an interrupted run,
  skipping a finished one) and returns its summary; see bioknow.running. Imported here on
  first use: `import bioknow` starts neither jax nor fiddle, so reading runs stays light."""
  from bioknow import running  # pylint: disable=import-outside-toplevel

  return running.run(config, run_dir)
