"""The launcher against bad inputs: a changed config never mixes into an existing run, paths stay
inside the workdir, and every bad input gives one sentence and exit status 1 with nothing
written. The launcher runs in this process (absl flags parsed here); no test trains a model:
where a point would run, the executor is replaced by one that records what it was given."""

import errno
import hashlib
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest
from absl import flags
from absl.testing import flagsaver

from bioknow import configs, executors, launch, launch_checks
from bioknow.rundir import RunDir
from bioknow.train.per_individual import PerIndividual

REPO = pathlib.Path(__file__).resolve().parents[1]
TWO_SEEDS = '''"""Two seeds (a test)."""
from bioknow import configs

def sweep(scale):
  for seed in (0, 1):
    cfg = configs.pretrain("small")
    cfg.train.seed = seed
    yield f"seed{seed}", cfg
'''


def _sweep(tmp_path: pathlib.Path, body: str, name: str = "sweep.py") -> pathlib.Path:
  path = tmp_path / name
  path.write_text(body)
  return path


def _points_of(names: list[str]) -> str:
  return "from bioknow import configs\ndef sweep(scale):\n" + "".join(
    f"  yield {n!r}, configs.pretrain('small')\n" for n in names
  )


def _launch(*args: str) -> tuple[int, str]:
  """(exit status, the sentence it exits with) of the launcher run in this process."""
  with flagsaver.flagsaver():
    argv = flags.FLAGS(["bioknow.launch", *args])
    try:
      launch.main(argv)
    except SystemExit as e:
      return (e.code, "") if isinstance(e.code, int) else (1, str(e.code))
  return 0, ""


def _tree(root: pathlib.Path) -> dict[str, str]:
  """Every path under root, with a hash of each file's bytes."""
  return {
    str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    for p in sorted(root.rglob("*"))
  }


@pytest.fixture
def no_run(monkeypatch):
  """Fails the test if any point would run."""

  def refuse(*args, **kwargs):
    raise AssertionError("a point ran")

  monkeypatch.setattr(executors, "run_inline", refuse)
  monkeypatch.setattr(executors, "run_ray", refuse)


@pytest.fixture
def ran(monkeypatch):
  """Records (points, workdir) instead of running them."""
  calls = []

  def record(points, workdir):
    calls.append(([p.name for p in points], workdir))
    return [(p.name, "done", {}) for p in points]

  monkeypatch.setattr(executors, "run_inline", record)
  return calls


def _stored_runs(workdir: pathlib.Path, finished: str = "seed0") -> None:
  """The two seeds' run directories as a run with lr 0.008 leaves them: seed0 finished,
  seed1 interrupted."""
  for seed in (0, 1):
    cfg = configs.pretrain("small")
    cfg.train.seed = seed
    run = RunDir(workdir / f"seed{seed}")
    run.write_config(cfg)
    run.write_records([{"step": 0, "lr": 0.008}])
    if run.name == finished:
      run.write_summary({"step": 1250})


# 1. A run's identity is its config. ------------------------------------------------------------


def test_a_changed_config_is_refused_for_finished_and_interrupted_runs(tmp_path, no_run):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  _stored_runs(tmp_path / "w")
  before = _tree(tmp_path)
  for only in ("seed0", "seed1"):  # finished, interrupted
    code, message = _launch(
      f"--sweep={sweep}",
      f"--workdir={tmp_path / 'w'}",
      f"--only={only}",
      "--config=set:optimizer.lr=0.001",
    )
    assert code == 1
    assert message == (
      f"point {only}: {tmp_path / 'w' / only} holds a run of another config (optimizer.lr: "
      "0.008 -> 0.001); run it under a new --workdir, or pass --overwrite to delete that run "
      "and start it afresh."
    )
  assert _tree(tmp_path) == before


def test_one_changed_point_stops_the_whole_sweep_before_anything_is_written(tmp_path, no_run):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  cfg = configs.pretrain("small")
  cfg.train.seed = 1
  cfg.train.n_steps = 7  # seed1's run has another step count; seed0 is new
  RunDir(tmp_path / "w" / "seed1").write_config(cfg)
  before = _tree(tmp_path)
  code, message = _launch(f"--sweep={sweep}", f"--workdir={tmp_path / 'w'}")
  assert code == 1 and message.startswith("point seed1: ") and "train.n_steps: 7 -> " in message
  assert _tree(tmp_path) == before  # no seed0 directory either


