"""What a run read: the identity of each run it starts from (a fine-tuning source, a patching
reference), recorded in RUN_DIR/sources.json when it starts and compared whenever it is run
again. A source rerun with another config or to other weights makes its dependents stale: they
are refused, naming the source, until they are rerun (the launcher's --overwrite).

A source's identity is a digest of its config (config.json's leaves), its final step, and the
fingerprint of its final checkpoint's arrays (bioknow.train.checkpoint writes it into the
checkpoint's meta): two runs of one config trained to the same bits have the same identity.
"""

import hashlib
import json

from bioknow.rundir import RunDir

SOURCES_FILE = "sources.json"


def identity(source: RunDir) -> dict:
  """{config, step, checkpoint}: a digest of the source's config, its final step, and its
  final checkpoint's fingerprint (None where the checkpoint records none)."""
  config = json.loads((source / "config.json").read_text()).get("leaves")
  digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
  step = (source.summary() or {}).get("step")
  try:
    meta = json.loads((source.checkpoints_dir / str(step) / "meta" / "metadata").read_text())
    fingerprint = meta.get("fingerprint")
  except (OSError, ValueError, AttributeError):
    fingerprint = None
  return {"config": digest, "step": step, "checkpoint": fingerprint}


def current(run_dir: RunDir, sources: tuple[str, ...]) -> dict[str, dict]:
  """{source name: identity} of the runs `run_dir` reads."""
  return {name: identity(run_dir.source(name)) for name in sources}


def recorded(run_dir: RunDir) -> dict[str, dict] | None:
  """The identities recorded when the run started; None where it recorded none."""
  try:
    return json.loads((run_dir / SOURCES_FILE).read_text())
  except (OSError, ValueError):
    return None


def record(run_dir: RunDir, sources: tuple[str, ...]) -> None:
  """Records the identities of the runs `run_dir` reads, once, when it starts."""
  if sources and recorded(run_dir) is None:
    (run_dir / SOURCES_FILE).write_text(json.dumps(current(run_dir, sources), indent=2) + "\n")


def stale(run_dir: RunDir, sources: tuple[str, ...]) -> str | None:
  """Why the run is stale (a source it read has changed since), naming the source; None when
  every source is as recorded, or nothing was recorded."""
  then = recorded(run_dir)
  if not then:
    return None
  for name in sources:
    source = run_dir.source(name)
    if not (source / "config.json").is_file():
      continue  # check_sources says what is missing
    now, before = identity(source), then.get(name)
    if before is not None and now != before:
      changed = [k for k in ("config", "step", "checkpoint") if now.get(k) != before.get(k)]
      return f"its source {source.path} changed since it ran (its {' and '.join(changed)} differ)"
  return None
