import numpy as np

from bioknow.data import packing, pipeline, schedules
from bioknow.data.biography import ROLE_PAD


def _batch(ds, b=32, step=0):
  return pipeline.batch_at(ds, schedules.Uniform(ds.config.n_individuals), b, 0, step)


def test_packing_keeps_every_token_in_order(small_dataset):
  batch = _batch(small_dataset)
  rows, row_len = packing.packed_shape(batch["length_B"], 32, small_dataset.seq_len)
  packed = packing.pack(batch, rows, row_len)
  assert packed["dropped"] == 0
  for b in range(32):
    where = packed["segment_RxL"] == b
    assert where.sum() == batch["length_B"][b]
    r = np.flatnonzero(where.any(axis=1))
    assert len(r) == 1  # a biography never straddles rows
    n = batch["length_B"][b]
    np.testing.assert_array_equal(packed["tokens_RxL"][where], batch["tokens_BxT"][b, :n])
    np.testing.assert_array_equal(packed["role_RxL"][where], batch["role_BxT"][b, :n])
    np.testing.assert_array_equal(packed["position_RxL"][where], np.arange(n))
  assert (packed["role_RxL"][packed["segment_RxL"] < 0] == ROLE_PAD).all()


def test_packed_rows_waste_little(small_dataset):
  lengths = np.concatenate([_batch(small_dataset, 256, s)["length_B"] for s in range(8)])
  rows, row_len = packing.packed_shape(lengths, 32, small_dataset.seq_len)
  padded = 32 * small_dataset.seq_len
  assert rows * row_len < 0.85 * padded  # fewer positions than one row per biography
  dropped = [
    packing.pack(_batch(small_dataset, 32, s), rows, row_len)["dropped"] for s in range(50)
  ]
  assert sum(dropped) == 0


def test_overflow_drops_whole_biographies_and_counts_them(small_dataset):
  batch = _batch(small_dataset, 8)
  packed = packing.pack(batch, 1, small_dataset.seq_len)
  assert packed["dropped"] == 8 - len(np.unique(packed["segment_RxL"][packed["segment_RxL"] >= 0]))
  assert packed["dropped"] >= 6
