"""bioknow: how language models learn facts (Zucchet et al. 2025), in JAX."""

from bioknow import _malloc

__version__ = "0.1.0"

# Before jax starts its threads: XLA:CPU steps otherwise page-fault their buffers every step.
MALLOC_TUNED = _malloc.keep_freed_memory()
