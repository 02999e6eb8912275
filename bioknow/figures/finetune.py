"""Fine-tuning on new individuals (Figures 5 middle and right, N, O, P).

finetune_frame: trajectories in the (pre-training loss, fine-tuning loss) frame, start marked
with a circle and end with a star; finetune_steps: both losses and accuracies over steps.
Panels: without replay (one line per number of new individuals), with replay (one line per
replay weight, the no-replay run of the same size in black), and fine-tuning on the
non-celebrities of a celebrities run. The toy memory reuses `trajectories`.
"""

import math
import pathlib
from typing import Any

import matplotlib.pyplot as plt

from bioknow.analysis import runs as R
from bioknow.figures import pretrain
from bioknow.figures import runs as D

NEW = {
  "keys": (
    "pretrain/attribute_loss",
    "finetune/attribute_loss",
    "pretrain/attribute_accuracy",
    "finetune/attribute_accuracy",
  ),
  "names": ("pre-training individuals", "fine-tuning individuals"),
}
CELEBRITIES = {
  "keys": (
    "celebrities/attribute_loss",
    "non_celebrities/attribute_loss",
    "celebrities/attribute_accuracy",
    "non_celebrities/attribute_accuracy",
  ),
  "names": ("celebrities", "non-celebrities (fine-tuned)"),
}


def _pair(records: list[dict], x_key: str, y_key: str):
  both = [
    r
    for r in records
    if R.is_number(r.get(x_key))
    and R.is_number(r.get(y_key))
    and math.isfinite(r[x_key])
    and math.isfinite(r[y_key])
  ]
  return [r[x_key] for r in both], [r[y_key] for r in both]


def trajectories(panels: list[dict], out_dir: pathlib.Path, prefix: str, unit: str = "nats"):
  """Draws {prefix}_frame and {prefix}_steps. A panel: title, keys (old loss, new loss, old
  accuracy, new accuracy), names (old, new), baseline, lines: [(label, color, records)]."""
  panels = [p for p in panels if p["lines"]]
  if not panels:
    return []
  n = len(panels)
  fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.4), squeeze=False)
  for ax, panel in zip(axes[0], panels):
    old, new = panel["keys"][:2]
    for label, color, records in panel["lines"]:
      x, y = _pair(records, old, new)
      if x:
        ax.plot(x, y, color=color, lw=1.2, label=label)
        ax.plot(x[0], y[0], "o", color=color, ms=4)
        ax.plot(x[-1], y[-1], "*", color=color, ms=8)
    if math.isfinite(panel["baseline"]):
      ax.axhline(panel["baseline"], color="k", ls="--", lw=0.8)
      ax.axvline(panel["baseline"], color="k", ls="--", lw=0.8)
    ax.set(
      xlabel=f"loss on {panel['names'][0]} ({unit})",
      ylabel=f"loss on {panel['names'][1]} ({unit})",
      title=panel["title"],
    )
    ax.legend(fontsize=6)
  paths = [D.save(fig, out_dir, f"{prefix}_frame")]
  fig, axes = plt.subplots(n, 2, figsize=(11, 3.6 * n), squeeze=False)
  for row, panel in zip(axes, panels):
    for ax, (old, new), what in zip(
      row, (panel["keys"][:2], panel["keys"][2:]), ("loss", "accuracy")
    ):
      for label, color, records in panel["lines"]:
        ax.plot(*R.series(records, old), color=color, label=label)
        ax.plot(*R.series(records, new), color=color, ls="--")
      ax.set(
        xlabel="fine-tuning step",
        ylabel=what,
        title=f"{panel['title']}: solid {panel['names'][0]}, dashed {panel['names'][1]}",
      )
    row[0].set_title(row[0].get_title(), fontsize=8)
    row[1].set_title(row[1].get_title(), fontsize=8)
    row[1].set_ylim(0, 1)
    if math.isfinite(panel["baseline"]):
      row[0].axhline(panel["baseline"], color="k", ls=":", lw=0.8)
    row[0].legend(fontsize=6)
  paths.append(D.save(fig, out_dir, f"{prefix}_steps"))
  return paths


def fmt_weight(w: float) -> str:
  """0.25 -> '1/4', 2 -> '2', 0.3 -> '0.3'."""
  if 0 < w < 1 and abs(1 / w - round(1 / w)) < 1e-6:
    return f"1/{round(1 / w)}"
  return f"{w:g}"


def split_by_replay(runs: list[dict], size_field: str) -> tuple[list, list]:
  """(no-replay runs by size, replay runs by decreasing weight + the no-replay run of their
  size) as (label, color, run) triples."""
  weight = lambda r: float(R.param(r, "weight_replay") or 0)  # noqa: E731
  plain = sorted((r for r in runs if weight(r) == 0), key=lambda r: R.param(r, size_field) or 0)
  replay = sorted((r for r in runs if weight(r) > 0), key=weight, reverse=True)
  no_replay = [
    (f"{size_field}={R.param(r, size_field)}", c, r) for r, c in zip(plain, D.palette(len(plain)))
  ]
  sizes = {R.param(r, size_field) for r in replay}
  with_replay = [
    (f"weight_replay={fmt_weight(weight(r))}", c, r)
    for r, c in zip(replay, D.palette(len(replay), "plasma"))
  ]
  with_replay += [
    (f"no replay ({size_field}={R.param(r, size_field)})", "k", r)
    for r in plain
    if replay and R.param(r, size_field) in sizes
  ]
  return no_replay, with_replay


def unique_runs(lines: list[tuple]) -> list[dict]:
  """The runs of (label, color, run) lines, each once, in order."""
  return list({id(r): r for _, _, r in lines}.values())


def _line(run: dict, keys: tuple) -> str:
  old, new = (R.series(run["records"], k)[1] for k in keys[:2])
  if not len(old) or not len(new):
    return f"{run['name']}: no fine-tuning evaluations yet"
  return (
    f"{run['name']}: loss on old individuals {old[0]:.3f} -> {old[-1]:.3f} (peak "
    f"{old.max():.3f}), on new individuals {new[0]:.3f} -> {new[-1]:.3f}"
  )


def draw(runs: list[dict], out_dir: pathlib.Path):
  tuned = R.best_lr([r for r in runs if R.experiment(r) == "finetune" and r["records"]])
  if not tuned:
    return [], []
  celebrity = [r for r in tuned if CELEBRITIES["keys"][0] in r["records"][-1]]
  new = [r for r in tuned if r not in celebrity and NEW["keys"][1] in r["records"][-1]]
  no_replay, with_replay = split_by_replay(new, "n_finetune")
  panels: list[dict[str, Any]] = [
    NEW | {"title": "without replay", "lines": no_replay},
    NEW | {"title": "with replay", "lines": with_replay},
    CELEBRITIES
    | {
      "title": "non-celebrities of a celebrities run",
      "lines": [(r["name"], c, r) for r, c in zip(celebrity, D.palette(len(celebrity)))],
    },
  ]
  for panel in panels:
    runs_in = [r for _, _, r in panel["lines"]]
    panel["baseline"] = R.baseline(runs_in[0]) if runs_in else math.nan
    panel["lines"] = [(label, color, r["records"]) for label, color, r in panel["lines"]]
  paths = trajectories(panels, out_dir, "finetune")
  paths += [p for p in (pretrain.attention(r, out_dir) for r in tuned) if p is not None]
  ordered = unique_runs(no_replay + with_replay)
  lines = [_line(r, NEW["keys"]) for r in ordered] + [
    _line(r, CELEBRITIES["keys"]) for r in celebrity
  ]
  return paths, lines
