"""Plateau length against the number of individuals, with a fitted power law (Figure 2 right).

Uniform pretraining runs that differ in data.n_individuals (and in lr and seeds) form a
population sweep. Each population keeps its best learning rate (final training loss, mean
over seeds). plateau_end = c * N^k is fitted by least squares in log-log over every seed's
plateau end (runs that never left the plateau are left out and counted, and so are runs with
no plateau at all, whose plateau ends at the evaluation that ends their first phase: there
the first phase, not the population, sets the step), with a 95% confidence interval on k;
each population is drawn as its mean over seeds with the seeds' range.
"""

import math
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from bioknow.analysis import runs as R
from bioknow.figures import runs as D

# What may differ between the populations of one sweep: the population, and when and on how
# many sequences a run is evaluated (the small grid evaluates up to 400 people every 10 steps,
# larger ones every 25), which changes no training step.
_NOT_TRAINING = (
  "data.n_individuals",
  *(f"eval.{k}" for k in ("every", "dense_until", "n_spaced", "steps", "n_sequences")),
  *(f"eval.{k}" for k in ("batch_size", "n_attention")),
)


def plateau_law(runs: list[dict]) -> list[dict]:
  """One dict per population sweep found: n [P], plateau [P] (mean over seeds, NaN where no
  seed left the plateau), low/high [P] (the seeds' range), seeds [P] and ended [P] (runs,
  and runs whose plateau ended), members (runs kept), and k, c, r2 where two or more
  populations ended their plateau (k_low, k_high: the 95% interval, from three points);
  no_plateau [P]: runs whose plateau ended with their first phase (left out of the fit)."""
  uniform = [
    r
    for r in runs
    if R.experiment(r) == "pretrain"
    and R.schedule_kind(r) == "uniform"
    and r["records"]
    and isinstance(R.population(r), int)
  ]
  sweeps = []
  kept = R.best_lr(uniform)
  for members in R.group_by(kept, lambda r: R.setting(r, _NOT_TRAINING)).values():
    by_n = dict(sorted(R.group_by(members, R.population).items()))
    if len(by_n) < 2:
      continue
    stats: list[tuple[float, float, float, int, int, int]] = []
    points: list[tuple[int, float]] = []
    for n, group in by_n.items():
      phases = [R.phase_ends(r) for r in group]
      ends = [float(e) for f, e in phases if e is not None and e > 0 and (f is None or e > f)]
      flat = sum(1 for f, e in phases if e is not None and f is not None and e <= f)
      points += [(n, e) for e in ends]
      mean_low_high = (float(np.mean(ends)), min(ends), max(ends)) if ends else (math.nan,) * 3
      stats.append((*mean_low_high, len(group), len(ends), flat))
    mean, low, high, seeds, ended, no_plateau = (np.array(c, float) for c in zip(*stats))
    law = {
      "n": np.array(list(by_n), float),
      "plateau": mean,
      "low": low,
      "high": high,
      "seeds": seeds.astype(int),
      "ended": ended.astype(int),
      "no_plateau": no_plateau.astype(int),
      "members": members,
    }
    if len({n for n, _ in points}) >= 2:
      x, y = zip(*points)
      law["k"], law["c"], law["r2"] = R.fit_power_law(x, y)
      law["k_low"], law["k_high"] = R.power_law_interval(x, y)
    sweeps.append(law)
  return sweeps


