"""One writer per run directory: a lock held for the whole run.

The lock is an advisory `fcntl.flock` on RUN_DIR/lock, so the operating system drops it when the
process that holds it ends, however it ends (SIGKILL included): there are no stale locks to
clean up. The holder writes who it is (pid, host, start time) into the file, so that a second
launcher, a claims command or a Python caller reaching the same run directory can refuse it
with one sentence naming the holder, and go on with its other points.
"""

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket
from collections.abc import Iterator

LOCK_FILE = "lock"


class RunLocked(RuntimeError):
  """Another process is running this run directory; nothing was written."""


def holder(path: pathlib.Path) -> str:
  """Who holds the lock of run directory `path`, as its holder wrote it ('unknown' if the
  file says nothing readable)."""
  try:
    who = json.loads((path / LOCK_FILE).read_text())
    return f"pid {who['pid']} on {who['host']} since {who['since']}"
  except (OSError, ValueError, KeyError, TypeError):
    return "an unknown process"


@contextlib.contextmanager
def held(path: pathlib.Path) -> Iterator[None]:
  """Holds the lock of run directory `path` (created if missing) while the block runs; raises
  RunLocked, naming the holder, when another process holds it."""
  path.mkdir(parents=True, exist_ok=True)
  fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise RunLocked(
        f"{path} is being run by {holder(path)}; wait for it to end or stop it, then run "
        "this point again."
      ) from None
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    who = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(who).encode(), 0)
    yield
  finally:
    os.close(fd)  # closing the descriptor releases the lock
