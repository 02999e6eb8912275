import dataclasses
import math

import numpy as np
import pytest

from bioknow.data import dataset
from bioknow.data import lists as lists_lib


def test_shipped_lists_have_the_papers_sizes():
  for name, size in lists_lib.PAPER_SIZES.items():
    assert len(lists_lib.read_list(lists_lib.DEFAULT_LISTS_DIR / name)) == size, name


def test_birth_dates_cover_every_year_month_day():
  dates = lists_lib.birth_dates()
  assert len(dates) == 201 * 12 * 31
  assert dates[0] == "January 1, 1900"
  assert dates[-1] == "December 31, 2100"
  # value id = ((year - 1900) * 12 + month - 1) * 31 + day - 1
  assert dates[((2042 - 1900) * 12 + 2) * 31 + 15] == "March 16, 2042"


def test_baseline_equals_its_formula():
  lists = lists_lib.load_lists()
  by_hand = (
    math.log(201 * 12 * 31) + 2 * math.log(800) + math.log(200) + math.log(100) + math.log(500)
  ) / 6
  assert lists_lib.no_knowledge_baseline(lists) == pytest.approx(by_hand, rel=1e-12)
  assert lists_lib.no_knowledge_baseline(lists) == pytest.approx(6.785, abs=1e-3)


def test_baseline_of_a_subset_of_attributes():
  lists = lists_lib.load_lists(attributes=("major", "company"))
  assert lists_lib.no_knowledge_baseline(lists) == pytest.approx(
    (math.log(100) + math.log(500)) / 2
  )


def _write_lists(tmp_path, **overrides):
  contents = {
    "first_names.txt": "Ann\nBob\n",
    "last_names.txt": "Lee\nKim\n",
    "cities.txt": "Paris\nLima\n",
    "universities.txt": "Yale\n",
    "majors.txt": "Law\n",
    "companies.txt": "Acme\n",
  }
  contents.update(overrides)
  for name, text in contents.items():
    if text is not None:
      (tmp_path / name).write_text(text, encoding="utf-8")
  return tmp_path


def test_custom_lists_load(tmp_path):
  lists = lists_lib.load_lists(_write_lists(tmp_path))
  assert lists.first_names == ("Ann", "Bob")
  assert lists.values["current_city"] == ("Paris", "Lima")
  assert lists.n_full_names == 8


@pytest.mark.parametrize(
  "name,text,match",
  [
    ("cities.txt", None, "cities.txt is missing"),
    ("majors.txt", "Law\n\nArt\n", "line 2 is malformed"),
    ("majors.txt", "Law \n", "line 1 is malformed"),
    ("companies.txt", "A<b>\n", "malformed"),
    ("last_names.txt", "Lee\nLee\n", "more than once"),
  ],
)
def test_bad_list_files_name_the_file(tmp_path, name, text, match):
  with pytest.raises(ValueError, match=match):
    lists_lib.load_lists(_write_lists(tmp_path, **{name: text}))


def test_unknown_attribute_is_rejected():
  with pytest.raises(ValueError, match="attributes: .*'age'"):
    lists_lib.load_lists(attributes=("major", "age"))


def test_caps_keep_the_head_of_each_list():
  full = lists_lib.load_lists()
  small = lists_lib.load_lists(
    n_first_names=10, n_last_names=12, max_values=7, birth_years=(1990, 1999)
  )
  assert small.first_names == full.first_names[:10]
  assert small.last_names == full.last_names[:12]
  assert small.values["company"] == full.values["company"][:7]
  assert small.values["birth_date"][0] == "January 1, 1990"
  assert len(small.values["birth_date"]) == 10 * 12 * 31
  assert lists_lib.no_knowledge_baseline(small) == pytest.approx(
    (math.log(3720) + 5 * math.log(7)) / 6
  )


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(max_values=0), "max_values: got 0"),
    (dict(n_first_names=-3), "n_first_names"),
    (dict(birth_years=(2000, 1990)), "birth_years"),
    (dict(birth_years=(1800, 1990)), "birth_years"),
    (dict(birth_months=13), "birth_months: got 13; allowed: an integer in 1..12"),
    (dict(birth_days=0), "birth_days: got 0; allowed: an integer in 1..31"),
  ],
)
def test_bad_caps_are_rejected(kwargs, match):
  with pytest.raises(ValueError, match=match):
    lists_lib.load_lists(**kwargs)


def test_birth_months_and_days_keep_the_head_of_the_calendar():
  dates = lists_lib.load_lists(birth_years=(1990, 1991), birth_months=4, birth_days=2).values[
    "birth_date"
  ]
  assert len(dates) == 2 * 4 * 2
  assert dates[:3] == ("January 1, 1990", "January 2, 1990", "February 1, 1990")
  assert dates[-1] == "April 2, 1991"  # id ((1 * 4) + 3) * 2 + 1 = 15


def _frequency_predictor_loss(values_N):
  """The mean log-loss of predicting each individual's value by its frequency in the
  population, computed one individual at a time."""
  counts = {}
  for v in values_N:
    counts[v] = counts.get(v, 0) + 1
  return sum(-math.log(counts[v] / len(values_N)) for v in values_N) / len(values_N)


def test_frequency_floor_is_the_frequency_predictors_loss():
  rng = np.random.default_rng(0)
  values_NxA = np.stack([rng.integers(0, 5, 40), rng.integers(0, 300, 40)], axis=1)
  floor = lists_lib.frequency_floor(values_NxA, ("major", "company"))
  for a, name in enumerate(("major", "company")):
    assert floor[name] == pytest.approx(_frequency_predictor_loss(values_NxA[:, a].tolist()))


def test_small_scale_baseline_is_the_true_floor_of_every_attribute():
  """At the CPU scale every attribute's ln(list size) is within 1% of what a predictor that
  knows the trained population's value frequencies reaches; the old lists (300 people over
  3,720 dates) left birth dates far below it."""
  import fiddle as fdl

  from bioknow import configs

  data = fdl.build(configs.pretrain("small").data)
  ds = dataset.build_dataset(data)
  trained = ds.population.values_NxA[: data.n_individuals]
  floor = lists_lib.frequency_floor(trained, tuple(data.attributes))
  for name, baseline in ds.baselines.items():
    assert 0.99 * baseline <= floor[name] <= baseline, name
  sparse = dataset.build_dataset(
    dataclasses.replace(
      data, n_individuals=300, birth_years=(1990, 1999), birth_months=12, birth_days=31
    )
  )
  floor = lists_lib.frequency_floor(sparse.population.values_NxA[:300], tuple(data.attributes))
  assert floor["birth_date"] < 0.7 * sparse.baselines["birth_date"]
