"""Shows a few biographies, with name and value spans marked, and the dataset's statistics.

  python -m bioknow.data [--tokenizer=bio_32k] [--n_individuals=64000] [--n_examples=3]

Names print as [[Ana Maria Smith]] and values as {{March 16, 2042}}; the last line is JSON.
"""

import json
import sys

import numpy as np
from absl import app, flags

from bioknow.data import biography as bio
from bioknow.data import lists as lists_lib
from bioknow.data import tokenizer as tok
from bioknow.data.dataset import DataConfig, Dataset, build_dataset

_TOKENIZER = flags.DEFINE_string("tokenizer", "bio_32k", "Shipped tokenizer name or .model path.")
# bioknow.bench defines the same flag; a process importing both (the tests) shares it.
if "n_individuals" not in flags.FLAGS:
  flags.DEFINE_integer("n_individuals", 64_000, "Training population size.")
_N_EXAMPLES = flags.DEFINE_integer("n_examples", 3, "Biographies to print.")
_N_STATS = flags.DEFINE_integer("n_stats", 8192, "Biographies sampled for the length statistics.")
_SEED = flags.DEFINE_integer("seed", 0, "Population and sampling seed.")

_OPEN = {bio.ROLE_NAME: "[[", bio.ROLE_VALUE: "{{"}
_CLOSE = {bio.ROLE_NAME: "]]", bio.ROLE_VALUE: "}}"}


def decode_marked(ds: Dataset, tokens_T: np.ndarray, role_T: np.ndarray) -> str:
  """Decodes one biography, wrapping name spans in [[ ]] and value spans in {{ }}."""
  span = {
    bio.ROLE_NAME: bio.ROLE_NAME,
    bio.ROLE_LAST_NAME: bio.ROLE_NAME,
    bio.ROLE_VALUE: bio.ROLE_VALUE,
    bio.ROLE_FIRST_VALUE: bio.ROLE_VALUE,
  }
  out, current = [], None
  for token, role in zip(tokens_T.tolist(), role_T.tolist()):
    if role == bio.ROLE_PAD:
      break
    kind = span.get(role)
    starts = kind is not None and (kind != current or role == bio.ROLE_FIRST_VALUE)
    if current is not None and (kind != current or starts):
      out.append(_CLOSE[current])
    piece = ds.sp.id_to_piece(int(ds.sp_ids(token))).replace("\u2581", " ")
    if starts and kind is not None:  # keep the word's space outside the marker
      out.append(" " if piece.startswith(" ") else "")
      out.append(_OPEN[kind])
      piece = piece.lstrip(" ")
    out.append(piece if token >= tok.N_SPECIAL else "")  # special tokens (BOS) print as nothing
    current = kind
  if current is not None:
    out.append(_CLOSE[current])
  return "".join(out).strip()


def statistics(ds: Dataset, n: int, rng: np.random.Generator) -> dict:
  batch = ds.assemble(rng.integers(0, ds.config.n_individuals, size=n), "train", rng)
  t = ds.tables
  tokens_per_value = {
    a: round(
      float(t.piece_len_P[t.value_row0_A[i] : t.value_row0_A[i] + len(ds.lists.values[a])].mean()),
      3,
    )
    for i, a in enumerate(t.attributes)
  }
  return {
    "n_individuals": ds.config.n_individuals,
    "vocab_size": ds.vocab_size,
    "seq_len": ds.seq_len,
    "mean_tokens_per_biography": round(float(batch.length_B.mean()), 2),
    "max_tokens_per_biography": int(batch.length_B.max()),
    "mean_tokens_per_value": tokens_per_value,
    "no_knowledge_baseline": round(ds.no_knowledge_baseline, 4),
    # ln(list size) per attribute type next to the entropy of the trained population's value
    # frequencies: far apart, the lists are too sparse for the baseline to be the floor.
    "baselines": {a: round(b, 4) for a, b in ds.baselines.items()},
    "frequency_floor": {
      a: round(b, 4)
      for a, b in lists_lib.frequency_floor(
        ds.population.values_NxA[: ds.config.n_individuals], t.attributes
      ).items()
    },
  }


def _dataset() -> Dataset:
  """The dataset of the flags; exits with one sentence naming the flag if they cannot give one."""
  if _N_STATS.value < 1:
    sys.exit(f"--n_stats: got {_N_STATS.value}; it must be at least 1.")
  try:
    ds = build_dataset(
      DataConfig(
        n_individuals=flags.FLAGS.n_individuals, tokenizer=_TOKENIZER.value, seed=_SEED.value
      )
    )
  except ValueError as e:
    sys.exit(f"--{e}")  # DataConfig names the field, which is also the flag's name
  except (RuntimeError, OSError) as e:  # SentencePiece cannot read the file
    sys.exit(
      f"--tokenizer: {_TOKENIZER.value} is not a SentencePiece model ({str(e).splitlines()[0]})."
    )
  if not 0 <= _N_EXAMPLES.value <= flags.FLAGS.n_individuals:
    sys.exit(f"--n_examples: got {_N_EXAMPLES.value}; allowed 0..{flags.FLAGS.n_individuals}.")
  return ds


def main(argv):
  if len(argv) > 1:
    sys.exit(f"unexpected argument {argv[1]!r}; every option is a flag such as --n_examples=3.")
  ds = _dataset()
  rng = np.random.default_rng(_SEED.value)
  examples = ds.assemble(np.arange(_N_EXAMPLES.value), "train", rng)
  for i in range(_N_EXAMPLES.value):
    print(f"individual {examples.individual_B[i]}:")
    print("  " + decode_marked(ds, examples.tokens_BxT[i], examples.role_BxT[i]) + "\n")
  print(json.dumps(statistics(ds, _N_STATS.value, rng)))


if __name__ == "__main__":
  app.run(main)
