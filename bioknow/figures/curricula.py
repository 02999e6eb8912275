"""Curricula over individuals: power laws, celebrities, warm-ups, gradual growth.

alpha_heatmaps (Figure 4 left and middle): plateau end and final attribute loss of power-law
runs over alpha, one row per population and budget, the best alpha of each row boxed.
best_alpha (Figure 4 middle): the alpha minimising the final loss (and the plateau) against
the population, one line per budget.
strategies (Figures 4 right, I, J): the best run of each strategy (uniform, best power law,
celebrities, warm-up, growth) side by side, final loss and accuracy, and their curves.
grids (Figures K, L): final loss over the warm-up and celebrity hyperparameters.
Every point is the mean over seeds at the best learning rate of its setting.
"""

import math
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from bioknow.analysis import runs as R
from bioknow.figures import runs as D

_LABELS = {
  "uniform": "uniform",
  "powerlaw": "best power law",
  "celebrities": "celebrities",
  "warmup": "warm-up",
  "growth": "gradual growth",
}


def regime_label(regime: tuple) -> str:
  n, steps = regime
  return f"N={R.fmt_count(n)}, {R.fmt_count(steps)} steps"


def _mean(values) -> float:
  finite = [v for v in values if math.isfinite(v)]
  return float(np.mean(finite)) if finite else math.nan


def _settings(runs: list[dict], kind: str | None = None) -> list[dict]:
  """Per setting (best lr): mean final loss and accuracy and plateau end over seeds."""
  runs = [
    r
    for r in runs
    if R.experiment(r) == "pretrain"
    and r["records"]
    and (kind is None or R.schedule_kind(r) == kind)
  ]
  out = []
  for group in R.group_by(R.best_lr(runs), R.setting).values():
    ends = [e for e in (R.phase_ends(r)[1] for r in group) if e is not None]
    out.append(
      {
        "run": min(group, key=lambda r: str(R.param(r, "seed"))),
        "loss": _mean(R.final(r, "attribute_loss") for r in group),
        "accuracy": _mean(R.final(r, "attribute_accuracy") for r in group),
        "plateau": float(np.mean(ends)) if ends else math.nan,
      }
    )
  return out


def alpha_grid(runs: list[dict]) -> tuple[list, list, dict]:
  """(regimes, alphas, {"plateau": [R, A], "loss": [R, A]}) over power-law runs."""
  points = {
    (R.regime_of(s["run"]), float(R.param(s["run"], "alpha"))): s
    for s in _settings(runs, "powerlaw")
  }
  regimes = sorted({reg for reg, _ in points}, key=lambda r: (R.order(r[1]), R.order(r[0])))
  alphas = sorted({a for _, a in points})
  grid = {
    m: np.array(
      [[points[(reg, a)][m] if (reg, a) in points else math.nan for a in alphas] for reg in regimes]
    )
    for m in ("plateau", "loss")
  }
  return regimes, alphas, grid


def _heatmap(ax, values_RxC, rows: list[str], cols: list[str], title: str, fmt: str) -> None:
  masked = np.ma.masked_invalid(values_RxC)
  image = ax.imshow(masked, aspect="auto", cmap=plt.get_cmap("viridis_r").with_extremes(bad="0.85"))
  plt.colorbar(image, ax=ax, shrink=0.8)
  for i, row in enumerate(values_RxC):
    for j, v in enumerate(row):
      dark = math.isfinite(v) and image.norm(v) > 0.5  # viridis_r: high values are dark
      ax.text(
        j,
        i,
        format(v, fmt) if math.isfinite(v) else "–",
        ha="center",
        va="center",
        fontsize=7,
        color="w" if dark else "k",
      )
    if np.isfinite(row).any():
      j = int(np.nanargmin(row))
      ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
  ax.set_xticks(range(len(cols)), cols)
  ax.set_yticks(range(len(rows)), rows, fontsize=7)
  ax.set_title(title, fontsize=9)


