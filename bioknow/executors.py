"""Running the points of a sweep: in this process, one after another, or as Ray tasks.

Both executors run each point through running.run_built, the code path of bioknow.run, and
only after the points it reads (its `sources`) have finished: points whose run directory
already holds summary.json are skipped, interrupted points continue from their latest
checkpoint (the launcher has checked that their stored config is the one asked for). A
failing point is reported, not raised: the others go on, except those that read it; its
traceback goes to its run directory's error.txt. A job is a point with the sweep workdir it
runs in, so one call can run the points of several sweeps (the claims scorecard does).

With Ray, each point is one task that rebuilds its config from the serialized fiddle config
(the same JSON written to config.json), so sweep files need not be importable on workers. The
run directories must be on a filesystem every worker sees (this machine, or a shared disk). A
--ray_address where no Ray cluster answers ends the launch with one sentence within 30 s.
"""

import logging
import os
import pathlib
import socket
import sys
import threading
import time
import traceback
from typing import Any

import fiddle as fdl
from fiddle.experimental import serialization

from bioknow import _malloc, compile_cache, runlock, running
from bioknow.experiments.common import Experiment
from bioknow.rundir import RunDir

# (name, status, summary) of each point, in run order.
Result = tuple[str, str, dict]
# (sweep workdir, point): the point's run directory is WORKDIR/NAME, its sources WORKDIR/SOURCE.
Job = tuple[pathlib.Path, Any]


def run_point(
  name: str, cfg: fdl.Buildable, experiment: Experiment, workdir: pathlib.Path
) -> tuple[str, dict]:
  """Runs (or resumes, or skips if finished) one point through running.run_built, the code
  path of bioknow.run; returns (status, summary). A run directory holding another config is
  left as it is and the point fails (the launcher refuses it earlier; this guards other
  callers)."""
  run_dir = RunDir(workdir / name)
  finished = run_dir.is_finished()
  start = time.perf_counter()
  try:
    summary = running.run_built(cfg, experiment, run_dir)
  except (running.OtherRunError, running.StaleRun, running.DamagedRun, runlock.RunLocked) as e:
    return f"FAILED: {e}", {}
  except Exception as e:  # one failing point does not stop the others
    print(traceback.format_exc(), file=sys.stderr, flush=True)
    return f"FAILED: {type(e).__name__}: {e}".splitlines()[0], {}
  return "done (skipped)" if finished else f"done in {time.perf_counter() - start:.0f}s", summary


# Statuses of the points a Ctrl-C stopped, and of those it kept from starting.
INTERRUPTED = "interrupted (re-run to resume)"
NOT_STARTED = "not started"


def _key(job: Job) -> pathlib.Path:
  """The job's run directory: what identifies it."""
  return job[0] / job[1].name


def _blocked_by(job: Job, statuses: dict[pathlib.Path, str]) -> str | None:
  """The first source of the job's point that failed, if any."""
  workdir, point = job
  return next(
    (s for s in point.sources if statuses.get(workdir / s, "").startswith("FAILED")), None
  )


def run_inline(points, workdir: pathlib.Path) -> list[Result]:
  """Runs the points here, in order (sources come first: see launch.build_points)."""
  return run_jobs_inline([(workdir, p) for p in points])


def run_jobs_inline(jobs: list[Job]) -> list[Result]:
  """Runs the jobs here, in order (each after its sources)."""
  results: list[Result] = []
  statuses: dict[pathlib.Path, str] = {}
  for i, (workdir, p) in enumerate(jobs):
    summary: dict = {}
    if (failed := _blocked_by((workdir, p), statuses)) is not None:
      status = f"FAILED: its source {failed} failed"
    else:
      if not RunDir(workdir / p.name).is_finished():
        print(f"== {p.name}", flush=True)
      try:
        status, summary = run_point(p.name, p.cfg, p.experiment, workdir)
      except KeyboardInterrupt:  # Ctrl-C: the table of what ran, not a traceback
        results.append((p.name, INTERRUPTED, {}))
        return results + [(q.name, NOT_STARTED, {}) for _, q in jobs[i + 1 :]]
    statuses[workdir / p.name] = status
    results.append((p.name, status, summary))
  return results


def _run_serialized(name: str, config_json: str, workdir: str) -> tuple[str, dict]:
  """The body of a Ray task: rebuild the point from its serialized config and run it."""
  cfg = serialization.load_json(config_json)
  return run_point(name, cfg, fdl.build(cfg), pathlib.Path(workdir))


def _check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
  """Refuses a HOST:PORT (or ray://HOST:PORT) address where nothing accepts a connection, in
  seconds: ray.init would retry for minutes, saying nothing."""
  if address in (None, "auto", "local"):
    return
  host, _, port = address.removeprefix("ray://").rpartition(":")
  if not host or not port.isdigit():
    raise SystemExit(f"--ray_address: got {address!r}; use HOST:PORT, ray://HOST:PORT or auto.")
  try:
    socket.create_connection((host, int(port)), timeout=timeout_s).close()
  except OSError as e:
    raise SystemExit(
      f"--ray_address: nothing answers at {host}:{port} ({e.strerror or type(e).__name__}); "
      "start a cluster there with `ray start --head`, or leave --ray_address out to start "
      "one here."
    ) from None


