import dataclasses

import numpy as np

from bioknow.data import biography as bio
from bioknow.data.templates import NAME_TAG, TEMPLATES, VALUE_TAG


def _batch(ds, seed=0, n=64, pool="train", ids=None):
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, ds.config.n_individuals, size=n) if ids is None else ids
  return ds.assemble(ids, pool, rng)


def _full_name(ds, i):
  p, names = ds.population, ds.lists
  return " ".join(
    [
      names.first_names[p.first_N[i]],
      names.first_names[p.middle_N[i]],
      names.last_names[p.last_N[i]],
    ]
  )


def _value(ds, i, a):
  attribute = ds.tables.attributes[a]
  return ds.lists.values[attribute][ds.population.values_NxA[i, a]]


def test_same_seed_same_batch(small_dataset):
  a, b = _batch(small_dataset, seed=5), _batch(small_dataset, seed=5)
  for field in dataclasses.fields(a):
    np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name))
  assert not np.array_equal(a.tokens_BxT, _batch(small_dataset, seed=6).tokens_BxT)


def test_biography_text_equals_the_filled_templates(small_dataset):
  ds = small_dataset
  batch = _batch(ds, n=32)
  for b in range(32):
    i = batch.individual_B[b]
    sentences = [
      TEMPLATES[ds.tables.attributes[a]][t]
      .replace(NAME_TAG, _full_name(ds, i))
      .replace(VALUE_TAG, _value(ds, i, a))
      for a, t in zip(batch.attribute_BxS[b], batch.template_BxS[b])
    ]
    n = batch.length_B[b]
    assert batch.tokens_BxT[b, 0] == 2  # BOS
    assert ds.sp.decode(batch.tokens_BxT[b, 1:n].tolist()).strip() == " ".join(sentences)
    assert (batch.tokens_BxT[b, n:] == 0).all() and (batch.role_BxT[b, n:] == bio.ROLE_PAD).all()


def _spans(mask_T):
  """(start, stop) of each run of True."""
  edges = np.diff(np.concatenate([[0], mask_T.astype(np.int8), [0]]))
  return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def test_roles_decode_to_names_and_values(small_dataset):
  ds = small_dataset
  batch = _batch(ds, n=32, seed=1)
  for b in range(32):
    i, role, tokens = batch.individual_B[b], batch.role_BxT[b], batch.tokens_BxT[b]
    name_spans = _spans((role == bio.ROLE_NAME) | (role == bio.ROLE_LAST_NAME))
    value_spans = _spans(batch.value_mask_BxT[b])
    assert len(name_spans) == len(value_spans) == 6
    for s, ((n0, n1), (v0, v1)) in enumerate(zip(name_spans, value_spans)):
      a = batch.attribute_BxS[b, s]
      assert ds.sp.decode(tokens[n0:n1].tolist()).strip() == _full_name(ds, i)
      assert ds.sp.decode(tokens[v0:v1].tolist()).strip() == _value(ds, i, a)
      # One last-name token closing the name, one first-value token opening the value.
      assert role[n1 - 1] == bio.ROLE_LAST_NAME and (role[n0 : n1 - 1] == bio.ROLE_NAME).all()
      assert role[v0] == bio.ROLE_FIRST_VALUE and (role[v0 + 1 : v1] == bio.ROLE_VALUE).all()
      # Name before value, both inside sentence s about attribute a.
      assert n1 <= v0
      assert (batch.sentence_BxT[b, n0:v1] == s).all()
      assert (batch.attribute_BxT[b, n0:v1] == a).all()


def test_value_tokens_carry_only_the_value(small_dataset):
  """A value followed by '.' ends on its own token: the period is a separate text token."""
  ds = small_dataset
  batch = _batch(ds, n=16, seed=2)
  for b in range(16):
    for _, v1 in _spans(batch.value_mask_BxT[b]):
      assert batch.role_BxT[b, v1] == bio.ROLE_TEXT
      assert ds.sp.id_to_piece(int(batch.tokens_BxT[b, v1])).startswith(".")


def test_eval_templates_never_appear_in_training_batches(small_dataset):
  ds = small_dataset
  batch = _batch(ds, n=4_000, seed=4)
  eval_pool = ds.population.pool("eval")
  used = eval_pool[batch.individual_B[:, None], batch.attribute_BxS]  # [B, S, n_eval]
  assert not (used == batch.template_BxS[..., None]).any()
  ev = _batch(ds, n=4_000, seed=4, pool="eval")
  used = eval_pool[ev.individual_B[:, None], ev.attribute_BxS]
  assert (used == ev.template_BxS[..., None]).any(axis=-1).all()


def test_every_attribute_once_per_biography_in_random_order(small_dataset):
  batch = _batch(small_dataset, n=500, seed=7)
  np.testing.assert_array_equal(
    np.sort(batch.attribute_BxS, axis=1), np.broadcast_to(np.arange(6), (500, 6))
  )
  assert len({tuple(r) for r in batch.attribute_BxS}) > 300


def test_fixed_order_when_not_shuffled(small_dataset):
  ds = small_dataset
  rng = np.random.default_rng(0)
  batch = bio.assemble(ds.tables, ds.population, np.arange(10), "train", rng, shuffle=False)
  np.testing.assert_array_equal(batch.attribute_BxS, np.broadcast_to(np.arange(6), (10, 6)))


def test_seq_len_is_the_longest_biography_the_tables_allow(small_dataset):
  """An individual with the longest names, values and templates fills seq_len exactly."""
  ds = small_dataset
  t, p = ds.tables, ds.population
  first = np.argmax(t.piece_len_P[t.first_row0 : t.last_row0])
  last = np.argmax(t.piece_len_P[t.last_row0 : t.value_row0_A[0]])
  values = [
    np.argmax(t.piece_len_P[t.value_row0_A[a] : t.value_row0_A[a] + len(v)])
    for a, v in enumerate(ds.lists.values.values())
  ]
  longest_template = (t.codes_AxKxC != t.empty_row).sum(axis=2).argmax(axis=1)
  perm = np.broadcast_to(np.arange(25, dtype=np.uint8), (1, 6, 25)).copy()
  perm[0, :, 0] = longest_template
  perm[0, np.arange(6), longest_template] = 0
  extreme = dataclasses.replace(
    p,
    first_N=np.array([first]),
    middle_N=np.array([first]),
    last_N=np.array([last]),
    values_NxA=np.array([values]),
    templates_NxAxK=perm,
    n_individuals=1,
    n_heldout=0,
    n_templates_train=1,
  )
  batch = bio.assemble(t, extreme, np.array([0]), "train", np.random.default_rng(0))
  assert batch.length_B[0] == t.seq_len
  ordinary = _batch(ds, n=2_000)
  assert ordinary.length_B.max() <= t.seq_len


def test_an_empty_batch_is_empty(small_dataset):
  batch = small_dataset.assemble(np.zeros(0, np.int32), "train", np.random.default_rng(0))
  assert batch.tokens_BxT.shape == (0, small_dataset.seq_len)
