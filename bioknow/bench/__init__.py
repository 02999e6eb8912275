"""Benchmarks: throughput (data, train, eval), the accelerator check and the paper check; each
prints one JSON line per measurement. Run them with `python -m bioknow.bench
data|train|eval|device|paper` (or `make bench`, `make device-check`, `make paper-check`); see
docs/benchmarks.md.

  throughput  biographies/s, training tokens/s and MFU, evaluation sequences/s
  device      the accelerator check (`make device-check`)
  paper       the paper check (`make paper-check`)
  __main__    the command line and its flags

Benchmarks are not tests: run them on a quiet machine.
"""
