"""Vectorised biography assembly: token tables + index arrays -> a padded batch of token ids.

Everything a biography can contain is a row of one "piece" table: every vocabulary token (a row
of length one), every first name, last name and attribute value (pre-tokenized spans), and one
empty row. A template is a short row of codes: a token id, or a slot (first, middle or last
name, value) that resolves to the individual's piece row. Assembly resolves every code of the
batch to a piece row and expands all rows at once with np.repeat: no Python loop per token.

Roles per position: pad, template text, name, last name token, value, first value token.
Position t holds token t; a model predicts it from position t - 1.
"""

import dataclasses

import numpy as np
import sentencepiece as spm

from bioknow.data import lists as lists_lib
from bioknow.data import tokenizer as tok
from bioknow.data.population import Population
from bioknow.data.templates import TEMPLATES

ROLE_PAD, ROLE_TEXT, ROLE_NAME, ROLE_LAST_NAME, ROLE_VALUE, ROLE_FIRST_VALUE = range(6)
ROLE_NAMES = ("pad", "text", "name", "last_name", "value", "first_value")
# Template slot codes (negative, so they never collide with token ids).
SLOT_FIRST, SLOT_MIDDLE, SLOT_LAST, SLOT_VALUE = -1, -2, -3, -4
N_SLOTS = 4


@dataclasses.dataclass(frozen=True)
class TokenTables:
  """Pre-tokenized pieces and templates; built once per (lists, tokenizer, attributes)."""

  pieces_PxL: np.ndarray  # int32 token ids of every piece row, 0-padded
  piece_len_P: np.ndarray  # int32 tokens per piece row
  first_row0: int  # piece row of first_names[0] (first and middle names)
  last_row0: int  # piece row of last_names[0]
  value_row0_A: np.ndarray  # int32 piece row of value 0 of each attribute type
  codes_AxKxC: np.ndarray  # int32 template codes: token id, slot (<0), or the empty row
  seq_len: int  # longest biography these tables can produce, BOS included
  attributes: tuple[str, ...]
  tokenizer_ids_V: np.ndarray  # int32 tokenizer id of each model token id

  @property
  def vocab_size(self) -> int:
    return len(self.tokenizer_ids_V)

  @property
  def empty_row(self) -> int:
    return len(self.piece_len_P) - 1


@dataclasses.dataclass(frozen=True)
class Biographies:
  """A batch of assembled biographies (B sequences of T = seq_len positions)."""

  tokens_BxT: np.ndarray  # int32 token ids, PAD_ID past the end
  role_BxT: np.ndarray  # int8 ROLE_*
  attribute_BxT: np.ndarray  # int8 attribute type id, -1 for BOS and padding
  sentence_BxT: np.ndarray  # int8 position of the sentence in the biography, -1 for BOS/pad
  length_B: np.ndarray  # int32 tokens per biography
  individual_B: np.ndarray  # int32 individual ids
  attribute_BxS: np.ndarray  # int8 attribute type of each sentence, in biography order
  template_BxS: np.ndarray  # int8 template id of each sentence

  @property
  def value_mask_BxT(self) -> np.ndarray:
    return self.role_BxT >= ROLE_VALUE


