"""End to end: a tiny pretraining run through the launcher, killed and resumed."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import tensorstore as ts
from conftest import tiny_overrides

from bioknow.data.dataset import DataConfig
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.models.transformer import ModelConfig
from bioknow.train import loop
from bioknow.train import step as step_lib
from bioknow.train.evaluation import EvalConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = tiny_overrides(40, (0, 10, 20, 30, 40), flag=True)


def _launch(workdir, *extra, wait=True):
  cmd = [
    sys.executable,
    "-m",
    "bioknow.launch",
    "--sweep=sweeps/quickstart.py",
    f"--workdir={workdir}",
    *TINY,
    *extra,
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  if wait:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
  return subprocess.Popen(
    cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )


def _tiny(n_steps=30, eval_steps=(0, 10, 20, 30), n_attention=0, **train) -> PretrainConfig:
  """An in-process pretraining run of the tiny model on 50 people."""
  return PretrainConfig(
    data=DataConfig(n_individuals=50, n_heldout=16, tokenizer="bio_4k"),
    model=ModelConfig(preset="tiny"),
    train=loop.TrainConfig(n_steps=n_steps, batch_size=8, **train),
    eval=EvalConfig(steps=eval_steps, n_sequences=32, batch_size=32, n_attention=n_attention),
  )


def _zarr(run):
  spec = {
    "driver": "zarr3",
    "kvstore": {"driver": "file", "path": str(run / "per_individual.zarr")},
  }
  return ts.open(spec).result().read().result()


@pytest.mark.slow
def test_killed_run_resumes_to_identical_metrics(tmp_path):
  done = _launch(tmp_path / "a")
  assert done.returncode == 0, done.stderr[-2000:]
  reference = tmp_path / "a" / "quickstart"

  proc = _launch(tmp_path / "b", wait=False)
  run = tmp_path / "b" / "quickstart"
  deadline = time.time() + 300
  while not (run / "checkpoints" / "20").is_dir() and time.time() < deadline:
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (run / "summary.json").exists()
  resumed = _launch(tmp_path / "b")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming from step" in resumed.stdout

  assert (run / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
  np.testing.assert_array_equal(_zarr(run), _zarr(reference))
  records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [0, 10, 20, 30, 40]
  summary = json.loads((run / "summary.json").read_text())
  for key in (
    "plateau_end_step",
    "wall_seconds",
    "steps_per_second",
    "tokens_per_second",
    "device_kind",
    "attribute_loss",
    "unseen_attribute_loss",
  ):
    assert key in summary
  for key in (
    "step",
    "lr",
    "train_loss",
    "attribute_loss",
    "attribute_accuracy",
    "no_knowledge_baseline",
    "unseen_attribute_loss",
    "unseen_attribute_accuracy",
    "seen_max_prob",
    "seen_entropy",
    "unseen_max_prob",
    "unseen_entropy",
    "hallucination_auroc",
    "attribute_loss/birth_date",
    "unseen_attribute_loss/birth_date",
    "attn_name_to_name",
    "attn_value_to_name",
    "attn_value_to_text",
    "attn_sharpness",
  ):
    assert key in records[-1], key
  assert len(records[-1]["attn_sharpness"]) == 2  # one per layer
  assert (run / "config.json").exists() and "train.n_steps = 40" in (run / "config.txt").read_text()

  again = _launch(tmp_path / "b")  # finished points are skipped
  assert again.returncode == 0 and "done (skipped)" in again.stdout


@pytest.mark.slow
def test_bad_config_fails_before_anything_is_written(tmp_path):
  out = _launch(tmp_path / "c", "--config=set:model.n_heads=3")
  assert out.returncode != 0
  assert "model.n_heads: 3 heads do not divide d_model 32" in out.stderr
  assert not (tmp_path / "c").exists()
  out = _launch(tmp_path / "c", "--config=set:trian.n_steps=5")
  assert "closest valid path: train.n_steps" in out.stderr and not (tmp_path / "c").exists()
  out = _launch(tmp_path / "c", "--config=set:train.batch_size=0")
  assert "train.batch_size: got 0" in out.stderr and not (tmp_path / "c").exists()
  out = _launch(tmp_path / "c", "--config=set:eval.steps=(0,100)")
  assert "eval.steps" in out.stderr and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_dry_run_lists_points_and_runs_nothing(tmp_path):
  out = _launch(tmp_path / "d", "--dry_run")
  assert out.returncode == 0
  assert "quickstart" in out.stdout and "1 points, 40 training steps" in out.stdout
  assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  real_step = step_lib.train_step
  calls = []

  def poisoned(*args):
    model, opt_state, loss = real_step(*args)
    calls.append(1)
    return model, opt_state, loss * (np.nan if len(calls) > 12 else 1.0)

  monkeypatch.setattr(step_lib, "train_step", poisoned)
  cfg = _tiny(progress_seconds=0.0)
  with pytest.raises(loop.TrainingDiverged, match="last good checkpoint is step 10"):
    cfg.run(tmp_path)
  assert not (tmp_path / "summary.json").exists()
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
    "0",
    "10",
  ]


def test_batch_must_split_over_the_devices():
  with pytest.raises(ValueError, match="train.batch_size: 7 is not divisible by the 2 devices"):
    loop.TrainConfig(batch_size=7).check()
  assert loop.TrainConfig(batch_size=8, n_devices=1).check() is None
  assert loop.TrainConfig(batch_size=8, n_devices=1).device_count() == 1


@pytest.mark.parametrize("name", ["seen", "heldout", "seen_train_templates"])
def test_an_eval_group_may_not_take_a_standard_set_name(name):
  cfg = PretrainConfig(
    data=DataConfig(n_individuals=50, n_heldout=16, tokenizer="bio_4k"),
    eval_groups=((name, 0, 10),),
  )
  with pytest.raises(ValueError, match=f"eval_groups: the name '{name}' is taken"):
    cfg.check()


@pytest.mark.slow
def test_stop_after_plateau_ends_the_run_at_the_confirming_evaluation(tmp_path, monkeypatch):
  """With train.stop_after_plateau the run stops at the evaluation that confirms the plateau's
  end (here faked at the evaluation of step 10, confirmed at step 20), and the lr logged is the
  full run's schedule."""
  real = loop.evaluation.phase_ends

  def fake(records, finished=True):
    return real(records, finished) | {"plateau_end_step": 10 if len(records) >= 3 else None}

  monkeypatch.setattr(loop.evaluation, "phase_ends", fake)
  cfg = _tiny(40, (0, 10, 20, 30, 40), stop_after_plateau=True)
  summary = cfg.run(tmp_path)
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [0, 10, 20]
  assert summary["step"] == 20 and summary["plateau_end_step"] == 10
  full = step_lib.learning_rate(cfg.optimizer, 40)
  assert records[-1]["lr"] == pytest.approx(float(full(20)))


