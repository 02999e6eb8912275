"""Attention patching (Figure 3 middle): training with the attention patterns of a reference
run's checkpoint at reference_step, from step start_patching on.

patching_curves: attribute loss by reference step, one panel per start_patching, next to the
unpatched reference run. patching_final: final loss and plateau end against the reference
step, one line per start_patching.
"""

import math
import pathlib

import matplotlib.pyplot as plt

from bioknow.analysis import runs as R
from bioknow.figures import runs as D


def _step(run: dict, name: str):
  value = R.param(run, name)
  return value if R.is_number(value) else None


def reference(run: dict, by_dir: dict) -> dict | None:
  """The unpatched reference run: among the runs found, else loaded from its directory
  (a relative path is relative to the sweep's workdir, the patched run's parent)."""
  ref = R.param(run, "reference_run")
  if not isinstance(ref, str) or not ref:
    return None
  path = pathlib.Path(ref)
  path = (path if path.is_absolute() else run["dir"].parent / path).resolve()
  if path not in by_dir and (path / "metrics.jsonl").exists():
    try:
      by_dir[path] = R.load_run(path)
    except ValueError:  # unreadable: the patched run is drawn without its reference
      return None
  return by_dir.get(path)


FROZEN = "frozen"  # start_patching = reference_step: attention frozen from that step on


def patching_runs(runs: list[dict]) -> dict:
  """Groups of patched runs, each [(reference_step, run)] sorted, at the best lr of each
  setting: start_patching -> runs patched from that step with other references' patterns,
  and FROZEN -> the runs with start_patching = reference_step > 0."""
  patched = [
    r
    for r in runs
    if R.experiment(r) == "patching" and r["records"] and _step(r, "reference_step") is not None
  ]

  def group(run):
    start = _step(run, "start_patching") or 0
    return FROZEN if start and start == _step(run, "reference_step") else start

  groups = R.group_by(R.best_lr(patched), group)
  order = sorted(groups, key=lambda g: (g != 0, g != FROZEN, g if g != FROZEN else 0))
  return {
    g: sorted(((_step(r, "reference_step"), r) for r in groups[g]), key=lambda p: p[0])
    for g in order
  }


def _title(group) -> str:
  return (
    "attention frozen at the reference step" if group == FROZEN else f"patching from step {group}"
  )


def draw(runs: list[dict], out_dir: pathlib.Path):
  table = patching_runs(runs)
  if not table:
    return [], []
  by_dir = {r["dir"].resolve(): r for r in runs}
  some = next(iter(table.values()))[0][1]
  ref = reference(some, by_dir)
  ref_steps = sorted({s for pairs in table.values() for s, _ in pairs})
  colors = dict(zip(ref_steps, D.palette(len(ref_steps), "plasma")))
  fig, axes = D.panels(len(table), 4.5, 3.8)
  for ax, (start, pairs) in zip(axes, table.items()):
    if ref is not None:
      ax.plot(*R.series(ref["records"], "attribute_loss"), color="k", lw=1.5, label="no patching")
    for step, run in pairs:
      ax.plot(
        *R.series(run["records"], "attribute_loss"),
        color=colors[step],
        label=f"patterns of step {step}",
      )
    if start != FROZEN and start:
      ax.axvline(start, color="0.5", ls=":", lw=1)
    D.mark_baseline(ax, R.baseline(pairs[0][1]), label=False)
    D.log_y(ax)
    ax.set(xlabel="training step", ylabel="attribute loss (nats)", title=_title(start))
    ax.legend(fontsize=6)
  paths = [D.save(fig, out_dir, "patching_curves")]

  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  start_colors = D.palette(len(table))
  x = {s: i for i, s in enumerate(ref_steps)}
  lines = []
  for color, (start, pairs) in zip(start_colors, table.items()):
    final = [R.final(r, "attribute_loss") for _, r in pairs]
    ends = [R.plateau_end_or_budget(r) for _, r in pairs]
    xs = [x[s] for s, _ in pairs]
    axes[0].plot(xs, final, "o-", color=color, label=_title(start))
    axes[1].plot(xs, ends, "o-", color=color)
    # A plateau that never ends is drawn at the run's last step, hollow (a lower bound).
    never = [(xi, e) for xi, e, (_, r) in zip(xs, ends, pairs) if R.phase_ends(r)[1] is None]
    if never:
      axes[1].plot(*zip(*never), "o", color=color, mfc="white", label="never ends (last step)")
    lines.append(
      f"{_title(start)}, final attribute loss by reference step: "
      + ", ".join(f"{s}: {v:.3f}" for (s, _), v in zip(pairs, final))
    )
  if ref is not None:
    ref_final, (_, ref_end) = R.final(ref, "attribute_loss"), R.phase_ends(ref)
    axes[0].axhline(ref_final, color="k", lw=1, label="no patching")
    if ref_end is not None:
      axes[1].axhline(ref_end, color="k", lw=1)
    lines.append(
      f"patching reference {ref['name']}: final attribute loss {ref_final:.3f}, "
      f"plateau end {ref_end}"
    )
  for ax, label in zip(axes, ("final attribute loss (nats)", "plateau end (steps)")):
    ax.set_xticks(range(len(ref_steps)), [str(s) for s in ref_steps])
    ax.set(xlabel="reference step of the patterns", ylabel=label)
  if math.isfinite(R.baseline(some)):
    axes[0].axhline(R.baseline(some), color="k", ls="--", lw=1, label="no-knowledge baseline")
  axes[0].legend(fontsize=7)
  if axes[1].get_legend_handles_labels()[0]:
    axes[1].legend(fontsize=7)
  paths.append(D.save(fig, out_dir, "patching_final"))
  return paths, lines