def test_a_refusal_names_three_fields_and_counts_the_rest(tmp_path, no_run):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  _stored_runs(tmp_path / "w")
  overrides = ("optimizer.lr=0.001", "optimizer.b1=0.5", "train.batch_size=4", "eval.every=3")
  code, message = _launch(
    f"--sweep={sweep}", f"--workdir={tmp_path / 'w'}", *(f"--config=set:{o}" for o in overrides)
  )
  assert code == 1
  assert "(eval.every: 50 -> 3, optimizer.b1: 0.9 -> 0.5, optimizer.lr: 0.008 -> 0.001 and 1 " in (
    message
  )
  assert "(1 more point differs too)" in message


def test_overwrite_deletes_only_the_runs_of_another_config(tmp_path, ran):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  workdir = tmp_path / "w"
  _stored_runs(workdir)
  cfg = configs.pretrain("small")
  cfg.train.seed = 1
  cfg.optimizer.lr = 0.001
  RunDir(workdir / "seed1").write_config(cfg)  # seed1 was asked with lr 0.001 before
  code, _ = _launch(
    f"--sweep={sweep}", f"--workdir={workdir}", "--config=set:optimizer.lr=0.001", "--overwrite"
  )
  assert code == 0 and ran == [(["seed0", "seed1"], workdir)]
  assert not (workdir / "seed0").exists()  # deleted: the executor starts it afresh
  assert (workdir / "seed1" / "metrics.jsonl").exists()  # same config: resumes


def test_an_unreadable_config_or_a_foreign_directory_is_refused(tmp_path, no_run):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  workdir = tmp_path / "w"
  _stored_runs(workdir)
  (workdir / "seed1" / "config.json").write_text("{not json")
  before = _tree(tmp_path)
  code, message = _launch(f"--sweep={sweep}", f"--workdir={workdir}", "--only=seed1")
  assert code == 1 and f"{workdir / 'seed1' / 'config.json'} is missing or unreadable" in message
  assert "--overwrite" in message
  (workdir / "seed1" / "config.json").unlink()
  before = _tree(tmp_path)
  code, message = _launch(f"--sweep={sweep}", f"--workdir={workdir}", "--only=seed1", "--overwrite")
  assert code == 1 and "holds no config.json, so it is no run of this launcher" in message
  assert _tree(tmp_path) == before  # not deleted, even with --overwrite


def test_run_point_itself_leaves_a_run_of_another_config_alone(tmp_path):
  _stored_runs(tmp_path)
  before = _tree(tmp_path)
  cfg = configs.pretrain("small")
  cfg.train.seed = 1
  cfg.train.n_steps = 3
  status, summary = executors.run_point("seed1", cfg, None, tmp_path)
  assert status == (
    f"FAILED: {tmp_path / 'seed1'} holds a run of another config (train.n_steps: 1250 -> 3); "
    "give another run directory, or delete that one to start afresh."
  )
  assert summary == {} and _tree(tmp_path) == before


# 2. Paths are resolved and confined. -----------------------------------------------------------


def test_a_relative_workdir_with_dotdot_is_resolved(tmp_path, ran, monkeypatch):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  (tmp_path / "here").mkdir()
  monkeypatch.chdir(tmp_path / "here")
  code, _ = _launch(f"--sweep={sweep}", "--workdir=../here/../runs", "--only=seed0")
  assert code == 0 and ran == [(["seed0"], tmp_path / "runs")]
  # tensorstore refuses `..` in a path: the per-individual store makes it absolute.
  PerIndividual(RunDir("../here/../runs/seed0"), 4)
  assert (tmp_path / "runs" / "seed0" / "per_individual.zarr" / "zarr.json").exists()


@pytest.mark.parametrize(
  "name", ["/tmp/escaped", "../escaped", "a/../../b", "a//b", "a/", "", ".", "a b", "a\\b", "x\n"]
)
def test_a_point_name_outside_the_workdir_is_refused(name):
  with pytest.raises(ValueError, match=r"^sweep: point name .* is not a relative path inside"):
    launch_checks.check_point_name(name)