@pytest.mark.slow
def test_nothing_compiles_after_the_first_step_and_evaluation(tmp_path, monkeypatch):
  """The loop compiles its programs at the first evaluation and the first step (and the
  scalar ops of the first progress line); later steps, evaluations (with attention
  statistics) and checkpoints compile nothing. Backend compilations are counted by jax's
  monitoring events, by train_step call."""
  compiled_at: list[int] = []
  calls: list[int] = []

  def on_event(event: str, seconds: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
      compiled_at.append(len(calls))

  real_step = step_lib.train_step

  def counted(*args):
    calls.append(1)
    return real_step(*args)

  monkeypatch.setattr(step_lib, "train_step", counted)
  cfg = _tiny(n_attention=16, progress_seconds=0.0)
  jax.monitoring.register_event_duration_secs_listener(on_event)
  try:
    cfg.run(tmp_path)
  finally:
    jax.monitoring.unregister_event_duration_listener(on_event)
  assert len(calls) == 30 and compiled_at
  assert max(compiled_at) <= 2, f"compiled during train_step calls {sorted(set(compiled_at))}"


@pytest.mark.slow
@pytest.mark.parametrize("planned", [None, 10])
def test_steps_compute_real_tokens_unless_a_batch_has_more_than_planned(
  tmp_path, monkeypatch, planned
):
  """A run's steps get the planned n_compute (pipeline.compute_tokens); a batch with more real
  tokens than planned (here: a plan of 10) is computed whole (n_compute None)."""
  from bioknow.experiments import pretrain  # pylint: disable=import-outside-toplevel

  seen: list = []
  real_step = step_lib.train_step

  def recorded(*args):
    seen.append(args[9])
    return real_step(*args)

  monkeypatch.setattr(step_lib, "train_step", recorded)
  if planned:
    monkeypatch.setattr(pretrain.pipeline, "compute_tokens", lambda *a: planned)
  cfg = _tiny(6, (0, 6), progress_seconds=0.0, n_devices=1)
  cfg.run(tmp_path)
  if planned:
    assert seen == [None] * 6
  else:
    assert len(seen) == 6 and len(set(seen)) == 1 and seen[0] % 8 == 0
