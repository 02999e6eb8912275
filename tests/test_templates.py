"""Checks on the biography sentence templates in bioknow.data.templates."""

import re

import pytest

from bioknow.data.templates import ATTRIBUTES, NAME_TAG, TEMPLATES, VALUE_TAG

N_TEMPLATES = 25
MAX_WORDS = 20

ALL_TEMPLATES = [(attr, t) for attr in ATTRIBUTES for t in TEMPLATES[attr]]
TEMPLATE_IDS = [f"{attr}-{i}" for attr in ATTRIBUTES for i in range(len(TEMPLATES[attr]))]


def _strip_tags(template: str) -> str:
  return template.replace(NAME_TAG, "").replace(VALUE_TAG, "")


def test_tags():
  assert NAME_TAG == "<name>"
  assert VALUE_TAG == "<value>"


def test_attributes_match_template_keys_in_order():
  assert ATTRIBUTES == (
    "birth_date",
    "birth_city",
    "university",
    "major",
    "company",
    "current_city",
  )
  assert tuple(TEMPLATES.keys()) == ATTRIBUTES


@pytest.mark.parametrize("attr", ATTRIBUTES)
def test_count_and_distinct(attr):
  templates = TEMPLATES[attr]
  assert isinstance(templates, tuple)
  assert all(isinstance(t, str) for t in templates)
  assert len(templates) == N_TEMPLATES
  assert len(set(templates)) == N_TEMPLATES


def test_distinct_across_attributes():
  flat = [t for _, t in ALL_TEMPLATES]
  assert len(set(flat)) == len(flat)


@pytest.mark.parametrize(("attr", "template"), ALL_TEMPLATES, ids=TEMPLATE_IDS)
def test_template_format(attr, template):
  assert template.count(NAME_TAG) == 1
  assert template.count(VALUE_TAG) == 1
  assert template.index(NAME_TAG) < template.index(VALUE_TAG)
  rest = _strip_tags(template)
  for ch in "<>{}":
    assert ch not in rest, f"stray {ch!r} in {template!r}"
  # single spaces only, no other whitespace, no leading/trailing space
  assert "  " not in template
  assert template == template.strip()
  assert not re.search(r"[^\S ]", template), f"non-space whitespace in {template!r}"
  # one sentence ending in a period
  assert template.endswith(".")
  assert not re.search(r"[.!?]", template[:-1]), f"more than one sentence: {template!r}"
  assert template.startswith(NAME_TAG) or template[0].isupper()
  # tags are separated by a space from the preceding word
  if not template.startswith(NAME_TAG):
    assert f" {NAME_TAG}" in template
  assert f" {VALUE_TAG}" in template
  # value is inserted without an article
  assert not re.search(rf"\bthe {re.escape(VALUE_TAG)}", template, re.IGNORECASE)
  assert len(template.split()) <= MAX_WORDS


@pytest.mark.parametrize(("attr", "template"), ALL_TEMPLATES, ids=TEMPLATE_IDS)
def test_value_ends_sentence(attr, template):
  assert template.endswith(f" {VALUE_TAG}.")


@pytest.mark.parametrize("template", TEMPLATES["birth_date"])
def test_birth_date_uses_no_in(template):
  assert f" in {VALUE_TAG}" not in template


@pytest.mark.parametrize("template", TEMPLATES["current_city"])
def test_current_city_not_about_birth(template):
  assert not re.search(r"\b(born|birth\w*|native|hometown|hails)\b", template, re.IGNORECASE)


@pytest.mark.parametrize("template", TEMPLATES["birth_city"])
def test_birth_city_not_about_residence(template):
  assert not re.search(
    r"\b(lives?|living|resid\w*|currently|based|home)\b", template, re.IGNORECASE
  )


def test_filled_templates_contain_value():
  name, value = "Alice Smith", "São Paulo"
  for _, template in ALL_TEMPLATES:
    sentence = template.replace(NAME_TAG, name).replace(VALUE_TAG, value)
    assert sentence.count(value) == 1
    assert sentence.index(name) < sentence.index(value)
    assert "<" not in sentence and ">" not in sentence
