import math

import pytest

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
  ],
)
def test_bad_caps_are_rejected(kwargs, match):
  with pytest.raises(ValueError, match=match):
    lists_lib.load_lists(**kwargs)
