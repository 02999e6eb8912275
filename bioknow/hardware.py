"""The device's own peak matmul rate (FLOP/s), measured: the yardstick of model FLOP utilisation
in the benchmarks (bioknow.bench) and of the run-time estimate of a sweep (launch)."""

import time

import jax


def peak_matmul_flops(dtype, n: int | None = None) -> float:
  """Best FLOP/s of a large square matmul (n x n) on the default device: the machine's own
  peak. Random entries: a matrix of ones or zeros flips fewer bits and runs faster than
  real data (on an H200, 894 against 788 TFLOP/s of random data)."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  best = 0.0
  for _ in range(5):
    start = time.perf_counter()
    for _ in range(4):
      out = f(a)
    out.block_until_ready()
    best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start))
  return best
