"""Shared fixtures: one small dataset built from the shipped lists and the small tokenizer."""

import pytest

from bioknow.data.dataset import DataConfig, build_dataset


@pytest.fixture(scope="session")
def small_config() -> DataConfig:
  return DataConfig(n_individuals=2_000, n_heldout=100, tokenizer="bio_4k", seed=3)


@pytest.fixture(scope="session")
def small_dataset(small_config):
  return build_dataset(small_config)
