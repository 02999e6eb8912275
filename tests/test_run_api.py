"""bioknow.run: the README's Python example run as written (on a tiny config), skipping a finished
run, resuming an interrupted one, and refusing a directory that holds another config."""

import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import types

import fiddle as fdl
import grain
import jax.numpy as jnp
import pytest

import bioknow
from bioknow import configs, executors, launch_checks, runlock, running
from bioknow.rundir import RunDir
from bioknow.train import checkpoint, loop
from bioknow.train.evaluation import EvalConfig

PRETRAIN = configs.pretrain  # the real one, before a test replaces it


def _tiny_pretrain(scale: str):
  """pretrain(scale) shrunk to the tiny model on 50 people (as tests/test_loop.py's TINY):
  the example's 200 steps take seconds."""
  cfg = PRETRAIN(scale)
  cfg.data.n_individuals, cfg.data.n_heldout = 50, 16
  cfg.model.preset = "tiny"
  cfg.train.batch_size = 8
  cfg.eval = fdl.Config(EvalConfig, steps=(0, 100), n_sequences=32, batch_size=32, n_attention=32)
  return cfg


def _example() -> str:
  """The Python example of bioknow's docstring (what the README shows)."""
  blocks = re.findall(r"```python\n(.*?)```", bioknow.__doc__ or "", flags=re.S)
  assert len(blocks) == 1, "bioknow's docstring holds one ```python example"
  return blocks[0]


def test_the_readme_shows_exactly_the_tested_example():
  readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  assert f"```python\n{_example()}```" in readme


