"""Throughput benchmarks; each prints one JSON line per measured setting.

  python -m bioknow.bench data   # biographies/s on one core: assembly, then the Grain pipeline

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
  """Assembly alone at 64k people, then the whole Grain pipeline (sampling, assembly,
  iteration) under the uniform and power-law schedules at 256k people."""
  from bioknow.data import pipeline, schedules
  from bioknow.data.dataset import DataConfig, build_dataset

  core = _pin_to_one_core()
  b = _BATCH.value
  ds = build_dataset(DataConfig(n_individuals=_N_INDIVIDUALS.value, tokenizer="bio_32k"))
  rng = np.random.default_rng(0)
  rate = _rate(lambda: ds.assemble(rng.integers(0, ds.config.n_individuals, size=b), "train",
                                   rng), _SECONDS.value)
  common = {"bench": "data", "core": core, "batch_size": b, "seq_len": ds.seq_len,
            "target": 20_000}
  print(json.dumps(common | {"stage": "assembly", "n_individuals": ds.config.n_individuals,
                             "biographies_per_second": round(rate * b)}))

  n = 256_000
  ds = build_dataset(DataConfig(n_individuals=n, tokenizer="bio_32k"))
  for name, schedule in [("uniform", schedules.Uniform(n)),
                         ("power_law", schedules.PowerLaw(n, alpha=0.8))]:
    it = iter(pipeline.training_batches(ds, schedule, batch_size=b, n_steps=10**9, seed=0))
    rate = _rate(lambda: next(it), _SECONDS.value)
    print(json.dumps(common | {"stage": f"grain pipeline, {name}", "n_individuals": n,
                               "biographies_per_second": round(rate * b)}))


BENCHES = {"data": bench_data}


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHES:
    sys.exit(f"usage: python -m bioknow.bench {{{'|'.join(BENCHES)}}} [--flags]")
  BENCHES[argv[1]]()


if __name__ == "__main__":
  app.run(main)
