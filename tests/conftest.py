"""Shared fixtures: one small dataset built from the shipped lists and the small tokenizer."""

import jax
import pytest

# Two CPU devices for the data-parallel tests; must happen before any backend use.
jax.config.update("jax_num_cpu_devices", 2)

from bioknow.data.dataset import DataConfig, build_dataset  # noqa: E402 (after the device count)


@pytest.fixture(scope="session")
def small_config() -> DataConfig:
  return DataConfig(n_individuals=2_000, n_heldout=100, tokenizer="bio_4k", seed=3)


@pytest.fixture(scope="session")
def small_dataset(small_config):
  return build_dataset(small_config)
