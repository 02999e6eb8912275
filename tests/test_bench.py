"""The reduced accelerator check (`python -m bioknow.bench device` on a CPU)."""

import json
import time

from bioknow import bench_device
from bioknow.bench import train_throughput


def test_the_reduced_device_check_prints_one_line_per_measurement():
  lines = []
  start = time.perf_counter()
  result = bench_device.main(train_throughput, reduced=True, emit=lines.append)
  elapsed = time.perf_counter() - start
  assert [json.loads(line) for line in lines] == result
  kinds = [r["measurement"] for r in result]
  assert kinds == ["train", "run", "projection", "memory"]
  train, run, projection, memory = result
  assert all(r["bench"] == "device" and r["reduced"] for r in result)
  assert train["tokens_per_second"] > 0 and 0 < train["mfu"] < 1
  assert run["n_steps"] == bench_device.REDUCED.runs[0][1] and run["n_evals"] == 2
  assert run["train_seconds"] + run["eval_seconds"] <= run["wall_seconds"] + 0.02
  assert projection["n_steps"] == 16_000 and projection["wall_seconds"] >= run["wall_seconds"]
  assert memory["peak_bytes"] > 0
  assert elapsed < 120  # about 30 s on a quiet 2-core machine
