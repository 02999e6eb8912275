"""bioknow: how language models learn facts (Zucchet et al. 2025), in JAX."""

__version__ = "0.1.0"
