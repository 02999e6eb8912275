"""Packing biographies into fixed rows, so training computes no padding.

A batch of B biographies (each padded to seq_len) becomes R rows of L tokens holding them end
to end, with per-token positions (inside its biography) and segment ids (which biography), so
that attention and recurrences never cross biographies. Placement is first-fit decreasing; the
shape [R, L] is fixed per run (no recompilation), with R chosen from the length distribution
so that a batch overflowing it is a many-sigma event. Should it happen anyway, the biographies
that do not fit are left out of that step and counted in `dropped`.
"""

import math
from typing import Any

import numpy as np

from bioknow.data.biography import ROLE_PAD

PACKED_FIELDS = ("tokens_BxT", "role_BxT", "attribute_BxT", "sentence_BxT")


def packed_shape(
  lengths: np.ndarray,
  batch_size: int,
  seq_len: int,
  *,
  row_len: int | None = None,
  sigmas: float = 6.0,
) -> tuple[int, int]:
  """(rows, row_len) for batches of `batch_size` biographies whose lengths look like `lengths`
  (a large sample): room for the mean total plus `sigmas` standard deviations, plus the
  fragmentation first-fit leaves (at most one shortest biography per row)."""
  row_len = row_len or 2 * seq_len
  mean, std = lengths.mean(), lengths.std()
  total = batch_size * mean + sigmas * std * math.sqrt(batch_size)
  rows = math.ceil(total / (row_len - lengths.min()))
  return min(rows, batch_size), row_len


def pack(batch: dict[str, np.ndarray], rows: int, row_len: int) -> dict[str, np.ndarray]:
  """Packs a batch (fields [B, T] and length_B) into [rows, row_len] arrays plus positions,
  segments (biography index in the batch, -1 for padding) and the number dropped."""
  length_B = batch["length_B"]
  order = np.argsort(-length_B, kind="stable")
  free_R = np.full(rows, row_len)
  row_B = np.full(len(length_B), -1)
  start_B = np.zeros(len(length_B), np.int64)
  for b in order:  # B items: a Python loop per biography, not per token
    fits = np.flatnonzero(free_R >= length_B[b])
    if len(fits):
      r = fits[0]
      row_B[b], start_B[b] = r, row_len - free_R[r]
      free_R[r] -= length_B[b]

  kept = row_B >= 0
  seq_len = batch["tokens_BxT"].shape[1]
  valid_BxT = np.arange(seq_len) < length_B[:, None]
  valid_BxT &= kept[:, None]
  b_idx, t_idx = np.nonzero(valid_BxT)
  dest_r, dest_c = row_B[b_idx], start_B[b_idx] + t_idx
  out: dict[str, Any] = {}
  for field in PACKED_FIELDS:
    fill = ROLE_PAD if field == "role_BxT" else (0 if field == "tokens_BxT" else -1)
    packed = np.full((rows, row_len), fill, dtype=batch[field].dtype)
    packed[dest_r, dest_c] = batch[field][b_idx, t_idx]
    out[field.replace("_BxT", "_RxL")] = packed
  positions = np.zeros((rows, row_len), np.int32)
  positions[dest_r, dest_c] = t_idx
  segments = np.full((rows, row_len), -1, np.int32)
  segments[dest_r, dest_c] = b_idx
  out["position_RxL"], out["segment_RxL"] = positions, segments
  out["dropped"] = np.int64((~kept).sum())
  return out
