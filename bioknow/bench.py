"""Throughput benchmarks; each prints one JSON line per measured setting.

  python -m bioknow.bench data   # biographies/s on one core, batch 128, paper-scale data

Benchmarks are not tests: run them on a quiet machine and compare against the targets in the
README.
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

_BATCH = flags.DEFINE_integer("batch_size", 128, "Biographies per batch.")
_SECONDS = flags.DEFINE_float("seconds", 5.0, "Minimum measuring time per setting.")
_N_INDIVIDUALS = flags.DEFINE_integer("n_individuals", 64_000, "Population size.")


def _pin_to_one_core() -> int:
  """Runs the process on one core, so the figure is per core whatever the machine."""
  core = min(os.sched_getaffinity(0))
  os.sched_setaffinity(0, {core})
  return core


def _rate(fn, seconds: float) -> float:
  """Calls per second of fn over at least `seconds`, after one warm-up call."""
  fn()
  n, start = 0, time.perf_counter()
  while (elapsed := time.perf_counter() - start) < seconds:
    fn()
    n += 1
  return n / elapsed


def bench_data() -> None:
  from bioknow.data.dataset import DataConfig, build_dataset

  core = _pin_to_one_core()
  ds = build_dataset(DataConfig(n_individuals=_N_INDIVIDUALS.value, tokenizer="bio_32k"))
  rng = np.random.default_rng(0)
  b = _BATCH.value

  def step():
    ds.assemble(rng.integers(0, ds.config.n_individuals, size=b), "train", rng)

  rate = _rate(step, _SECONDS.value)
  print(json.dumps({
      "bench": "data", "stage": "uniform sampling + assembly", "core": core,
      "batch_size": b, "n_individuals": ds.config.n_individuals, "seq_len": ds.seq_len,
      "biographies_per_second": round(rate * b), "target": 20_000}))


BENCHES = {"data": bench_data}


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHES:
    sys.exit(f"usage: python -m bioknow.bench {{{'|'.join(BENCHES)}}} [--flags]")
  BENCHES[argv[1]]()


if __name__ == "__main__":
  app.run(main)
