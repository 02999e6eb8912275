"""The launcher: typed overrides, dependency order, and a two-point sweep killed half-way and
resumed, inline and through Ray."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from conftest import tiny_overrides

from bioknow import _malloc, compile_cache, executors, launch

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = tiny_overrides(30, (0, 10, 20, 30), flag=True)
TWO_POINTS = '''"""python -m bioknow.launch --sweep=two_points.py: two tiny seeds (a test)."""
from bioknow import configs

def sweep(scale):
  for seed in (0, 1):
    cfg = configs.pretrain("small")
    cfg.train.seed = seed
    yield f"seed{seed}", cfg
'''


def _launch(sweep: pathlib.Path, workdir: pathlib.Path, *extra: str, wait: bool = True):
  cmd = [
    sys.executable,
    "-m",
    "bioknow.launch",
    f"--sweep={sweep}",
    f"--workdir={workdir}",
    *TINY,
    *extra,
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu", RAY_AUTH_MODE="disabled")
  if wait:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
  # Its own session, so that killing it also kills the Ray processes it started.
  return subprocess.Popen(
    cmd,
    cwd=REPO,
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    start_new_session=True,
  )


def _kill_when(proc: subprocess.Popen, ready: pathlib.Path) -> None:
  deadline = time.time() + 600
  while not ready.is_dir() and time.time() < deadline:
    assert proc.poll() is None, "the sweep ended before it could be killed"
    time.sleep(0.05)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()


def test_wrong_type_override_names_the_field_and_types():
  module = launch.load_sweep(str(REPO / "sweeps" / "quickstart.py"))
  with pytest.raises(
    ValueError,
    match=r"train.n_steps must be of type int \(now \d+\); got "
    r"1.5 of type float",
  ):
    launch.build_points(module, "small", ["set:train.n_steps=1.5"], None)
  with pytest.raises(ValueError, match="data.tokenizer must be of type str"):
    launch.build_points(module, "small", ["set:data.tokenizer=4"], None)
  # Lossless conversions are accepted.
  (point,) = launch.build_points(
    module, "small", ["set:optimizer.lr=1", "set:data.birth_years=[1990, 1995]"], None
  )
  assert point.experiment.optimizer.lr == 1.0 and point.experiment.data.birth_years == (1990, 1995)


def _point(name, sources=()):
  return launch.Point(name, None, None, {}, tuple(sources))


def test_points_run_after_their_sources_and_failures_propagate(monkeypatch, tmp_path):
  points = launch._in_dependency_order(  # pylint: disable=protected-access
    [
      _point("finetune", ["pretrain"]),
      _point("other"),
      _point("pretrain"),
      _point("finetune2", ["finetune"]),
    ]
  )
  assert [p.name for p in points] == ["pretrain", "finetune", "other", "finetune2"]
  with pytest.raises(ValueError, match="depends on itself"):
    launch._in_dependency_order([_point("a", ["b"]), _point("b", ["a"])])  # pylint: disable=protected-access

  ran = []

  def fake_run_point(name, cfg, experiment, workdir):
    ran.append(name)
    return ("FAILED: boom", {}) if name == "pretrain" else ("done", {})

  monkeypatch.setattr(executors, "run_point", fake_run_point)
  results = executors.run_inline(points, tmp_path)
  assert ran == ["pretrain", "other"]  # finetune and finetune2 never start
  assert dict((n, s) for n, s, _ in results) == {
    "pretrain": "FAILED: boom",
    "finetune": "FAILED: its source pretrain failed",
    "other": "done",
    "finetune2": "FAILED: its source finetune failed",
  }


def test_ray_executor_without_ray_explains_how_to_install(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
  with pytest.raises(SystemExit, match=r"pip install 'bioknow\[ray\]'"):
    executors.run_ray([], tmp_path, None)


def test_ray_workers_start_with_the_malloc_settings(monkeypatch, tmp_path):
  """run_ray gives Ray's workers bioknow's malloc settings as environment variables (their
  threads run before bioknow is imported, too late for mallopt)."""
  seen: dict = {}

  class FakeRay:
    @staticmethod
    def init(**kwargs):
      seen.update(kwargs)
      raise ConnectionError("no cluster here")

  monkeypatch.setitem(sys.modules, "ray", FakeRay)
  with pytest.raises(SystemExit, match="--ray_address"):
    executors.run_ray([], tmp_path, None)
  assert seen["runtime_env"] == {"env_vars": _malloc.ENV | compile_cache.env()}


@pytest.mark.slow
def test_the_malloc_environment_keeps_a_threads_large_blocks_mapped():
  """In a process started with _malloc.ENV, a thread that allocates, touches and frees a
  64 MB block ten times faults its pages in once; without it (glibc's defaults), ten times."""
  script = """
import ctypes, resource, threading
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def work():
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(10):
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(faults[0])
"""
  pages = (64 << 20) // 4096
  env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
  faults = {}
  for name, extra in (("tuned", _malloc.ENV), ("default", {})):
    out = subprocess.run(
      [sys.executable, "-c", script], env=env | extra, capture_output=True, text=True, check=True
    )
    faults[name] = int(out.stdout)
  assert faults["tuned"] < 2 * pages < 5 * pages < faults["default"], faults


@pytest.mark.slow
def test_dry_run_estimates_time(tmp_path):
  out = _launch(REPO / "sweeps" / "quickstart.py", tmp_path / "d", "--dry_run")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "1 points, 30 training steps in total, estimated" in out.stdout
  assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_two_point_sweep_killed_and_resumed_inline_and_through_ray(tmp_path):
  pytest.importorskip("ray")
  sweep = tmp_path / "two_points.py"
  sweep.write_text(TWO_POINTS)
  reference = _launch(sweep, tmp_path / "reference")
  assert reference.returncode == 0, reference.stderr[-2000:]

  # Inline: killed while the second point trains, after the first has finished.
  proc = _launch(sweep, tmp_path / "inline", wait=False)
  _kill_when(proc, tmp_path / "inline" / "seed1" / "checkpoints" / "10")
  assert not (tmp_path / "inline" / "seed1" / "summary.json").exists()
  resumed = _launch(sweep, tmp_path / "inline")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "done (skipped)" in resumed.stdout and "resuming from step" in resumed.stdout

  # Ray: both points run at once; killed when one has its first checkpoint after step 0.
  proc = _launch(sweep, tmp_path / "ray", "--executor=ray", wait=False)
  _kill_when(proc, tmp_path / "ray" / "seed0" / "checkpoints" / "10")
  assert not (tmp_path / "ray" / "seed0" / "summary.json").exists()
  resumed = _launch(sweep, tmp_path / "ray", "--executor=ray")
  assert resumed.returncode == 0, resumed.stderr[-2000:]

  for workdir in ("inline", "ray"):
    for point in ("seed0", "seed1"):
      run = tmp_path / workdir / point
      assert (run / "summary.json").exists(), (workdir, point)
      assert (run / "metrics.jsonl").read_text() == (
        tmp_path / "reference" / point / "metrics.jsonl"
      ).read_text(), (workdir, point)


def test_an_override_of_a_field_the_sweep_varies_is_refused():
  module = launch.load_sweep(str(REPO / "sweeps" / "population.py"))
  with pytest.raises(ValueError, match=r"^--config: optimizer.lr differs between the sweep's"):
    launch.build_points(module, "paper", ["set:optimizer.lr=1e-3"], None)
  # Even with one point selected: its name still says lr1e-4.
  with pytest.raises(ValueError, match="optimizer.lr differs"):
    launch.build_points(module, "paper", ["set:optimizer.lr=1e-3"], "n4000_seed0_lr0.0001")
  (point,) = launch.build_points(module, "paper", ["set:train.n_steps=100"], "n4000_seed0_lr0.0001")
  assert point.experiment.n_steps == 100


def test_the_compilation_cache_keeps_a_users_setting_and_defaults_to_the_user_cache(
  monkeypatch, tmp_path
):
  monkeypatch.setenv(compile_cache.VARIABLE, str(tmp_path / "mine"))
  assert compile_cache.env() == {compile_cache.VARIABLE: str(tmp_path / "mine")}
  monkeypatch.setenv(compile_cache.VARIABLE, "")  # empty: compile every time
  assert compile_cache.directory() is None and compile_cache.env()[compile_cache.VARIABLE] == ""
  monkeypatch.delenv(compile_cache.VARIABLE)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.directory() == tmp_path / "xdg" / "bioknow" / "jax"
