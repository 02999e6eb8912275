"""The reduced accelerator check (`python -m bioknow.bench device` on a CPU)."""

import json
import time

import pytest

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
  assert 0 < run["first_step_seconds"] <= run["train_seconds"]
  assert 0 < run["first_eval_seconds"] <= run["eval_seconds"]
  assert 0 < projection["mfu"] < 1 and 0 < run["train_mfu"] < 1
  assert memory["peak_bytes"] > 0
  assert elapsed < 120  # about 30 s on a quiet 2-core machine


def test_the_projection_counts_compilation_once():
  """Values computed by hand: 10 steps in 12 s of training, the first 3 s (compiling); 3
  evaluations in 9 s, the first 7 s."""
  summary = {
    "wall_seconds": 21.0,
    "eval_seconds": 9.0,
    "first_step_seconds": 3.0,
    "first_eval_seconds": 7.0,
  }
  got = bench_device.project(summary, n_steps=10, n_evals=3, full_steps=100, full_evals=21)
  assert got["seconds_per_step_after_first"] == 1.0  # (12 - 3) / 9
  assert got["seconds_per_eval_after_first"] == 1.0  # (9 - 7) / 2
  assert got["train_seconds"] == 3 + 99 * 1.0
  assert got["eval_seconds"] == 7 + 20 * 1.0


def test_device_check_parts_are_checked_before_any_compute():
  with pytest.raises(ValueError, match=r"parts: got \['pape'\]; this check's parts are"):
    bench_device.main(train_throughput, reduced=True, emit=print, only=["pape"])
  lines = bench_device.main(train_throughput, reduced=True, emit=lambda _: None, only=["tiny"])
  assert [r["measurement"] for r in lines] == ["run", "projection", "memory"]
