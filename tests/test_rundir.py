"""RunDir: the config written once and read back as a config and as leaves; records and an
atomic summary; checkpoint steps; sources."""

import json
import subprocess
import sys

import fiddle as fdl
import pytest

from bioknow import configs
from bioknow.experiments.finetune import FinetuneConfig
from bioknow.rundir import RunDir, config_leaves


def test_config_round_trips_as_config_and_as_leaves_with_defaults(tmp_path):
  cfg = configs.pretrain("small")
  cfg.eval_groups = (("first", 0, 10),)
  run = RunDir(tmp_path / "run")
  run.write_config(cfg)
  built, expected = run.experiment(), fdl.build(cfg)
  assert built.data == expected.data and built.eval_groups == expected.eval_groups
  assert built.build_schedule() == expected.build_schedule()
  leaves = run.leaves()
  assert leaves["data.n_individuals"] == expected.data.n_individuals
  assert leaves["data.n_extra"] == 0  # unset: its default
  assert leaves["data.birth_years"] == list(expected.data.birth_years)
  assert leaves["eval_groups"] == [["first", 0, 10]]
  assert leaves["schedule.n_individuals"] is None  # unset, no default
  assert f"train.n_steps = {expected.train.n_steps}" in (run / "config.txt").read_text()
  assert not list(run.path.glob("*.tmp"))


def test_dataclass_defaults_are_expanded_into_leaves():
  leaves = config_leaves(fdl.Config(FinetuneConfig))
  assert leaves["model.preset"] == "paper" and leaves["optimizer.schedule"] == "constant"


@pytest.mark.slow
def test_reading_a_run_imports_neither_jax_nor_fiddle():
  code = (
    "import sys; from bioknow.rundir import RunDir; RunDir('x').leaves(); RunDir('x').records();"
    "print('jax' in sys.modules, 'fiddle' in sys.modules)"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]


def test_records_summary_checkpoints_and_sources(tmp_path):
  run = RunDir(tmp_path / "sweep" / "ft")
  assert run.records() == [] and run.summary() is None and run.checkpoint_steps() == []
  run.write_records([{"step": 0, "lr": 1.0}])
  run.append_record({"step": 5, "lr": 0.5})
  with run.metrics_path.open("a") as f:
    f.write('{"step": 10, "l')  # a line a live run is still writing
  assert [r["step"] for r in run.records()] == [0, 5]
  run.write_summary({"step": 5})
  assert run.is_finished() and json.loads((run / "summary.json").read_text()) == {"step": 5}
  for name in ("0", "10", "20.orbax-checkpoint-tmp-1"):
    (run.checkpoints_dir / name).mkdir(parents=True)
  assert run.checkpoint_steps() == [0, 10]
  assert run.source("pretrain").path == tmp_path / "sweep" / "pretrain"
  assert run.source(str(tmp_path / "elsewhere")).path == tmp_path / "elsewhere"