def alpha_heatmaps(runs: list[dict], out_dir: pathlib.Path):
  regimes, alphas, grid = alpha_grid(runs)
  if len(alphas) < 2:
    return None
  rows, cols = [regime_label(r) for r in regimes], [f"{a:g}" for a in alphas]
  fig, axes = plt.subplots(1, 2, figsize=(12, 1.5 + 0.45 * len(rows)))
  _heatmap(axes[0], grid["plateau"], rows, cols, "plateau end (steps; – = not reached)", ".0f")
  _heatmap(axes[1], grid["loss"], rows, cols, "final attribute loss (nats)", ".3g")
  for ax in axes:
    ax.set_xlabel("power-law exponent alpha")
  return D.save(fig, out_dir, "alpha_heatmaps")


def best_alpha(runs: list[dict], out_dir: pathlib.Path):
  """The best-alpha figure (when two or more regimes exist) and one text line per regime."""
  regimes, alphas, grid = alpha_grid(runs)
  if len(alphas) < 2:
    return None, []
  best = {}
  for i, regime in enumerate(regimes):
    by = {
      m: alphas[int(np.nanargmin(grid[m][i]))] if np.isfinite(grid[m][i]).any() else None
      for m in ("loss", "plateau")
    }
    best[regime] = by
  lines = [
    f"best alpha at {regime_label(reg)}: final loss {b['loss']}, plateau {b['plateau']}"
    for reg, b in best.items()
  ]
  if len(regimes) < 2:
    return None, lines
  fig, ax = plt.subplots(figsize=(5.5, 4))
  budgets = sorted({steps for _, steps in regimes}, key=R.order)
  for steps, color in zip(budgets, D.palette(len(budgets))):
    pts = sorted(((n, b) for (n, s), b in best.items() if s == steps), key=lambda p: R.order(p[0]))
    ns = [n for n, _ in pts]
    ax.plot(
      ns,
      [np.nan if b["loss"] is None else b["loss"] for _, b in pts],  # None: a gap
      "o-",
      color=color,
      label=f"{R.fmt_count(steps)} steps: min final loss",
    )
    ax.plot(
      ns,
      [b["plateau"] if b["plateau"] is not None else np.nan for _, b in pts],
      "s:",
      color=color,
      alpha=0.6,
      label=f"{R.fmt_count(steps)} steps: min plateau",
    )
  ax.set(
    xscale="log",
    xlabel="number of individuals N",
    ylabel="best alpha",
    title="best power-law exponent",
    ylim=(min(alphas) - 0.1, max(alphas) + 0.1),
  )
  ax.legend(fontsize=7)
  return D.save(fig, out_dir, "best_alpha"), lines


def _chosen(run: dict) -> list[str]:
  """The schedule fields a curriculum run chose (not those the run fills in)."""
  if R.strategy(run) == "uniform":
    return []
  return [
    k
    for k in run["config"]
    if k.startswith("schedule.")
    and run["config"][k] is not None
    and k.rsplit(".", 1)[-1]
    not in ("n_individuals", "batch_size", "n_steps", "seed", "growth_steps")
  ]


def _short(run: dict, names: bool = True) -> str:
  """'alpha=0.8' (or '0.8' without names), 'indiv_warmup=100, epochs_warmup=4' ('100/4')."""
  keys = _chosen(run)
  if names:
    return R.describe(run, keys) if keys else ""
  return "/".join(str(run["config"][k]) for k in keys)


def _legend(kind: str, run: dict) -> str:
  fields = "/".join(k.rsplit(".", 1)[-1] for k in _chosen(run))
  return _LABELS.get(kind, kind) + (f" ({fields})" if fields else "")


def strategy_table(runs: list[dict]) -> dict:
  """regime -> {strategy: setting dict of its best setting by final attribute loss}."""
  table: dict = {}
  for s in _settings([r for r in runs if R.strategy(r) != "sequential"]):
    best = table.setdefault(R.regime_of(s["run"]), {})
    kind = R.strategy(s["run"])
    if math.isfinite(s["loss"]) and (kind not in best or s["loss"] < best[kind]["loss"]):
      best[kind] = s
  return {reg: b for reg, b in table.items() if len(b) >= 2}