def _pad_rows(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
  len_R = np.array([len(r) for r in rows], dtype=np.int32)
  out_RxL = np.zeros((len(rows), max(len_R.max(), 1)), dtype=np.int32)
  out_RxL[np.arange(out_RxL.shape[1]) < len_R[:, None]] = np.concatenate(rows)
  return out_RxL, len_R


def build_tables(
  sp: spm.SentencePieceProcessor, lists: lists_lib.ValueLists, compact_vocab: bool = False
) -> TokenTables:
  """Tokenizes every name, value and template once.

  compact_vocab: number the tokens that biographies can contain 0..V-1 (the special tokens
  keep their ids) and leave out the rest of the tokenizer's vocabulary, so that the model
  computes no logits for tokens that never occur.
  """
  attributes = tuple(lists.values)
  name_tag, value_tag = tok.tag_ids(sp)
  first = tok.encode_spans(sp, lists.first_names)
  last = tok.encode_spans(sp, lists.last_names)
  values = [tok.encode_spans(sp, lists.values[a]) for a in attributes]
  # Template codes: the name tag expands to three slots (< 0); text tokens stay token ids.
  codes = [
    [
      [
        c
        for t in ids
        for c in (
          (SLOT_FIRST, SLOT_MIDDLE, SLOT_LAST)
          if t == name_tag
          else (SLOT_VALUE,)
          if t == value_tag
          else (t,)
        )
      ]
      for ids in tok.encode_templates(sp, TEMPLATES[a])
    ]
    for a in attributes
  ]
  tokenizer_ids_V = np.arange(sp.vocab_size(), dtype=np.int32)
  if compact_vocab:
    occurring = {i for rows in [first, last, *values, *codes] for r in rows for i in r if i >= 0}
    tokenizer_ids_V = np.array(sorted(occurring | set(range(tok.N_SPECIAL))), np.int32)
    model_id = {int(t): i for i, t in enumerate(tokenizer_ids_V)}
    renumber = lambda rows: [[model_id[i] if i >= 0 else i for i in r] for r in rows]
    first, last = renumber(first), renumber(last)
    values = [renumber(v) for v in values]
    codes = [renumber(per) for per in codes]
  vocab = [[i] for i in range(len(tokenizer_ids_V))]
  rows = vocab + first + last + [r for v in values for r in v] + [[]]  # last row: empty
  pieces_PxL, piece_len_P = _pad_rows(rows)
  first_row0 = len(vocab)
  last_row0 = first_row0 + len(first)
  value_row0_A = last_row0 + len(last) + np.cumsum([0] + [len(v) for v in values[:-1]])
  empty_row = len(rows) - 1

  max_name = 2 * max(map(len, first)) + max(map(len, last))
  # Longest sentence: its text, the longest name (3 slots) and the longest value (1 slot).
  longest = [
    max(len(c) - 4 + max_name + max(map(len, values[a])) for c in per)
    for a, per in enumerate(codes)
  ]
  width = max(len(c) for per in codes for c in per)
  codes_AxKxC = np.full((len(attributes), len(codes[0]), width), empty_row, dtype=np.int32)
  for a, per in enumerate(codes):
    for k, c in enumerate(per):
      codes_AxKxC[a, k, : len(c)] = c
  return TokenTables(
    pieces_PxL=pieces_PxL,
    piece_len_P=piece_len_P,
    first_row0=first_row0,
    last_row0=last_row0,
    value_row0_A=value_row0_A.astype(np.int32),
    codes_AxKxC=codes_AxKxC,
    seq_len=1 + sum(longest),
    attributes=attributes,
    tokenizer_ids_V=tokenizer_ids_V,
  )


def assemble(
  tables: TokenTables,
  population: Population,
  individual_B: np.ndarray,
  pool: str,
  rng: np.random.Generator,
  *,
  shuffle: bool = True,
) -> Biographies:
  """Biographies of `individual_B`, each template drawn from the individual's `pool`.

  For each individual and attribute type, one template is drawn uniformly from its pool; the
  sentences are put in a random order (`shuffle`) or in attribute order, after a BOS token.
  """
  individual_B = np.asarray(individual_B, dtype=np.int32)
  b, a = len(individual_B), len(tables.attributes)
  pool_BxAxK = population.pool(pool)[individual_B]
  pick_BxA = rng.integers(0, pool_BxAxK.shape[2], size=(b, a))
  template_BxA = np.take_along_axis(pool_BxAxK, pick_BxA[..., None], axis=2)[..., 0]
  if shuffle:
    attribute_BxS = np.argsort(rng.random((b, a)), axis=1)
  else:
    attribute_BxS = np.broadcast_to(np.arange(a), (b, a))
  template_BxS = np.take_along_axis(template_BxA, attribute_BxS, axis=1)
  codes_BxSxC = tables.codes_AxKxC[attribute_BxS, template_BxS]

  # Each slot code (-1..-4) picks the individual's piece row for it.
  slot_rows_BxSx4 = np.empty(codes_BxSxC.shape[:2] + (N_SLOTS,), dtype=np.int32)
  slot_rows_BxSx4[..., 0] = (tables.first_row0 + population.first_N[individual_B])[:, None]
  slot_rows_BxSx4[..., 1] = (tables.first_row0 + population.middle_N[individual_B])[:, None]
  slot_rows_BxSx4[..., 2] = (tables.last_row0 + population.last_N[individual_B])[:, None]
  value_BxS = np.take_along_axis(population.values_NxA[individual_B], attribute_BxS, axis=1)
  slot_rows_BxSx4[..., 3] = tables.value_row0_A[attribute_BxS] + value_BxS
  is_slot_BxSxC = codes_BxSxC < 0
  rows_BxSxC = np.where(
    is_slot_BxSxC,
    np.take_along_axis(slot_rows_BxSx4, np.maximum(-codes_BxSxC - 1, 0), axis=2),
    codes_BxSxC,
  )

  # Entries: BOS, then every code of every sentence. E = 1 + S * C.
  e = 1 + codes_BxSxC.shape[1] * codes_BxSxC.shape[2]
  rows_BxE = np.concatenate(
    [np.full((b, 1), tok.BOS_ID, np.int32), rows_BxSxC.reshape(b, e - 1)], axis=1
  )
  kind_BxE = np.concatenate(
    [np.zeros((b, 1), np.int8), np.where(is_slot_BxSxC, -codes_BxSxC, 0).reshape(b, e - 1)], axis=1
  )
  sentence_E = np.concatenate([[-1], np.repeat(np.arange(a), codes_BxSxC.shape[2])])
  attribute_BxE = np.concatenate(
    [np.full((b, 1), -1), np.repeat(attribute_BxS, codes_BxSxC.shape[2], axis=1)], axis=1
  )

  # Expand every entry into its piece's tokens.
  len_M = tables.piece_len_P[rows_BxE.ravel()]  # M = B * E entries
  entry_N = np.repeat(np.arange(len_M.size), len_M)  # N = total tokens: entry of each token
  start_M = np.cumsum(len_M) - len_M
  offset_N = np.arange(entry_N.size) - start_M[entry_N]  # position inside the piece
  tokens_N = tables.pieces_PxL[rows_BxE.ravel()[entry_N], offset_N]
  kind_N = kind_BxE.ravel()[entry_N]
  last_in_piece_N = offset_N == len_M[entry_N] - 1
  role_N = np.select(
    [
      kind_N == 0,
      kind_N <= -SLOT_MIDDLE,
      (kind_N == -SLOT_LAST) & ~last_in_piece_N,
      kind_N == -SLOT_LAST,
      offset_N > 0,
    ],
    [ROLE_TEXT, ROLE_NAME, ROLE_NAME, ROLE_LAST_NAME, ROLE_VALUE],
    ROLE_FIRST_VALUE,
  ).astype(np.int8)

  length_B = len_M.reshape(b, e).sum(axis=1).astype(np.int32)
  filled_BxT = np.arange(tables.seq_len) < length_B[:, None]
  tokens_BxT = np.full((b, tables.seq_len), tok.PAD_ID, np.int32)
  tokens_BxT[filled_BxT] = tokens_N
  role_BxT = np.zeros((b, tables.seq_len), np.int8)
  role_BxT[filled_BxT] = role_N
  attribute_BxT = np.full((b, tables.seq_len), -1, np.int8)
  attribute_BxT[filled_BxT] = attribute_BxE.ravel()[entry_N]
  sentence_BxT = np.full((b, tables.seq_len), -1, np.int8)
  sentence_BxT[filled_BxT] = np.tile(sentence_E, b)[entry_N]
  return Biographies(
    tokens_BxT=tokens_BxT,
    role_BxT=role_BxT,
    attribute_BxT=attribute_BxT,
    sentence_BxT=sentence_BxT,
    length_B=length_B,
    individual_B=individual_B,
    attribute_BxS=attribute_BxS.astype(np.int8),
    template_BxS=template_BxS.astype(np.int8),
  )
