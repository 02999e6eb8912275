import pytest
import sentencepiece as spm

from bioknow.data import lists as lists_lib
from bioknow.data import tokenizer as tok
from bioknow.data.templates import ATTRIBUTES, NAME_TAG, TEMPLATES, VALUE_TAG


@pytest.mark.parametrize("name,low,high", [("bio_4k", 4_000, 4_096), ("bio_32k", 32_000, 32_000)])
def test_shipped_models_load_with_tags_and_specials(name, low, high):
  sp = tok.load_tokenizer(name)
  assert low <= sp.vocab_size() <= high
  assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
  name_id, value_id = tok.tag_ids(sp)
  assert sp.id_to_piece(name_id) == NAME_TAG and sp.id_to_piece(value_id) == VALUE_TAG


def test_every_template_tokenizes_with_one_name_tag_and_one_value_tag():
  sp = tok.load_tokenizer("bio_4k")
  name_id, value_id = tok.tag_ids(sp)
  for attribute in ATTRIBUTES:
    for ids in tok.encode_templates(sp, TEMPLATES[attribute]):
      assert ids.count(name_id) == 1 and ids.count(value_id) == 1
      assert ids.index(name_id) < ids.index(value_id)
      assert sp.unk_id() not in ids


def test_names_and_values_tokenize_without_unknowns_and_round_trip():
  sp = tok.load_tokenizer("bio_4k")
  lists = lists_lib.load_lists()
  for texts in [lists.first_names, lists.last_names, *lists.values.values()]:
    ids = tok.encode_spans(sp, texts)
    assert all(sp.unk_id() not in r for r in ids)
    assert [sp.decode(r).strip() for r in ids[:300]] == list(texts[:300])


def test_tags_are_never_merged_with_neighbouring_text():
  sp = tok.load_tokenizer("bio_32k")
  pieces = sp.encode(" studied at<value>.", out_type=str)
  assert pieces[-2:] == [VALUE_TAG, "."]


def test_training_is_reproducible_and_loadable():
  lists = lists_lib.load_lists()
  a = tok.train_tokenizer(lists, 600, n_sentences=2_000, seed=1)
  b = tok.train_tokenizer(lists, 600, n_sentences=2_000, seed=1)
  assert a == b
  sp = spm.SentencePieceProcessor(model_proto=a)
  assert sp.vocab_size() == 600 and sp.piece_to_id(NAME_TAG) == 4


def test_unknown_tokenizer_is_one_clear_error():
  with pytest.raises(ValueError, match="tokenizer: got 'bio_7k'"):
    tok.load_tokenizer("bio_7k")
