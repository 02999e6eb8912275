"""The scorecard as it is printed, stored and shipped: the table, claims.json, the runs behind
them (the evidence) and the README's copy of the table.

  python -m bioknow.claims --quick --seeds=3 --score_only --evidence=evidence/quick_seeds3
      copies the runs the scorecard reads from WORKDIR (default runs) into
      evidence/quick_seeds3/SWEEP/POINT: their config.json, summary.json and metrics.jsonl,
      nothing else (no checkpoints, no per-individual arrays, no config.txt);
  python -m bioknow.claims --quick --seeds=3 --score_only --workdir=evidence/quick_seeds3 \
      --out=/tmp/card
      scores that copy in seconds and prints the same table (--out keeps claims.json and the
      figures out of the evidence folder).

A run whose training diverged keeps one line of its error.txt, the exception's, so that the
lr pick (a diverged run counts as worse than any finished one) reads the same in the copy; no
other error.txt is copied (a failed run counts as unfinished either way). The table holds no
path, and its compute column sums the summaries' wall_seconds, copied with them. The command
prints its table between MARKERS; each document of COMMITTED (README.md: the small grid;
docs/claims.md: the quick check over 3 seeds) holds the same block, pasted, and
tests/test_claims_command.py keeps it equal to `--score_only` with its flags on its folder.
"""

import json
import math
import pathlib
from collections.abc import Iterable

from bioknow.claims import catalog
from bioknow.rundir import RunDir

# (document, evidence folder, flags): the scorecard each document holds is `--score_only
# --workdir=FOLDER FLAGS` (paths relative to the repository root). One folder serves both:
# the quick grid's points are points of the full grid.
COMMITTED = (
  ("README.md", "evidence/small", ()),
  ("docs/claims.md", "evidence/small", ("--quick", "--seeds=3")),
)
FILES = ("config.json", "summary.json", "metrics.jsonl")
DIVERGED = "TrainingDiverged"  # what RunDir.diverged looks for in error.txt
MARKERS = ("<!-- scorecard -->", "<!-- /scorecard -->")
QUICK = (
  "Quick check (`python -m bioknow.claims --quick`): one seed, each claim at its sweep's base "
  "lr, in its cheapest regime; not the full scorecard."
)


def quick_header(seeds: int) -> str:
  """The line above a quick check's table: QUICK, or with --seeds its seeds."""
  if seeds == 1:
    return QUICK
  return QUICK.replace("--quick`): one seed,", f"--quick --seeds={seeds}`): {seeds} seeds,")


def table(rows: list[dict]) -> str:
  """The scorecard as a Markdown table; a quick check's is headed by QUICK and flags every
  verdict "(quick)"."""
  quick = any(r.get("quick") for r in rows)
  lines = [quick_header(max(r.get("seeds", 1) for r in rows)), ""] if quick else []
  lines += [
    "| claim | paper | measured (mean, range over seeds) | verdict | compute |",
    "| --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    minutes = f"{r['compute_seconds'] / 60:.0f} min"
    done, planned = r.get("runs_finished", 0), r.get("runs_planned", 0)
    part = f" ({done} of {planned} runs)" if done < planned else ""
    if top := r.get("lr_at_top"):
      part += f" (best lr at the top of its grid for {len(top)} of {r['lr_swept']} settings)"
    part = " (quick)" + part if r.get("quick") else part
    lines.append(
      f"| {r['claim']}: {r['statement']} | {r['paper']} | {r['measured']} | "
      f"**{r['verdict']}**{part}{': ' + r['why'] if r.get('why') else ''} | {minutes} |"
    )
  return "\n".join(lines)


def merged(scored: list[dict], path: pathlib.Path) -> list[dict]:
  """The rows of `path` (an earlier claims.json) with `scored` in place of the claims scored
  again, in catalog order: `--only=finetune` updates one row and keeps the others."""
  rows = {r["claim"]: r for r in json.loads(path.read_text())} if path.exists() else {}
  rows |= {r["claim"]: r for r in scored}
  order = [c.name for c in catalog.CLAIMS]
  return sorted(
    rows.values(), key=lambda r: order.index(r["claim"]) if r["claim"] in order else len(order)
  )


def write_card(rows: list[dict], path: pathlib.Path) -> None:
  """Writes claims.json: the rows merged into the earlier ones of `path` (merged), JSON-safe."""
  path.write_text(json.dumps(_json_safe(merged(rows, path)), indent=1) + "\n")


def _json_safe(value):
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_json_safe(v) for v in value]
  return value


def marked(table: str) -> str:
  """The table between the markers, as the command prints it and README.md holds it."""
  return f"{MARKERS[0]}\n{table}\n{MARKERS[1]}"


def between_markers(text: str, where: str = "the text") -> str:
  """The first block between the markers, stripped; ValueError (one sentence) without one."""
  start = text.find(MARKERS[0])
  end = text.find(MARKERS[1], start + len(MARKERS[0])) if start >= 0 else -1
  if start < 0 or end < 0:
    raise ValueError(f"{where} has no scorecard between the lines {MARKERS[0]} and {MARKERS[1]}.")
  return text[start + len(MARKERS[0]) : end].strip()


def readme_table(path: str | pathlib.Path) -> str:
  """The scorecard table that README.md (or any file) holds between the markers."""
  path = pathlib.Path(path)
  return between_markers(path.read_text(), str(path))


def check_destination(dest: pathlib.Path, workdir: pathlib.Path) -> None:
  """Refuses an evidence folder that is the workdir or lies inside it (a copy among the runs
  it copies would be read as runs), in one sentence."""
  if dest == workdir or workdir in dest.parents:
    raise ValueError(
      f"--evidence: {dest} is inside the workdir {workdir}; give a folder outside it, e.g. "
      "evidence/quick_seeds3."
    )


def export(run_dirs: Iterable[pathlib.Path], workdir: pathlib.Path, dest: pathlib.Path) -> dict:
  """Copies FILES of each finished or diverged run directory (under workdir) to the same
  relative place under dest, replacing those files of an earlier copy (other runs in dest are
  left as they are); a diverged run also gets its exception's line as error.txt. A run still
  training, or killed, is left out: it is scored as unfinished either way, and its partial
  metrics would ship as evidence. Returns {"runs": n, "bytes": b}: what was written."""
  n_runs, n_bytes = 0, 0
  for run in dict.fromkeys(run_dirs):  # each once, in order
    if not (RunDir(run).is_finished() or RunDir(run).diverged()):
      continue
    target = RunDir(dest / run.relative_to(workdir))
    target.path.mkdir(parents=True, exist_ok=True)
    for name in (*FILES, "error.txt"):
      (target / name).unlink(missing_ok=True)
    for name in FILES:
      if (run / name).is_file():
        data = (run / name).read_bytes()
        (target / name).write_bytes(data)
        n_bytes += len(data)
    if RunDir(run).diverged():
      lines = RunDir(run).error_path.read_text().splitlines()
      line = next(x for x in reversed(lines) if DIVERGED in x).strip() + "\n"
      target.error_path.write_text(line)
      n_bytes += len(line.encode())
    n_runs += 1
  return {"runs": n_runs, "bytes": n_bytes}


def size(folder: pathlib.Path) -> int:
  """Bytes of every file under folder."""
  return sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*") if p.is_file())