def strategies(runs: list[dict], out_dir: pathlib.Path):
  table = strategy_table(runs)
  if not table:
    return [], []
  kinds = sorted(
    {k for b in table.values() for k in b},
    key=lambda k: (list(_LABELS).index(k) if k in _LABELS else 99, k),
  )
  colors = dict(zip(kinds, D.palette(len(kinds), "tab10")))
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  width = 0.8 / len(kinds)
  for ax, metric in zip(axes, ("loss", "accuracy")):
    labelled = set()
    for i, best in enumerate(table.values()):
      for j, kind in enumerate(kinds):
        if kind in best:
          x = i + (j - (len(kinds) - 1) / 2) * width
          ax.bar(
            x,
            best[kind][metric],
            width,
            color=colors[kind],
            label=_legend(kind, best[kind]["run"]) if kind not in labelled else None,
          )
          labelled.add(kind)
          ax.text(
            x,
            best[kind][metric],
            _short(best[kind]["run"], names=False),
            rotation=90,
            ha="center",
            va="bottom",
            fontsize=6,
          )
    ax.set_xticks(range(len(table)), [regime_label(r) for r in table], fontsize=8)
    ax.set_ylabel(f"final attribute {metric}")
  axes[0].margins(y=0.2)
  axes[1].set_ylim(0, 1.2)
  axes[0].legend(fontsize=7)
  paths = [D.save(fig, out_dir, "strategies")]
  fig, axes = D.panels(len(table), 5.5, 4)
  for ax, (regime, best) in zip(axes, table.items()):
    for kind in kinds:
      if kind in best:
        label = f"{_LABELS.get(kind, kind)} {_short(best[kind]['run'])}"
        ax.plot(
          *R.series(best[kind]["run"]["records"], "attribute_loss"), color=colors[kind], label=label
        )
    D.mark_baseline(ax, R.baseline(next(iter(best.values()))["run"]), label=False)
    D.log_y(ax)
    ax.set(xlabel="training step", ylabel="attribute loss (nats)", title=regime_label(regime))
    ax.legend(fontsize=6)
  paths.append(D.save(fig, out_dir, "strategies_curves"))
  lines = [
    f"best of each strategy at {regime_label(reg)} (final loss / accuracy): "
    + "; ".join(
      f"{_LABELS.get(k, k)} {_short(best[k]['run'])} {best[k]['loss']:.3f} / "
      f"{best[k]['accuracy']:.3f}".replace("  ", " ")
      for k in kinds
      if k in best
    )
    for reg, best in table.items()
  ]
  return paths, lines


def grid(runs: list[dict], kind: str, row: str, col: str, out_dir: pathlib.Path):
  """Final attribute loss over two schedule fields of one strategy, a panel per regime."""
  by_regime = R.group_by(_settings(runs, kind), lambda s: R.regime_of(s["run"]))
  by_regime = {k: v for k, v in by_regime.items() if len(v) >= 2}
  if not by_regime:
    return None
  fig, axes = D.panels(len(by_regime), 5.5, 4)
  for ax, (regime, settings) in zip(axes, by_regime.items()):
    rows = sorted({R.param(s["run"], row) for s in settings}, key=R.order)
    cols = sorted({R.param(s["run"], col) for s in settings}, key=R.order)
    cell = {(R.param(s["run"], row), R.param(s["run"], col)): s["loss"] for s in settings}
    values = np.array([[cell.get((r, c), math.nan) for c in cols] for r in rows])
    _heatmap(
      ax,
      values,
      [f"{row}={r}" for r in rows],
      [f"{c}" for c in cols],
      f"final attribute loss, {regime_label(regime)}",
      ".3g",
    )
    ax.set_xlabel(col)
  return D.save(fig, out_dir, f"{kind}_grid")


def draw(runs: list[dict], out_dir: pathlib.Path):
  paths = [alpha_heatmaps(runs, out_dir)]
  path, lines = best_alpha(runs, out_dir)
  paths.append(path)
  more_paths, more_lines = strategies(runs, out_dir)
  paths += more_paths + [
    grid(runs, "warmup", "indiv_warmup", "epochs_warmup", out_dir),
    grid(runs, "celebrities", "n_celebrities", "weight_celebrities", out_dir),
  ]
  return [p for p in paths if p is not None], lines + more_lines
