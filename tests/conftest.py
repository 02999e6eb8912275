"""Shared test setup: two CPU devices, one compilation cache, the tiny-run overrides, and one
small dataset built from the shipped lists and the small tokenizer."""

import atexit
import os
import shutil
import tempfile

import jax
import pytest

# Two CPU devices for the data-parallel tests; must happen before any backend use.
jax.config.update("jax_num_cpu_devices", 2)

# One compilation cache for the whole session, the launcher subprocesses (which inherit the
# environment) and xdist's workers: many tests compile the same tiny programs, and compiling
# is most of their time. Programs and results are the same with or without it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="bioknow-test-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from bioknow.data.dataset import DataConfig, build_dataset  # noqa: E402 (after the device count)


@pytest.fixture(scope="session")
def small_config() -> DataConfig:
  return DataConfig(n_individuals=2_000, n_heldout=100, tokenizer="bio_4k", seed=3)


@pytest.fixture(scope="session")
def small_dataset(small_config):
  return build_dataset(small_config)


# A tiny pretraining run through the launcher: the population every such test uses.
N, HELDOUT = 50, 16


def tiny_overrides(
  n_steps: int,
  eval_steps: tuple[int, ...],
  n_sequences: int = 64,
  n_attention: int = 32,
  flag: bool = False,
) -> list[str]:
  """The launcher's overrides (set:PATH=VALUE) for a tiny run of the tiny model on N people
  (HELDOUT held out); with flag, each as a --config= flag of the command line."""
  steps = ",".join(map(str, eval_steps)) + ("," if len(eval_steps) == 1 else "")
  overrides = [
    f"set:train.n_steps={n_steps}",
    "set:train.batch_size=8",
    f"set:eval.steps=({steps})",
    f"set:eval.n_sequences={n_sequences}",
    "set:eval.batch_size=32",
    f"set:eval.n_attention={n_attention}",
    "set:model.preset='tiny'",
    f"set:data.n_individuals={N}",
    f"set:data.n_heldout={HELDOUT}",
  ]
  return [f"--config={o}" for o in overrides] if flag else overrides