def _give_up_unless(connected: threading.Event, address: str, timeout_s: float = 25.0) -> None:
  """Ends the process with one sentence unless ray.init connects within `timeout_s`: against a
  port that accepts connections but is no Ray cluster it retries forever, deaf to signals.
  Nothing has been written yet, so ending at once loses nothing."""
  if not connected.wait(timeout_s):
    print(
      f"--ray_address: no Ray cluster answered at {address} within {timeout_s:.0f} s; check "
      "the address (`ray status` on the head node prints it).",
      file=sys.stderr,
      flush=True,
    )
    os._exit(1)


def run_ray(points, workdir: pathlib.Path, address: str | None) -> list[Result]:
  """The points as Ray tasks (run_jobs_ray)."""
  return run_jobs_ray([(workdir, p) for p in points], address)


def run_jobs_ray(jobs: list[Job], address: str | None) -> list[Result]:
  """One Ray task per job, each asking for one GPU where the cluster has any, else one CPU. A
  job is submitted once the jobs it reads have finished, and no more are in flight than the
  cluster has GPUs (or CPUs): of the jobs ready to start, the first in `jobs` goes first, so
  the caller's order decides (Ray's own queue would not keep it)."""
  try:
    import ray  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise SystemExit(
      "--executor=ray needs Ray: pip install 'bioknow[ray]' (or pip install "
      "ray), then run the same command again."
    ) from None
  _check_reachable(address)
  connected = threading.Event()
  if address not in (None, "local"):
    threading.Thread(target=_give_up_unless, args=(connected, address), daemon=True).start()
  try:
    ray.init(
      address=address,
      logging_level=logging.WARNING,
      log_to_driver=True,
      # Workers start threads before bioknow loads, and compile in their own processes.
      runtime_env={"env_vars": _malloc.ENV | compile_cache.env()},
    )
    connected.set()
  except Exception as e:  # no cluster at `address`, or Ray cannot start one here
    raise SystemExit(
      f"--ray_address: Ray cannot start or connect ({type(e).__name__}: "
      f"{str(e).splitlines()[0] if str(e) else ''}); start a cluster with `ray start --head`, "
      "or leave --ray_address out to start one here."
    ) from None
  try:
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0)
    slots = max(1, int(gpus or resources.get("CPU", 1)))
    task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_retries=0)(
      _run_serialized
    )
    selected = {_key(j) for j in jobs}
    statuses: dict[pathlib.Path, str] = {}
    summaries: dict[pathlib.Path, dict] = {}
    waiting = list(jobs)
    running: dict = {}  # object ref -> run directory
    while waiting or running:  # Ctrl-C: KeyboardInterrupt, handled below
      for job in list(waiting):
        workdir, p = job
        pending = [s for s in p.sources if workdir / s in selected and workdir / s not in statuses]
        if (failed := _blocked_by(job, statuses)) is not None:
          statuses[_key(job)], summaries[_key(job)] = f"FAILED: its source {failed} failed", {}
          waiting.remove(job)
        elif not pending and len(running) < slots:
          print(f"== {p.name} (submitted to Ray)", flush=True)
          ref = task.remote(p.name, serialization.dump_json(p.cfg), str(workdir.resolve()))
          running[ref] = _key(job)
          waiting.remove(job)
      if running:
        (ref,), _ = ray.wait(list(running), num_returns=1)
        done = running.pop(ref)
        try:
          statuses[done], summaries[done] = ray.get(ref)
        except Exception as e:  # the worker died, or Ray could not run the task
          statuses[done] = f"FAILED: {type(e).__name__}: {e}".splitlines()[0]
          summaries[done] = {}
  except KeyboardInterrupt:  # Ctrl-C: the table of what ran, not a traceback
    for done in running.values():
      statuses[done], summaries[done] = INTERRUPTED, {}
    for job in waiting:
      statuses[_key(job)], summaries[_key(job)] = NOT_STARTED, {}
  finally:
    ray.shutdown()
  return [(j[1].name, statuses[_key(j)], summaries[_key(j)]) for j in jobs]


EXECUTORS = ("inline", "ray")


def run(
  points, workdir: pathlib.Path, executor: str, ray_address: str | None = None
) -> list[Result]:
  """Runs the points with the named executor (one of EXECUTORS): what the launcher's and the
  claims command's --executor choose."""
  if executor == "ray":
    return run_ray(points, workdir, ray_address)
  _check_executor(executor)
  return run_inline(points, workdir)


def run_jobs(jobs: list[Job], executor: str, ray_address: str | None = None) -> list[Result]:
  """Runs (sweep workdir, point) jobs, of one sweep or several, with the named executor."""
  if executor == "ray":
    return run_jobs_ray(jobs, ray_address)
  _check_executor(executor)
  return run_jobs_inline(jobs)


def _check_executor(executor: str) -> None:
  if executor not in EXECUTORS:
    raise ValueError(f"--executor: got {executor!r}; allowed: {', '.join(EXECUTORS)}.")
