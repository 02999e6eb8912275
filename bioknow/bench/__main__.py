"""Throughput benchmarks; each prints one JSON line per measured setting.

  python -m bioknow.bench data   # biographies/s on one core: assembly, then the Grain pipeline
  python -m bioknow.bench train  # tokens/s, steps/s and model FLOP utilisation, paper and small
  python -m bioknow.bench eval   # evaluation sequences/s, without and with attention statistics
  python -m bioknow.bench device # the accelerator check (`make device-check`); reduced on CPU

Benchmarks are not tests: run them on a quiet machine and compare against the targets in the
README.
"""

import json
import sys

from absl import app, flags

from bioknow.bench import throughput

_BATCH = flags.DEFINE_integer("batch_size", 128, "Biographies per batch.")
_SECONDS = flags.DEFINE_float("seconds", 5.0, "Minimum measuring time per setting.")
# bioknow.data defines the same flag; a process importing both (the tests) shares it.
if "n_individuals" not in flags.FLAGS:
  flags.DEFINE_integer("n_individuals", 64_000, "Population size.")
_WORKDIR = flags.DEFINE_string(
  "paper_workdir", None, "bench paper: its run directory (default runs/paper_check)."
)
_SCALES = flags.DEFINE_list("scales", ["paper", "small"], "Model scales for `train` and `eval`.")
_REDUCED = flags.DEFINE_bool(
  "reduced", None, "`device`: the reduced form (tiny shapes, few steps); default: on CPU only."
)
_PARTS = flags.DEFINE_list(
  "parts", None, "`device`: run only these parts (train, then model presets); default: all."
)


def bench_data() -> None:
  """Assembly alone at 64k people, then the whole Grain pipeline (sampling, assembly,
  iteration) under the uniform and power-law schedules at 256k people."""
  throughput.data_throughput(_BATCH.value, flags.FLAGS.n_individuals, _SECONDS.value)


def bench_train() -> None:
  """Training throughput of the paper-shape (batch 8 on a CPU) and the small-shape model."""
  import jax

  on_cpu = jax.default_backend() == "cpu"
  for scale in _SCALES.value:
    batch_size = 8 if on_cpu and scale == "paper" else None
    result = throughput.train_throughput(scale, batch_size, None, _SECONDS.value)
    print(json.dumps({"bench": "train"} | result), flush=True)


def bench_eval() -> None:
  """Evaluation throughput of the paper-shape (batch 64 on a CPU) and the small-shape model."""
  import jax

  on_cpu = jax.default_backend() == "cpu"
  for scale in _SCALES.value:
    batch_size = 64 if on_cpu and scale == "paper" else None
    for result in throughput.eval_throughput(scale, _SECONDS.value, batch_size):
      print(json.dumps({"bench": "eval"} | result), flush=True)


def bench_device() -> None:
  """The accelerator check (device.py): one JSON line per measurement."""
  from bioknow.bench import device

  device.main(throughput.train_throughput, reduced=_REDUCED.value, only=_PARTS.value)


def bench_paper() -> None:
  """The paper check (paper.py): the default run to the end, then one JSON line."""
  import jax

  from bioknow.bench import paper

  reduced = _REDUCED.value or jax.default_backend() == "cpu"
  # Where the claims command looks for the phases sweep's point: --score_only --scale=paper
  # --only=three_phases,hallucination --workdir=runs/paper_check scores it.
  default = "runs/paper_check" + ("_reduced" if reduced else "") + "/phases/phases"
  workdir = _WORKDIR.value or default
  print(json.dumps(paper.paper_check(workdir, reduced)), flush=True)


BENCHES = {
  "data": bench_data,
  "train": bench_train,
  "eval": bench_eval,
  "device": bench_device,
  "paper": bench_paper,
}


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHES:
    sys.exit(f"usage: python -m bioknow.bench {{{'|'.join(BENCHES)}}} [--flags]")
  BENCHES[argv[1]]()


if __name__ == "__main__":
  app.run(main)
