"""Plateau length against the number of individuals, with a fitted power law (Figure 2 right).

Uniform pretraining runs that differ in data.n_individuals (and in lr and seeds) form a
population sweep. Each population keeps its best learning rate (final training loss, mean
over seeds); its plateau end is the mean over seeds whose plateau ended within the budget, and
plateau_end = c * N^k is fitted by least squares in log-log.
"""

import math
import pathlib

import matplotlib.pyplot as plt
import numpy as np

from bioknow.figures import runs as R


def plateau_law(runs: list[dict]) -> list[dict]:
  """One dict per population sweep found: n [P], plateau [P] (mean over seeds, NaN where no
  seed left the plateau), members (runs kept), and k, c, r2 where two or more plateaus ended."""
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
  for members in R.group_by(kept, lambda r: R.setting(r, ("data.n_individuals",))).values():
    by_n = dict(sorted(R.group_by(members, R.population).items()))
    if len(by_n) < 2:
      continue
    plateau = []
    for group in by_n.values():
      ends = [e for e in (R.phase_ends(r)[1] for r in group) if e is not None]
      plateau.append(float(np.mean(ends)) if ends else math.nan)
    law = {"n": np.array(list(by_n), float), "plateau": np.array(plateau), "members": members}
    ok = np.isfinite(law["plateau"]) & (law["plateau"] > 0)
    if ok.sum() >= 2:
      law["k"], law["c"], law["r2"] = R.fit_power_law(law["n"][ok], law["plateau"][ok])
    sweeps.append(law)
  return sweeps


def _draw(law: dict, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  members = law["members"]
  by_n = dict(sorted(R.group_by(members, R.population).items()))
  colors = dict(zip(by_n, R.palette(len(by_n))))
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
  R.mark_baseline(ax_curves, R.baseline(members[0]))
  R.log_y(ax_curves)
  ax_curves.set(
    xlabel="training step",
    ylabel="attribute loss (nats)",
    title="learning curves (best lr, one seed)",
  )
  ax_curves.legend(fontsize=7)
  ok = np.isfinite(law["plateau"])
  ax_law.scatter(
    law["n"][ok],
    law["plateau"][ok],
    c=[colors[n] for n in law["n"][ok]],
    s=40,
    zorder=4,
    label="plateau end (mean over seeds)",
  )
  if "k" in law:
    n_line = np.geomspace(law["n"].min(), law["n"].max(), 50)
    ax_law.plot(
      n_line,
      law["c"] * n_line ** law["k"],
      color="k",
      lw=1,
      label=f"{law['c']:.3g} N^{law['k']:.3f}  (R² = {law['r2']:.3f})",
    )
  ax_law.set(
    xscale="log",
    yscale="log",
    xlabel="number of individuals N",
    ylabel="plateau end (steps)",
    title="plateau length against population",
  )
  ax_law.legend(fontsize=7)
  return R.save(fig, out_dir, name)


def draw(runs: list[dict], out_dir: pathlib.Path):
  paths, lines = [], []
  for i, law in enumerate(plateau_law(runs)):
    paths.append(_draw(law, out_dir, "plateau_vs_population" + (f"_{i}" if i else "")))
    pops = ", ".join(
      f"{R.fmt_count(n)}: {p:.0f}" if math.isfinite(p) else f"{R.fmt_count(n)}: not reached"
      for n, p in zip(law["n"], law["plateau"])
    )
    lines.append(f"plateau end by population (best lr, mean over seeds): {pops}")
    if "k" in law:
      lines.append(
        f"plateau law: plateau_end = {law['c']:.4g} * N^{law['k']:.4f}, "
        f"exponent k = {law['k']:.4f}, R^2 = {law['r2']:.4f}"
      )
  return paths, lines
