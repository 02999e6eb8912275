"""What experiments plug into the loop or build from it: the summary (experiments.common.finish),
the plateau stop hook, and the throughput figures (train.progress). Pure Python: no training."""

import numpy as np
import pytest

from bioknow.experiments import common
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train.progress import Progress, format_seconds


def _record(step: int, loss: float) -> dict:
  return {"step": step, "attribute_loss": loss, "no_knowledge_baseline": 2.0}


def test_summary_is_the_final_record_phase_ends_throughput_then_fields(tmp_path):
  trained = loop.Trained([_record(0, 2.0), _record(10, 1.0)], {"wall_seconds": 1.0, "step": -1})
  summary = common.finish(
    RunDir(tmp_path),
    trained,
    {"experiment": "pretrain", "seq_len": 9},
    {"experiment": "patching"},
    summarise=lambda records: {"n_records": len(records)},
  )
  assert list(summary) == [
    "step",
    "attribute_loss",
    "no_knowledge_baseline",
    "first_phase_end_step",
    "plateau_end_step",
    "wall_seconds",
    "experiment",
    "seq_len",
    "n_records",
  ]
  assert summary["step"] == -1 and summary["experiment"] == "patching"  # later keys win
  assert RunDir(tmp_path).summary() == summary


def test_plateau_stop_is_off_unless_asked_and_names_the_step(capsys):
  assert common.plateau_stop(loop.TrainConfig()) is None
  stop = common.plateau_stop(loop.TrainConfig(stop_after_plateau=True))
  assert stop is not None and stop([]) is False
  assert not stop([_record(0, 2.0), _record(10, 1.0)])  # below only at the last: unconfirmed
  assert stop([_record(0, 2.0), _record(10, 1.0), _record(20, 1.0)])
  assert capsys.readouterr().out == "plateau ended: stopped at step 20 (train.stop_after_plateau)\n"


def test_progress_counts_targets_and_times_evaluations():
  assert format_seconds(59) == "0m59s" and format_seconds(3725) == "1h02m"
  progress = Progress(step=0, n_steps=10, every_seconds=0.0)
  assert progress.count({"length_B": np.array([5, 7]), "dropped": 1}) == 12
  with progress.evaluation(0):
    pass
  assert progress.due()
  stats = progress.stats(steps_done=4, n_devices=1)
  assert list(stats) == [
    "wall_seconds",
    "eval_seconds",
    "first_eval_seconds",
    "timeline",
    "steps_per_second",
    "tokens_per_second",
    "device_kind",
    "n_devices",
    "dropped_biographies",
  ]
  assert stats["dropped_biographies"] == 1 and stats["timeline"][0][0] == 0
  assert stats["tokens_per_second"] * stats["wall_seconds"] == pytest.approx(10)  # not the BOS
