"""Each attribute type against its own no-knowledge baseline: the figure and the report lines
that show whether every type sits on its own floor through the plateau (train.phases'
phase rules, per type)."""

import math
import pathlib

import matplotlib.pyplot as plt

from bioknow.analysis import runs as R
from bioknow.figures import runs as D
from bioknow.train import phases


def _names(records: list[dict]) -> list[str]:
  """The attribute types whose per-type baseline the records carry."""
  return sorted(
    k.split("/", 1)[1]
    for k in (records[0] if records else {})
    if k.startswith("no_knowledge_baseline/")
  )


def attribute_curves(run: dict, out_dir: pathlib.Path) -> pathlib.Path | None:
  """Each attribute type's loss divided by its own baseline over training (log step axis),
  with the band in which train.phases counts the loss as on the plateau and each type's
  plateau end: the plateau is the paper's phenomenon only if every type sits in the band."""
  records = run["records"]
  names = _names(records)
  if not names:
    return None
  ends = phases.phase_ends(records)
  fig, ax = plt.subplots(figsize=(7.5, 4.2))
  ax.axhspan(
    phases.PLATEAU_FACTOR,
    phases.FIRST_PHASE_FACTOR,
    color="C2",
    alpha=0.15,
    label=f"plateau band ({phases.PLATEAU_FACTOR:g}-{phases.FIRST_PHASE_FACTOR:g} x baseline)",
  )
  for name, color in zip(names, D.palette(len(names), "tab10")):
    steps, loss = R.series(records, f"attribute_loss/{name}")
    _, base = R.series(records, f"no_knowledge_baseline/{name}")
    keep = steps > 0  # a log step axis
    end = ends.get(f"plateau_end_step/{name}")
    ax.plot(
      steps[keep],
      loss[keep] / base[keep],
      color=color,
      label=f"{name} (plateau ends {end if end is not None else 'later'})",
    )
  ax.set(
    xscale="log",
    ylim=(0.5, 1.6),
    xlabel="training step (log)",
    ylabel="attribute loss / its no-knowledge baseline",
    title=f"{run['name']}: each attribute against its own baseline",
  )
  ax.legend(fontsize=7, loc="lower left")
  return D.save(fig, out_dir, f"attribute_curves_{run['name']}")


def attribute_lines(run: dict) -> list[str]:
  """Per attribute type, one line: its baseline, its own first-phase and plateau ends, and the
  range of its loss / baseline over the run's plateau (from the overall first-phase end to the
  overall plateau end, or the last evaluation): how flat each type sits at its own floor."""
  records = run["records"]
  names = _names(records)
  ends = phases.phase_ends(records)
  first, plateau = ends["first_phase_end_step"], ends["plateau_end_step"]
  lines = []
  for name in names:
    window = [
      r[f"attribute_loss/{name}"] / r[f"no_knowledge_baseline/{name}"]
      for r in records
      if first is not None and first <= r["step"] < (plateau or math.inf)
    ]
    flat = (
      f"loss/baseline {min(window):.3f}-{max(window):.3f} over steps {first}-"
      f"{plateau if plateau is not None else 'end'}"
      if window
      else "no plateau"
    )
    lines.append(
      f"  {name}: baseline {records[-1][f'no_knowledge_baseline/{name}']:.4g}, first phase "
      f"ends {ends[f'first_phase_end_step/{name}']}, plateau ends "
      f"{ends[f'plateau_end_step/{name}']}, {flat}, final loss "
      f"{records[-1][f'attribute_loss/{name}']:.4g}"
    )
  return lines