def law_figure(law: dict, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  members = law["members"]
  by_n = dict(sorted(R.group_by(members, R.population).items()))
  colors = dict(zip(by_n, D.palette(len(by_n))))
  fig, (ax_curves, ax_law) = plt.subplots(1, 2, figsize=(11, 4.2))
  for n, group in by_n.items():
    run = min(group, key=lambda r: str(R.param(r, "seed")))  # one seed per population
    ax_curves.plot(
      *R.series(run["records"], "attribute_loss"), color=colors[n], label=f"N = {R.fmt_count(n)}"
    )
    ends = [(e, R.param(r, "n_steps")) for r, (_, e) in ((r, R.phase_ends(r)) for r in group)]
    ax_law.scatter(
      [n] * sum(e is not None for e, _ in ends),
      [e for e, _ in ends if e is not None],
      color="0.6",
      s=12,
      zorder=2,
    )
    budgets = [b for e, b in ends if e is None and isinstance(b, int)]
    if budgets:  # never left the plateau: drawn at the budget
      ax_law.scatter(
        [n], [max(budgets)], marker="^", facecolor="none", edgecolor=colors[n], s=40, zorder=3
      )
  D.mark_baseline(ax_curves, R.baseline(members[0]))
  D.log_y(ax_curves)
  ax_curves.set(
    xlabel="training step",
    ylabel="attribute loss (nats)",
    title="learning curves (best lr, one seed)",
  )
  ax_curves.legend(fontsize=7)
  ok = np.isfinite(law["plateau"])
  ax_law.errorbar(
    law["n"][ok],
    law["plateau"][ok],
    yerr=[law["plateau"][ok] - law["low"][ok], law["high"][ok] - law["plateau"][ok]],
    fmt="none",
    ecolor="k",
    elinewidth=1,
    capsize=3,
    zorder=3,
  )
  ax_law.scatter(
    law["n"][ok],
    law["plateau"][ok],
    c=[colors[n] for n in law["n"][ok]],
    s=40,
    zorder=4,
    label="plateau end (mean over seeds, bars: range)",
  )
  if "k" in law:
    n_line = np.geomspace(law["n"].min(), law["n"].max(), 50)
    ax_law.plot(
      n_line,
      law["c"] * n_line ** law["k"],
      color="k",
      lw=1,
      label=f"{law['c']:.3g} N^{law['k']:.3f} [{_interval(law)}]  (R² = {law['r2']:.3f})",
    )
  ax_law.set(
    xscale="log",
    yscale="log",
    xlabel="number of individuals N",
    ylabel="plateau end (steps)",
    title="plateau length against population",
  )
  ax_law.legend(fontsize=7)
  return D.save(fig, out_dir, name)


def _interval(law: dict) -> str:
  if not math.isfinite(law["k_low"]):
    return "95% CI: needs 3 points"
  return f"95% CI {law['k_low']:.3f} to {law['k_high']:.3f}"


def _population_line(law: dict, i: int) -> str:
  n, mean, ended, seeds = law["n"][i], law["plateau"][i], law["ended"][i], law["seeds"][i]
  flat = law["no_plateau"][i]
  if not ended:
    return f"{R.fmt_count(n)}: " + (
      f"no plateau resolved ({flat} seeds)" if flat else f"not reached ({seeds} seeds)"
    )
  spread = f", range {law['low'][i]:.0f}-{law['high'][i]:.0f}" if ended > 1 else ""
  missing = f", {seeds - ended - flat} not reached" if ended + flat < seeds else ""
  missing += f", {flat} with no plateau resolved" if flat else ""
  return f"{R.fmt_count(n)}: {mean:.0f} ({ended} seeds{spread}{missing})"


def draw(runs: list[dict], out_dir: pathlib.Path):
  paths, lines = [], []
  for i, law in enumerate(plateau_law(runs)):
    paths.append(law_figure(law, out_dir, "plateau_vs_population" + (f"_{i}" if i else "")))
    pops = "; ".join(_population_line(law, j) for j in range(len(law["n"])))
    lines.append(f"plateau end by population (best lr, mean over seeds): {pops}")
    if "k" in law:
      lines.append(
        f"plateau law: plateau_end = {law['c']:.4g} * N^{law['k']:.4f}, "
        f"exponent k = {law['k']:.4f} ({_interval(law)}), R^2 = {law['r2']:.4f}"
      )
  return paths, lines