def _tree(root: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _no_training(*args, **kwargs):
  raise AssertionError("nothing may train here")


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(configs, "pretrain", _tiny_pretrain)
  example = _example()
  namespace: dict = {}
  exec(compile(example, "the README's example", "exec"), namespace)  # pylint: disable=exec-used
  summary, cfg = namespace["summary"], namespace["cfg"]
  run = tmp_path / "runs" / "mine"
  assert {"config.json", "config.txt", "summary.json", "metrics.jsonl"} <= set(
    p.name for p in run.iterdir()
  )
  assert summary == json.loads((run / "summary.json").read_text()) and summary["step"] == 200
  assert [r["step"] for r in RunDir(run).records()] == [0, 100, 200]
  # config.json is the launcher's: the same file for the same config, and it reads back.
  RunDir(tmp_path / "launcher").write_config(cfg)
  assert (run / "config.json").read_bytes() == (tmp_path / "launcher/config.json").read_bytes()
  assert RunDir(run).config_changes(cfg) == {}

  # Again: the finished run is skipped, nothing trains or is written.
  before = _tree(tmp_path)
  with monkeypatch.context() as patch:
    patch.setattr(loop, "train", _no_training)
    again: dict = {}
    exec(compile(example, "the README's example", "exec"), again)  # pylint: disable=exec-used
  assert again["summary"] == summary and _tree(tmp_path) == before

  # Interrupted after step 100 (no summary.json, no later checkpoint): it resumes from step
  # 100 to the same metrics.
  killed = tmp_path / "runs" / "killed"
  shutil.copytree(run, killed)
  (killed / "summary.json").unlink()
  shutil.rmtree(killed / "checkpoints" / "200")
  resumed = bioknow.run(cfg, killed)
  assert resumed["step"] == 200 and resumed["attribute_loss"] == summary["attribute_loss"]
  assert (killed / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
  assert RunDir(killed).checkpoint_steps() == [0, 100, 200]

  # A fine-tuning config whose source is that Python-made run passes the source check; a
  # relative source is a sibling of the fine-tuning run.
  finetune = configs.finetune("small", "mine", cfg, n_finetune=10)
  running.build(finetune).check_sources(RunDir(tmp_path / "runs" / "ft"))


def test_another_config_in_the_same_directory_is_refused_before_anything_runs(
  tmp_path, monkeypatch
):
  cfg = _tiny_pretrain("small")
  run = RunDir(tmp_path / "mine")
  run.write_config(cfg)
  run.write_records([{"step": 0, "lr": 0.0}])
  other = _tiny_pretrain("small")
  other.train.n_steps = 300
  before = _tree(tmp_path)
  monkeypatch.setattr(loop, "train", _no_training)
  with pytest.raises(running.OtherRunError) as refused:
    bioknow.run(other, run.path)
  assert str(refused.value) == (
    f"{run.path} holds a run of another config (train.n_steps: 1250 -> 300); give another run "
    "directory, or delete that one to start afresh."
  )
  assert _tree(tmp_path) == before
  # Neither is a directory that holds something else, nor one that is a file.
  (tmp_path / "notes").mkdir()
  (tmp_path / "notes" / "todo.txt").write_text("mine")
  with pytest.raises(ValueError, match=r"notes exists but holds no config.json, so it is no run"):
    bioknow.run(cfg, tmp_path / "notes")
  with pytest.raises(ValueError, match=r"todo.txt is a file; give a directory"):
    bioknow.run(cfg, tmp_path / "notes" / "todo.txt")
  assert _tree(tmp_path) == before | {"notes/todo.txt": b"mine"}


def test_bad_configs_are_refused_with_one_sentence_and_nothing_written(tmp_path):
  cfg = _tiny_pretrain("small")
  cfg.train.n_steps = 0
  with pytest.raises(ValueError, match=r"^train.n_steps: got 0; it must be an integer >= 1.$"):
    bioknow.run(cfg, tmp_path / "a")
  with pytest.raises(TypeError, match=r"^config: got a PretrainConfig; give the fiddle config"):
    bioknow.run(fdl.build(_tiny_pretrain("small")), tmp_path / "a")
  with pytest.raises(TypeError, match=r"^config: it builds a dict, not an experiment"):
    bioknow.run(fdl.Config(dict, a=1), tmp_path / "a")
  with pytest.raises(ValueError, match=r"^source: .*pretrain does not exist; run its pretraining"):
    bioknow.run(configs.finetune("small", n_finetune=10), tmp_path / "a")
  assert not list(tmp_path.iterdir())


def test_the_executors_run_points_through_bioknow_run(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(running, "run_built", lambda *args: calls.append(args) or {"step": 1})
  cfg = _tiny_pretrain("small")
  experiment = running.build(cfg)
  assert executors.run_point("p", cfg, experiment, tmp_path)[1] == {"step": 1}
  [(called_cfg, called_experiment, run_dir)] = calls
  assert called_cfg is cfg and called_experiment is experiment and run_dir.path == tmp_path / "p"


def test_every_experiment_kind_has_a_base_config_that_checks():
  for scale in configs.SCALES:
    kinds = [
      configs.pretrain(scale),
      configs.patching(scale, reference_step=0),
      configs.finetune(scale, "pretrain", n_finetune=10),
      configs.toy_memory(scale),
    ]
    for cfg in kinds:
      running.build(cfg)  # raises unless it builds an experiment that passes its check
  with pytest.raises(ValueError, match=r"^scale: got 'huge'; allowed: small, paper.$"):
    configs.finetune("huge")


def _hold_lock(path: pathlib.Path) -> subprocess.Popen:
  """Another process holding run directory `path`'s lock, as a running launcher would."""
  code = (
    "import pathlib, sys, time; from bioknow import runlock\n"
    f"with runlock.held(pathlib.Path({str(path)!r})):\n"
    "  print('held', flush=True); time.sleep(120)\n"
  )
  holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
  assert holder.stdout is not None and holder.stdout.readline() == "held\n"
  return holder


@pytest.mark.slow
def test_a_run_held_by_another_process_is_refused_naming_it_and_freed_when_it_is_killed(
  tmp_path, monkeypatch
):
  cfg = _tiny_pretrain("small")
  cfg.train.n_steps = 100
  path = tmp_path / "mine"
  holder = _hold_lock(path)
  try:
    monkeypatch.setattr(loop, "train", _no_training)
    with pytest.raises(runlock.RunLocked) as refused:
      bioknow.run(cfg, path)
    assert re.fullmatch(
      rf"{path} is being run by pid {holder.pid} on \S+ since \S+; wait for it to end or "
      r"stop it, then run this point again\.",
      str(refused.value),
    )
    assert sorted(p.name for p in path.iterdir()) == ["lock"]  # nothing written
    # Through the launcher's executors: the point fails with that sentence, the next runs.
    status, _ = executors.run_point("mine", cfg, running.build(cfg), tmp_path)
    assert status == f"FAILED: {refused.value}"
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  monkeypatch.undo()
  # SIGKILL leaves no stale lock: the run goes ahead.
  assert bioknow.run(cfg, path)["step"] == 100


@pytest.mark.slow
def test_a_finished_run_with_damaged_metrics_is_reported_and_repaired_as_it_says(tmp_path):
  cfg = _tiny_pretrain("small")
  cfg.train.n_steps = 200
  path = tmp_path / "mine"
  bioknow.run(cfg, path)
  whole = (path / "metrics.jsonl").read_text()
  for damage, expected in (
    (lambda: (path / "metrics.jsonl").write_text(whole.splitlines(True)[0]), "ends at step 0"),
    (lambda: (path / "metrics.jsonl").write_text(whole[:-20]), "ends in a torn line"),
    (lambda: (path / "metrics.jsonl").unlink(), "is missing"),
  ):
    damage()
    with pytest.raises(running.DamagedRun, match=expected):
      bioknow.run(cfg, path)
    status, _ = executors.run_point("mine", cfg, running.build(cfg), tmp_path)
    assert status.startswith("FAILED: ") and "delete" in status and "summary.json" in status
  # The repair it names: delete summary.json and run again; the run resumes from its last
  # checkpoint with a record (none here: the records are gone) and ends where it did.
  (path / "summary.json").unlink()
  assert bioknow.run(cfg, path)["step"] == 200
  assert (path / "metrics.jsonl").read_text() == whole


@pytest.mark.slow
def test_a_corrupted_checkpoint_is_set_aside_and_the_run_resumes_to_identical_results(
  tmp_path, capsys
):
  cfg = _tiny_pretrain("small")
  cfg.train.n_steps = 200
  whole = tmp_path / "whole"
  bioknow.run(cfg, whole)
  # Interrupted once it had saved step 200 (no summary yet), then two bytes of the largest
  # file of that checkpoint flipped on disk.
  broken = tmp_path / "broken"
  shutil.copytree(whole, broken)
  (broken / "summary.json").unlink()
  largest = max((broken / "checkpoints" / "200").rglob("*"), key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  for i in (len(data) // 2, len(data) // 2 + 1):
    data[i] ^= 0xFF
  largest.write_bytes(bytes(data))
  capsys.readouterr()
  assert bioknow.run(cfg, broken)["step"] == 200
  out = capsys.readouterr().out
  assert "skipped checkpoint step 200: it does not restore (CorruptCheckpoint: " in out
  assert "resuming from step 100" in out
  assert (broken / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()
  assert (broken / "skipped_checkpoints" / "200").is_dir()
  # A checkpoints/ that is no directory fails at once, in one sentence, dropping nothing.
  (broken / "summary.json").unlink()
  shutil.rmtree(broken / "checkpoints")
  (broken / "checkpoints").write_text("not a directory")
  records = (broken / "metrics.jsonl").read_text()
  with pytest.raises(ValueError, match=r"checkpoints is not a directory; move it away"):
    bioknow.run(cfg, broken)
  assert (broken / "metrics.jsonl").read_text() == records


def test_a_checkpoint_whose_arrays_are_not_those_saved_raises_corrupt_checkpoint(
  tmp_path, monkeypatch
):
  model = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3, jnp.bfloat16)}
  opt_state = {"count": jnp.array(7, jnp.int32)}
  assert checkpoint.fingerprint(model, opt_state) == checkpoint.fingerprint(model, opt_state)
  flipped = {**model, "w": model["w"].at[1, 2].set(-5.0)}
  assert checkpoint.fingerprint(flipped, opt_state) != checkpoint.fingerprint(model, opt_state)
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  iterator = iter(grain.MapDataset.range(4).to_iter_dataset())
  real = checkpoint.fingerprint
  monkeypatch.setattr(checkpoint, "fingerprint", lambda *trees: "not-these-arrays")
  ckpt.save(0, model, opt_state, iterator, {"step": 0})
  ckpt.wait()
  monkeypatch.setattr(checkpoint, "fingerprint", real)
  with pytest.raises(checkpoint.CorruptCheckpoint, match=r"^checkpoint step 0: its arrays'"):
    ckpt.restore(0, model, opt_state, iter(grain.MapDataset.range(4).to_iter_dataset()))


@pytest.mark.slow
def test_a_run_whose_source_changed_is_stale_until_rerun(tmp_path, capsys):
  source = _tiny_pretrain("small")
  source.train.n_steps = 100
  bioknow.run(source, tmp_path / "src")
  finetune = configs.finetune("small", "src", source, n_finetune=10)
  finetune.train.n_steps = 20
  finetune.eval = fdl.Config(
    EvalConfig, steps=(0, 20), n_sequences=32, batch_size=32, n_attention=0
  )
  bioknow.run(finetune, tmp_path / "ft")
  recorded = json.loads((tmp_path / "ft" / "sources.json").read_text())
  assert set(recorded["src"]) == {"config", "step", "checkpoint"}
  assert recorded["src"]["step"] == 100 and recorded["src"]["checkpoint"]
  assert bioknow.run(finetune, tmp_path / "ft")["step"] == 20  # unchanged source: skipped
  # The source is rerun to other weights (another seed, same steps): its dependent is stale.
  shutil.rmtree(tmp_path / "src")
  source.train.seed = 1
  bioknow.run(source, tmp_path / "src")
  with pytest.raises(running.StaleRun, match=r"ft is stale: its source .*src changed since it"):
    bioknow.run(finetune, tmp_path / "ft")
  status, _ = executors.run_point("ft", finetune, running.build(finetune), tmp_path)
  assert status.startswith("FAILED: ") and "(its config and checkpoint differ)" in status
  # The launcher's check names it too, and --overwrite takes it for a rerun.
  point = types.SimpleNamespace(name="ft", cfg=finetune, experiment=running.build(finetune))
  with pytest.raises(ValueError, match=r"point ft: .*ft is stale: its source"):
    launch_checks.runs_to_replace([point], tmp_path, overwrite=False)
  assert [r.path for r in launch_checks.runs_to_replace([point], tmp_path, True)] == [
    tmp_path / "ft"
  ]


@pytest.mark.slow
def test_the_runs_time_is_summed_over_every_attempt_and_survives_a_rebuild(tmp_path):
  cfg = _tiny_pretrain("small")
  cfg.train.n_steps = 200
  run = tmp_path / "mine"
  first = bioknow.run(cfg, run)
  assert first["attempts"] == 1 and first["wall_seconds"] == first["attempt_wall_seconds"]
  # Killed after step 100: its time up to then is kept, and the resumption's added.
  (run / "summary.json").unlink()
  shutil.rmtree(run / "checkpoints" / "200")
  resumed = bioknow.run(cfg, run)
  ledger = json.loads((run / "attempts.json").read_text())
  assert resumed["attempts"] == 2 == len(ledger)
  assert resumed["wall_seconds"] == pytest.approx(sum(e["wall_seconds"] for e in ledger.values()))
  assert resumed["wall_seconds"] > first["wall_seconds"]
  assert [e["steps"] for e in ledger.values()] == [200, 100]
  # Rebuilding the summary (deleted, run again: it resumes at the last step) loses nothing.
  (run / "summary.json").unlink()
  rebuilt = bioknow.run(cfg, run)
  assert rebuilt["attempts"] == 3 and rebuilt["wall_seconds"] >= resumed["wall_seconds"]
