"""Drawing helpers every figure family shares: a palette, panels, a log loss axis, the
no-knowledge baseline mark, saving. Reading and judging runs (loading, series, phase ends, the
best learning rate, fits) is bioknow.analysis.runs'.
"""

import math
import pathlib

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

DPI = 110


def palette(n: int, cmap: str = "viridis") -> list:
  return [plt.get_cmap(cmap)(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def panels(n: int, width: float, height: float, max_cols: int = 4):
  """A figure with n panels in rows of at most max_cols; returns (fig, the n axes)."""
  cols = max(1, min(n, max_cols))
  rows = (n + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
  for ax in axes.flat[n:]:
    ax.axis("off")
  return fig, list(axes.flat[:n])


def log_y(ax) -> None:
  """A log loss axis labelled at 1-2-5 steps (cheaper and easier to read than minor labels)."""
  ax.set_yscale("log")
  low, high = ax.get_ylim()
  # Over less than a factor of 30, 1-2-5 steps may leave one label or none.
  subs = (1.0, 2.0, 5.0) if high / low > 30 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
  ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
  ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def mark_baseline(ax, value: float, label: bool = True) -> None:
  if math.isfinite(value):
    ax.axhline(
      value,
      color="k",
      ls="--",
      lw=1,
      label=f"no-knowledge baseline ({value:.2f})" if label else None,
    )


def save(fig, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / f"{name}.png"
  fig.tight_layout()
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path
