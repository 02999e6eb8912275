import dataclasses
import json
import math
import subprocess
import sys

import fiddle as fdl
import numpy as np
import pytest

from bioknow import configs
from bioknow.data.__main__ import decode_marked, statistics
from bioknow.data.dataset import DataConfig, build_dataset, vocab_size


def test_same_config_same_population(small_config, small_dataset):
  again = build_dataset(small_config)
  np.testing.assert_array_equal(again.population.values_NxA, small_dataset.population.values_NxA)
  np.testing.assert_array_equal(
    again.population.templates_NxAxK, small_dataset.population.templates_NxAxK
  )


@pytest.mark.parametrize(
  "overrides,match",
  [
    (dict(n_templates_train=21), "n_templates_train: 21 \\+ n_templates_eval 5"),
    (dict(n_templates_eval=0), "n_templates_eval"),
    (dict(n_individuals=0), "n_individuals: got 0"),
    (dict(n_individuals=2_000_000), "n_individuals: got 2000000; allowed"),
    (dict(n_heldout=-1), "n_heldout: got -1"),
    (dict(attributes=("major", "shoe_size")), "attributes: .*shoe_size"),
    (dict(tokenizer="nope"), "tokenizer: got 'nope'"),
    (dict(lists_dir="/nonexistent"), "lists_dir: list file /nonexistent/.* is missing"),
    (dict(compact_vocab=1), "compact_vocab: got 1; it must be True or False"),
  ],
)
def test_bad_configs_fail_with_one_sentence(overrides, match):
  config = dataclasses.replace(DataConfig(tokenizer="bio_4k"), **overrides)
  with pytest.raises(ValueError, match=match):
    build_dataset(config)


def test_more_individuals_than_names_is_rejected(tmp_path):
  for name, text in {
    "first_names.txt": "Ann\nBob\n",
    "last_names.txt": "Lee\nKim\n",
    "cities.txt": "Paris\n",
    "universities.txt": "Yale\n",
    "majors.txt": "Law\n",
    "companies.txt": "Acme\n",
  }.items():
    (tmp_path / name).write_text(text)
  config = DataConfig(n_individuals=7, n_heldout=2, tokenizer="bio_4k", lists_dir=str(tmp_path))
  with pytest.raises(ValueError, match="exceeds the 8 unique full names"):
    build_dataset(config)


def test_compact_vocabulary_renumbers_the_same_biographies():
  small = fdl.build(configs.pretrain("small").data)  # the small scale's short lists
  config = dataclasses.replace(small, n_individuals=300, n_heldout=50, compact_vocab=False)
  full = build_dataset(config)
  compact = build_dataset(dataclasses.replace(config, compact_vocab=True))
  assert vocab_size(dataclasses.replace(config, compact_vocab=True)) == compact.vocab_size
  assert 4 < compact.vocab_size < full.vocab_size // 4
  for pool in ("train", "eval"):
    a = compact.assemble(np.arange(350), pool, np.random.default_rng(1))
    b = full.assemble(np.arange(350), pool, np.random.default_rng(1))
    assert a.tokens_BxT.max() < compact.vocab_size
    np.testing.assert_array_equal(compact.sp_ids(a.tokens_BxT), b.tokens_BxT)
    np.testing.assert_array_equal(a.role_BxT, b.role_BxT)
    assert decode_marked(compact, a.tokens_BxT[0], a.role_BxT[0]) == decode_marked(
      full, b.tokens_BxT[0], b.role_BxT[0]
    )
  # Special tokens keep their ids.
  np.testing.assert_array_equal(compact.sp_ids(np.arange(4)), np.arange(4))


def test_subset_of_attributes_builds_shorter_biographies():
  ds = build_dataset(
    DataConfig(n_individuals=100, n_heldout=10, tokenizer="bio_4k", attributes=("major", "company"))
  )
  batch = ds.assemble(np.arange(5), "train", np.random.default_rng(0))
  assert batch.attribute_BxS.shape == (5, 2)
  assert set(np.unique(batch.attribute_BxT)) <= {-1, 0, 1}


def test_marked_decoding_shows_names_and_values(small_dataset):
  ds = small_dataset
  batch = ds.assemble(np.array([0]), "train", np.random.default_rng(0))
  text = decode_marked(ds, batch.tokens_BxT[0], batch.role_BxT[0])
  p = ds.population
  name = " ".join(
    [
      ds.lists.first_names[p.first_N[0]],
      ds.lists.first_names[p.middle_N[0]],
      ds.lists.last_names[p.last_N[0]],
    ]
  )
  assert text.count(f"[[{name}]]") == 6
  for a, attribute in enumerate(ds.tables.attributes):
    assert "{{" + ds.lists.values[attribute][p.values_NxA[0, a]] + "}}" in text


def test_statistics_are_consistent(small_dataset):
  stats = statistics(small_dataset, 512, np.random.default_rng(0))
  assert stats["max_tokens_per_biography"] <= stats["seq_len"]
  assert 50 < stats["mean_tokens_per_biography"] < stats["seq_len"]
  assert set(stats["mean_tokens_per_value"]) == set(small_dataset.tables.attributes)
  assert stats["no_knowledge_baseline"] == pytest.approx(6.7849, abs=1e-3)
  # The paper's lists with a small population: dates are sparse, their floor far below ln(K).
  assert stats["baselines"]["birth_date"] == pytest.approx(math.log(201 * 12 * 31), abs=1e-4)
  assert stats["frequency_floor"]["birth_date"] < 0.9 * stats["baselines"]["birth_date"]
  assert all(
    stats["frequency_floor"][a] <= stats["baselines"][a] + 1e-4
    for a in small_dataset.tables.attributes
  )


@pytest.mark.slow
def test_command_line_prints_biographies_then_json():
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "bioknow.data",
      "--tokenizer=bio_4k",
      "--n_individuals=500",
      "--n_stats=256",
    ],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  lines = out.strip().splitlines()
  assert "[[" in out and "{{" in out
  stats = json.loads(lines[-1])
  assert stats["n_individuals"] == 500 and stats["vocab_size"] <= 4096
