"""The launcher's guards against a user's slips and a Ctrl-C: empty flags, names the filesystem
refuses, fields outside a run's identity, an interrupted sweep. No test trains a model."""

import pathlib

import pytest
from test_hostile_launch import _launch  # the launcher run in this process

from bioknow import configs, executors
from bioknow.rundir import NOT_IDENTITY, RunDir

SWEEP = '''"""Three points (a test)."""
from bioknow import configs

def sweep(scale):
  for seed in (0, 1, 2):
    cfg = configs.pretrain("small")
    cfg.train.seed = seed
    yield f"seed{seed}", cfg
'''


@pytest.fixture
def sweep(tmp_path) -> pathlib.Path:
  path = tmp_path / "three.py"
  path.write_text(SWEEP)
  return path


@pytest.mark.parametrize(
  "flag, expected",
  [
    ("--only=", "--only: got an empty value; give a glob such as 'n100_*', or leave it out."),
    ("--only=,", "--only: got an empty value; give a glob such as 'n100_*', or leave it out."),
    ("--workdir=", "--workdir: got an empty value; give a directory, or leave the flag out."),
  ],
)
def test_empty_only_and_workdir_are_refused(tmp_path, sweep, monkeypatch, flag, expected):
  monkeypatch.chdir(tmp_path)
  before = sorted(tmp_path.rglob("*"))
  extra = () if flag.startswith("--workdir") else (f"--workdir={tmp_path / 'w'}",)
  assert _launch(f"--sweep={sweep}", "--scale=small", flag, *extra) == (1, expected)
  assert sorted(tmp_path.rglob("*")) == before


def test_a_point_name_too_long_for_the_filesystem_is_refused_at_the_check(tmp_path):
  long = tmp_path / "long.py"
  long.write_text(
    "from bioknow import configs\ndef sweep(scale):\n"
    "  yield 'ok', configs.pretrain('small')\n"
    f"  yield {'x' * 300!r}, configs.pretrain('small')\n"
  )
  for dry in ((), ("--dry_run",)):
    status, sentence = _launch(f"--sweep={long}", "--scale=small", f"--workdir={tmp_path}/w", *dry)
    assert status == 1
    assert sentence == (
      f"sweep: point name {'x' * 40!r}... has a part of 300 characters; a directory name may "
      "have at most 255."
    )
  assert not (tmp_path / "w").exists()


def test_ctrl_c_ends_with_one_line_and_the_status_table(tmp_path, sweep, monkeypatch, capsys):
  ran = []

  def run_point(name, cfg, experiment, workdir):
    ran.append(name)
    if name == "seed1":
      raise KeyboardInterrupt
    return "done in 1s", {}

  monkeypatch.setattr(executors, "run_point", run_point)
  status, _ = _launch(f"--sweep={sweep}", "--scale=small", f"--workdir={tmp_path}/w")
  out = capsys.readouterr().out
  assert status == 130 and ran == ["seed0", "seed1"]
  table = out[out.index("point") :].splitlines()
  assert [line.split()[:2] for line in table[1:4]] == [
    ["seed0", "done"],
    ["seed1", "interrupted"],
    ["seed2", "not"],
  ]
  assert table[-1] == "interrupted: run the same command again to resume where it stopped."
  assert "Traceback" not in out


def test_fields_that_cannot_change_results_stay_out_of_a_runs_identity(tmp_path):
  assert NOT_IDENTITY == ("progress_seconds",)
  cfg = configs.pretrain("small")
  run = RunDir(tmp_path / "run")
  run.write_config(cfg)
  run.write_records([{"step": 0}])
  quieter = configs.pretrain("small")
  quieter.train.progress_seconds = 60.0
  assert run.config_changes(quieter) == {} and run.identity_problem(quieter) is None
  other = configs.pretrain("small")
  other.train.n_steps = 10
  assert run.identity_problem(other) is not None