def test_a_bad_point_name_stops_the_sweep_before_anything_runs(tmp_path, no_run):
  for names, expected in (
    (["ok", "../escaped"], "sweep: point name '../escaped' is not a relative path inside the "),
    (["a", "a/b"], "sweep: point 'a/b' would lie inside the run directory of point 'a'; "),
  ):
    sweep = _sweep(tmp_path, _points_of(names))
    code, message = _launch(f"--sweep={sweep}", f"--workdir={tmp_path / 'w'}")
    assert code == 1 and message.startswith(expected)
  launch_checks.check_point_name("group/n800_seed0_lr0.008")  # nested names are fine
  assert sorted(os.listdir(tmp_path)) == ["sweep.py"]


# 5. Launcher inputs. ---------------------------------------------------------------------------


def test_an_empty_selection_or_sweep_exits_non_zero(tmp_path, no_run):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  code, message = _launch(f"--sweep={sweep}", f"--workdir={tmp_path / 'w'}", "--only=seed9,x*")
  assert (code, message) == (
    1,
    "--only: seed9,x* matches no point; the sweep's points are seed0, seed1.",
  )
  empty = _sweep(tmp_path, "def sweep(scale):\n  return []\n", "empty.py")
  code, message = _launch(f"--sweep={empty}", f"--workdir={tmp_path / 'w'}")
  assert (code, message) == (
    1,
    f"sweep: sweep('small') in {empty} yields no points; it must yield some.",
  )
  assert sorted(os.listdir(tmp_path)) == ["empty.py", "sweep.py"]


@pytest.mark.parametrize(
  "body, expected",
  [
    ("def sweep(scale)\n  yield 1\n", "--sweep: {path} line 1: expected ':'; fix the file."),
    (
      "import bioknow.nonexistent\n",
      "--sweep: {path} fails to load: ModuleNotFoundError: No module named "
      "'bioknow.nonexistent' (line 1).",
    ),
    ("x = 1\n", "--sweep: {path} has no function sweep(scale) yielding (name, config)."),
    (
      "def sweep(scale):\n  yield 'just a name'\n",
      "sweep: sweep('small') in {path} yielded 'just a name'; it must yield (run name, fiddle "
      "config) pairs.",
    ),
    (
      "def sweep(scale):\n  yield 'p', {'lr': 1}\n",
      "sweep: sweep('small') in {path} yielded ('p', {'lr': 1}); it must yield (run name, "
      "fiddle config) pairs.",
    ),
    (
      "def sweep(scale):\n  yield 'a', None\n  yield 'b', sclae\n",
      "sweep: sweep('small') in {path} fails: NameError: name 'sclae' is not defined (line 3).",
    ),
  ],
)
def test_a_broken_sweep_file_gives_one_sentence(tmp_path, no_run, body, expected):
  sweep = _sweep(tmp_path, body)
  code, message = _launch(f"--sweep={sweep}", f"--workdir={tmp_path / 'w'}")
  assert (code, message) == (1, expected.replace("{path}", str(sweep)))
  assert os.listdir(tmp_path) == ["sweep.py"]


def test_a_workdir_that_is_a_file_or_read_only_is_refused(tmp_path, no_run, monkeypatch):
  sweep = _sweep(tmp_path, TWO_SEEDS)
  (tmp_path / "file").write_text("")
  for workdir in (tmp_path / "file", tmp_path / "file" / "runs"):
    code, message = _launch(f"--sweep={sweep}", f"--workdir={workdir}")
    assert (code, message) == (
      1,
      f"--workdir: {tmp_path / 'file'} is a file, not a directory; "
      "give a directory (it is created if missing).",
    )
  read_only = tmp_path / "ro"
  read_only.mkdir(mode=0o555)
  if os.access(read_only, os.W_OK):  # root writes anyway: make the filesystem say no instead

    def refuse(**kwargs):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(launch_checks.tempfile, "mkdtemp", refuse)
  code, message = _launch(f"--sweep={sweep}", f"--workdir={read_only / 'runs'}")
  assert code == 1 and message.startswith(f"--workdir: cannot write in {read_only} (")
  assert message.endswith("); give a directory you can write to.")
  assert sorted(os.listdir(tmp_path)) == ["file", "ro", "sweep.py"] and not os.listdir(read_only)


