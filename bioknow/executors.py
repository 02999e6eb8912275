"""Running the points of a sweep: in this process, one after another, or as Ray tasks.

Both executors run each point through running.run_built, the code path of bioknow.run, and
only after the points it reads (its `sources`) have finished: points whose run directory
already holds summary.json are skipped, interrupted points continue from their latest
checkpoint (the launcher has checked that their stored config is the one asked for). A
failing point is reported, not raised: the others go on, except those that read it; its
traceback goes to its run directory's error.txt.

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

import fiddle as fdl
from fiddle.experimental import serialization

from bioknow import _malloc, runlock, running
from bioknow.experiments.common import Experiment
from bioknow.rundir import RunDir

# (name, status, summary) of each point, in run order.
Result = tuple[str, str, dict]


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


def _blocked_by(point, statuses: dict[str, str]) -> str | None:
  """The first source of `point` that failed, if any."""
  return next((s for s in point.sources if statuses.get(s, "").startswith("FAILED")), None)


def run_inline(points, workdir: pathlib.Path) -> list[Result]:
  """Runs the points here, in order (sources come first: see launch.build_points)."""
  results: list[Result] = []
  statuses: dict[str, str] = {}
  for i, p in enumerate(points):
    summary: dict = {}
    if (failed := _blocked_by(p, statuses)) is not None:
      status = f"FAILED: its source {failed} failed"
    else:
      if not RunDir(workdir / p.name).is_finished():
        print(f"== {p.name}", flush=True)
      try:
        status, summary = run_point(p.name, p.cfg, p.experiment, workdir)
      except KeyboardInterrupt:  # Ctrl-C: the table of what ran, not a traceback
        results.append((p.name, INTERRUPTED, {}))
        return results + [(q.name, NOT_STARTED, {}) for q in points[i + 1 :]]
    statuses[p.name] = status
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
  """One Ray task per point, each asking for one GPU where the cluster has any; a point is
  submitted once the points it reads have finished."""
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
      runtime_env={"env_vars": _malloc.ENV},  # workers start threads before bioknow loads
    )
    connected.set()
  except Exception as e:  # no cluster at `address`, or Ray cannot start one here
    raise SystemExit(
      f"--ray_address: Ray cannot start or connect ({type(e).__name__}: "
      f"{str(e).splitlines()[0] if str(e) else ''}); start a cluster with `ray start --head`, "
      "or leave --ray_address out to start one here."
    ) from None
  try:
    gpus = ray.cluster_resources().get("GPU", 0)
    task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_retries=0)(
      _run_serialized
    )
    by_name = {p.name: p for p in points}
    selected = set(by_name)
    statuses: dict[str, str] = {}
    summaries: dict[str, dict] = {}
    waiting = list(points)
    running: dict = {}  # object ref -> name
    while waiting or running:  # Ctrl-C: KeyboardInterrupt, handled below
      for p in list(waiting):
        pending = [s for s in p.sources if s in selected and s not in statuses]
        if (failed := _blocked_by(p, statuses)) is not None:
          statuses[p.name], summaries[p.name] = f"FAILED: its source {failed} failed", {}
          waiting.remove(p)
        elif not pending:
          print(f"== {p.name} (submitted to Ray)", flush=True)
          ref = task.remote(p.name, serialization.dump_json(p.cfg), str(workdir.resolve()))
          running[ref] = p.name
          waiting.remove(p)
      if running:
        (ref,), _ = ray.wait(list(running), num_returns=1)
        name = running.pop(ref)
        try:
          statuses[name], summaries[name] = ray.get(ref)
        except Exception as e:  # the worker died, or Ray could not run the task
          statuses[name] = f"FAILED: {type(e).__name__}: {e}".splitlines()[0]
          summaries[name] = {}
  except KeyboardInterrupt:  # Ctrl-C: the table of what ran, not a traceback
    for name in running.values():
      statuses[name], summaries[name] = INTERRUPTED, {}
    for p in waiting:
      statuses[p.name], summaries[p.name] = NOT_STARTED, {}
  finally:
    ray.shutdown()
  return [(p.name, statuses[p.name], summaries[p.name]) for p in points]


EXECUTORS = ("inline", "ray")


def run(
  points, workdir: pathlib.Path, executor: str, ray_address: str | None = None
) -> list[Result]:
  """Runs the points with the named executor (one of EXECUTORS): what the launcher's and the
  claims command's --executor choose."""
  if executor == "ray":
    return run_ray(points, workdir, ray_address)
  if executor != "inline":
    raise ValueError(f"--executor: got {executor!r}; allowed: {', '.join(EXECUTORS)}.")
  return run_inline(points, workdir)
