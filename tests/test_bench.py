"""The reduced accelerator check (`python -m bioknow.bench device` on a CPU)."""

import json
import time

import pytest

from bioknow.bench import device, throughput
from bioknow.bench.throughput import train_throughput


@pytest.mark.slow
def test_the_reduced_device_check_prints_one_line_per_measurement():
  lines = []
  start = time.perf_counter()
  result = device.main(train_throughput, reduced=True, emit=lines.append)
  elapsed = time.perf_counter() - start
  assert [json.loads(line) for line in lines] == result
  kinds = [r["measurement"] for r in result]
  assert kinds == ["train", "run", "projection", "memory"]
  train, run, projection, memory = result
  assert all(r["bench"] == "device" and r["reduced"] for r in result)
  assert train["tokens_per_second"] > 0 and 0 < train["mfu"] < 1
  # Measured after warm-up windows that agree (or says they never did), and says what it took.
  windows = train["warmup_windows_steps_per_second"]
  assert 2 <= len(windows) <= throughput.WARMUP_WINDOWS and train["warmup_seconds"] > 0
  agree = abs(windows[-1] - windows[-2]) <= throughput.WARMUP_AGREEMENT * windows[-1]
  assert train["warmup_converged"] == agree
  assert agree or len(windows) == throughput.WARMUP_WINDOWS
  assert run["n_steps"] == device.REDUCED.runs[0][1] and run["n_evals"] == 2
  assert run["train_seconds"] + run["eval_seconds"] <= run["wall_seconds"] + 0.02
  assert projection["n_steps"] == 16_000 and projection["wall_seconds"] >= run["wall_seconds"]
  assert 0 < run["first_step_seconds"] <= run["train_seconds"]
  assert 0 < run["first_eval_seconds"] <= run["eval_seconds"]
  assert 0 < projection["mfu"] < 1 and 0 < run["steady_train_mfu"] < 1
  assert memory["peak_bytes"] > 0
  assert elapsed < 120  # about 30 s on a quiet 2-core machine


def test_the_projection_counts_compilation_once():
  """Values computed by hand. 100 steps, evaluations at steps 0, 10, 50 and 100 ending 30, 45,
  51 and 58 s after the start, with 20, 22, 24 and 26 s of evaluation so far: from step 10 on,
  2 s per evaluation and (13 - 4) / 90 = 0.1 s per step; the other 58 - 10 - 8 = 40 s are paid
  once."""
  timeline = [[0, 30.0, 20.0], [10, 45.0, 22.0], [50, 51.0, 24.0], [100, 58.0, 26.0]]
  summary = {"wall_seconds": 58.0, "eval_seconds": 26.0, "timeline": timeline}
  got = device.project(summary, n_steps=100, n_evals=4, full_steps=1000, full_evals=10)
  assert got["seconds_per_step"] == pytest.approx(0.1)
  assert got["seconds_per_eval"] == pytest.approx(2.0)
  assert got["once_seconds"] == pytest.approx(40.0)
  assert got["wall_seconds"] == pytest.approx(40 + 100 + 20)
  # Two evaluations only (steps 0 and 10): the first step (3 s of 12 s of training) and the
  # first evaluation (7 s of 9 s) stand for the cost paid once: 1 s per step, 2 s per
  # evaluation, and 21 - 10 - 4 = 7 s once.
  summary = {
    "wall_seconds": 21.0,
    "eval_seconds": 9.0,
    "first_step_seconds": 3.0,
    "first_eval_seconds": 7.0,
    "timeline": [[0, 7.0, 7.0], [10, 21.0, 9.0]],
  }
  got = device.project(summary, n_steps=10, n_evals=2, full_steps=100, full_evals=21)
  assert (got["seconds_per_step"], got["seconds_per_eval"]) == (1.0, 2.0)
  assert got["once_seconds"] == 7.0 and got["wall_seconds"] == 7 + 100 + 42


def test_device_check_parts_are_checked_before_any_compute():
  with pytest.raises(ValueError, match=r"parts: got \['pape'\]; this check's parts are"):
    device.main(train_throughput, reduced=True, emit=print, only=["pape"])
  lines = device.main(train_throughput, reduced=True, emit=lambda _: None, only=["tiny"])
  assert [r["measurement"] for r in lines] == ["run", "projection", "memory"]


@pytest.mark.slow
def test_the_paper_check_runs_to_the_end_in_its_reduced_form(tmp_path):
  from bioknow.bench import paper

  line = paper.paper_check(str(tmp_path / "phases"), reduced=True)
  assert json.loads(json.dumps(line)) == line  # one JSON line
  assert line["n_steps"] == 300 and line["n_evals"] == 7 and line["reduced"]
  assert (tmp_path / "phases" / "summary.json").is_file()
  assert 0 < line["compile_and_first_seconds"] < line["wall_seconds"]
  assert line["train_seconds"] + line["eval_seconds"] == pytest.approx(line["wall_seconds"], 0.01)
  assert line["steady_steps_per_second"] > 0 and 0 < line["steady_train_mfu"] < 1
  assert set(line["accuracy_reaches"]) == {"0.01", "0.1", "0.5", "0.9", "0.99"}
  for key in ("first_phase_end", "plateau_end", "final_attribute_loss", "auroc"):
    assert key in line
  assert line["peak_bytes"] > 0
  again = paper.paper_check(str(tmp_path / "phases"), reduced=True)  # finished: read
  assert again["final_attribute_loss"] == line["final_attribute_loss"]