def test_an_unreachable_ray_address_fails_within_seconds(tmp_path, monkeypatch, capsys):
  pytest.importorskip("ray")
  start = time.perf_counter()
  with pytest.raises(SystemExit, match=r"^--ray_address: nothing answers at 127.0.0.1:1 \("):
    executors.run_ray([], tmp_path, "127.0.0.1:1")
  with pytest.raises(SystemExit, match="use HOST:PORT, ray://HOST:PORT or auto"):
    executors.run_ray([], tmp_path, "localhost")
  assert time.perf_counter() - start < 30
  # A port that answers but is no Ray cluster: ray.init would retry forever; a watchdog ends it.
  with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    executors._check_reachable(f"127.0.0.1:{listener.getsockname()[1]}")  # pylint: disable=protected-access
  exits = []
  monkeypatch.setattr(executors.os, "_exit", exits.append)
  executors._give_up_unless(threading.Event(), "10.0.0.1:6379", 0.01)  # pylint: disable=protected-access
  assert exits == [1]
  assert "--ray_address: no Ray cluster answered at 10.0.0.1:6379 within 0 s" in (
    capsys.readouterr().err
  )
  assert not os.listdir(tmp_path)


class _Failing:
  """An experiment that fails after writing its first files."""

  def sources(self):
    return ()

  def check_sources(self, run_dir):
    pass

  def run(self, run_dir):
    run_dir.write_records([{"step": 0}])
    raise RuntimeError("Encountered an error while reading the checkpoint at step 10\nmore")


def test_a_failure_shows_its_whole_first_line_and_leaves_its_traceback(
  tmp_path, monkeypatch, capsys
):
  status, summary = executors.run_point("p", configs.pretrain("small"), _Failing(), tmp_path)
  reason = "RuntimeError: Encountered an error while reading the checkpoint at step 10"
  assert (status, summary) == (f"FAILED: {reason}", {})
  error = (tmp_path / "p" / "error.txt").read_text()
  assert error.startswith("Traceback") and 'in run\n    raise RuntimeError("Encountered' in error
  monkeypatch.setattr(executors, "run_inline", lambda points, workdir: [("seed0", status, {})])
  sweep = _sweep(tmp_path, TWO_SEEDS)
  code, _ = _launch(f"--sweep={sweep}", f"--workdir={tmp_path / 'w'}", "--only=seed0")
  out = capsys.readouterr().out
  assert code == 1 and f"FAILED: {reason} " in out and "error.txt" in out
  # A point that fails before writing anything leaves nothing, error.txt included.
  assert executors.run_point("q", None, None, tmp_path)[0].startswith("FAILED: AttributeError")
  assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_a_stray_argument_is_refused_on_the_command_line(tmp_path):
  out = subprocess.run(
    [sys.executable, "-m", "bioknow.launch", "--sweep=sweeps/quickstart.py", "quickstart"],
    cwd=REPO,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
    capture_output=True,
    text=True,
  )
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1] == (
    "unexpected argument 'quickstart'; every option is a flag such as --sweep=PATH."
  )


@pytest.mark.parametrize(
  "args, expected",
  [
    (["--n_examples=-1"], "--n_examples: got -1; allowed 0..100."),
    (["--n_stats=0"], "--n_stats: got 0; it must be at least 1."),
    (["--seed=-1"], "--seed: got -1; it must be an integer >= 0."),
    (["--tokenizer=nope"], "--tokenizer: got 'nope'; use one of bio_4k, bio_32k or a path "),
    (["--tokenizer={not_a_model}"], "--tokenizer: {not_a_model} is not a SentencePiece model ("),
  ],
)
def test_the_data_tool_refuses_bad_flags_in_one_sentence(tmp_path, args, expected):
  from bioknow.data import __main__ as data_main  # defines its flags on import

  not_a_model = tmp_path / "x.model"
  not_a_model.write_text("not a model")
  with flagsaver.flagsaver():
    argv = flags.FLAGS(
      ["bioknow.data", "--n_individuals=100", "--tokenizer=bio_4k"]
      + [a.format(not_a_model=not_a_model) for a in args]
    )
    with pytest.raises(SystemExit) as e:
      data_main.main(argv)
  assert str(e.value.code).startswith(expected.format(not_a_model=not_a_model))
