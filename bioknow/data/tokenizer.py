"""SentencePiece tokenizer for biographies, with the name and value tags as atomic symbols.

Templates are tokenized with their tags in place; names and values are tokenized once, each
on its own, and stitched in after tokenization, so a name or value token never mixes with
template text ("1990." gives [1990][.]). Spaces belong to the following word ("▁word"), so a
name or value is tokenized with its leading space and a template drops the space before a tag.

Retrain the shipped models (seconds each; byte-identical for the same lists and seed):
  python -m bioknow.data.tokenizer --vocab_size=4096 --out=bioknow/data/tokenizers/bio_4k.model
  python -m bioknow.data.tokenizer --vocab_size=32000 --out=bioknow/data/tokenizers/bio_32k.model
"""

import functools
import io
import pathlib

import numpy as np
import sentencepiece as spm

from bioknow.data import lists as lists_lib
from bioknow.data.templates import NAME_TAG, TEMPLATES, VALUE_TAG

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
N_SPECIAL = 4  # ids below this are special tokens
TOKENIZER_DIR = pathlib.Path(__file__).resolve().parent / "tokenizers"
SHIPPED = ("bio_4k", "bio_32k")  # small (CPU scale) and paper-scale vocabularies


def check_tokenizer(name: str) -> pathlib.Path:
  """The model file of a shipped name ('bio_4k', 'bio_32k') or of a path; one sentence unless
  it is a SentencePiece model with this library's special ids and tag symbols."""
  path = TOKENIZER_DIR / f"{name}.model" if name in SHIPPED else pathlib.Path(str(name))
  if not isinstance(name, str) or not path.is_file():
    raise ValueError(
      f"tokenizer: got {name!r}; use one of {', '.join(SHIPPED)} or a path to "
      "an existing SentencePiece .model file."
    )
  stat = path.stat()
  _check_model(str(path), stat.st_mtime_ns, stat.st_size)
  return path


@functools.lru_cache(maxsize=16)
def _check_model(path: str, mtime_ns: int, size: int) -> None:
  """Loads the model once per version of the file (a failure is not cached)."""
  del mtime_ns, size  # the cache key
  retrain = "train one with python -m bioknow.data.tokenizer"
  try:
    sp = spm.SentencePieceProcessor(model_file=path)
  except (RuntimeError, OSError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(
      f"tokenizer: {path} is not a SentencePiece model ({reason}); use one of "
      f"{', '.join(SHIPPED)} or {retrain}."
    ) from None
  ids = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
  if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
    raise ValueError(
      f"tokenizer: {path} has pad, unk, bos, eos ids {ids}; biographies need "
      f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}: {retrain}."
    )
  missing = [t for t in (NAME_TAG, VALUE_TAG) if sp.piece_to_id(t) == sp.unk_id()]
  if missing:
    raise ValueError(f"tokenizer: {path} lacks the tag symbols {', '.join(missing)}: {retrain}.")


def load_tokenizer(name: str) -> spm.SentencePieceProcessor:
  return spm.SentencePieceProcessor(model_file=str(check_tokenizer(name)))


def tag_ids(sp: spm.SentencePieceProcessor) -> tuple[int, int]:
  """Ids of the name tag and the value tag."""
  return sp.piece_to_id(NAME_TAG), sp.piece_to_id(VALUE_TAG)


def encode_spans(sp: spm.SentencePieceProcessor, texts: tuple[str, ...]) -> list[list[int]]:
  """Tokenizes names or values as they appear after a space inside a sentence."""
  return sp.encode([" " + t for t in texts])


def _tagged(templates: tuple[str, ...]) -> list[str]:
  """Templates as sentences following another (leading space), minus the space before a tag
  (the name or value brings its own)."""
  return [
    (" " + t).replace(" " + NAME_TAG, NAME_TAG).replace(" " + VALUE_TAG, VALUE_TAG)
    for t in templates
  ]


def encode_templates(sp: spm.SentencePieceProcessor, templates: tuple[str, ...]) -> list[list[int]]:
  """Tokenizes templates, tags kept atomic."""
  return sp.encode(_tagged(templates))


def training_corpus(lists: lists_lib.ValueLists, n_sentences: int, seed: int) -> list[str]:
  """Text as the stitching tokenizes it: random tagged templates, and the names and values that
  fill them as separate spans (in their sampling frequencies), plus every name and value once."""
  rng = np.random.default_rng(seed)
  corpus = [" " + x for x in lists.first_names + lists.last_names]
  corpus += [" " + v for values in lists.values.values() for v in values]
  attributes = list(lists.values)
  templates = {a: _tagged(TEMPLATES[a]) for a in attributes}
  for _ in range(n_sentences):
    a = attributes[rng.integers(len(attributes))]
    corpus.append(templates[a][rng.integers(len(templates[a]))])
    first, middle = rng.integers(len(lists.first_names), size=2)
    corpus += [
      " " + lists.first_names[first],
      " " + lists.first_names[middle],
      " " + lists.last_names[rng.integers(len(lists.last_names))],
      " " + lists.values[a][rng.integers(len(lists.values[a]))],
    ]
  return corpus


def _train(corpus: list[str], vocab_size: int, **options) -> bytes:
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(corpus),
    model_writer=model,
    vocab_size=vocab_size,
    model_type="bpe",
    character_coverage=1.0,
    user_defined_symbols=[NAME_TAG, VALUE_TAG],
    pad_id=PAD_ID,
    unk_id=UNK_ID,
    bos_id=BOS_ID,
    eos_id=EOS_ID,
    # Keep spaces exactly as written: the stitching relies on "▁" starting each word.
    normalization_rule_name="identity",
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    split_by_whitespace=True,
    num_threads=1,
    minloglevel=2,
    **options,
  )
  return model.getvalue()


def train_tokenizer(
  lists: lists_lib.ValueLists, vocab_size: int, *, n_sentences: int = 200_000, seed: int = 0
) -> bytes:
  """Trains a BPE SentencePiece model in memory and returns its serialized proto.

  Biography text supports only so many merges (~16k with the paper's lists). Beyond that,
  the vocabulary is filled with reserved control symbols that no text ever produces, much as
  most of a general-purpose 32k vocabulary never occurs in biographies: the softmax keeps its
  full width and the model its parameter count.
  """
  corpus = training_corpus(lists, n_sentences, seed)
  natural = spm.SentencePieceProcessor(
    model_proto=_train(corpus, vocab_size, hard_vocab_limit=False)
  ).vocab_size()
  reserved = [f"<reserved_{i}>" for i in range(max(0, vocab_size - natural))]
  return _train(corpus, vocab_size, control_symbols=reserved)


def main(argv):
  del argv
  proto = train_tokenizer(lists_lib.load_lists(), flags.FLAGS.vocab_size, seed=flags.FLAGS.seed)
  out = pathlib.Path(flags.FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_bytes(proto)
  sp = spm.SentencePieceProcessor(model_proto=proto)
  print(f"wrote {out}: vocab_size={sp.vocab_size()}")


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_integer("vocab_size", 4096, "Vocabulary size.")
  flags.DEFINE_integer("seed", 0, "Seed of the training corpus.")
  flags.DEFINE_string("out", "bioknow/data/tokenizers/bio_4k.model", "Output .model file.")
  app.run(main)
