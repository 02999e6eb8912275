"""One figure per claim, drawn from the runs its score read (matplotlib; no JAX)."""

import pathlib

import matplotlib.pyplot as plt
import numpy as np

from bioknow.claims import rules
from bioknow.figures import finetune as finetune_family
from bioknow.figures import patching as patching_family
from bioknow.figures import population
from bioknow.figures import runs as R


def _pretrain(runs: list[dict]) -> list[dict]:
  return sorted(
    (r for r in runs if r["summary"] and R.experiment(r) == "pretrain"), key=rules.seed_of
  )


def three_phases(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Attribute loss over the baseline against steps, one line per seed, phase ends marked."""
  runs = _pretrain(runs)
  if not runs:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for run, color in zip(runs, R.palette(len(runs))):
    steps, loss = R.series(run["records"], "attribute_loss")
    ax.plot(steps, loss / R.baseline(run), color=color, label=f"seed {rules.seed_of(run)}")
    for end, marker in zip(R.phase_ends(run), ("o", "s")):
      if end is not None:
        ax.plot([end], [np.interp(end, steps, loss) / R.baseline(run)], marker, color=color)
  ax.axhline(1.0, color="0.4", ls="--", lw=1, label="no-knowledge floor")
  ax.set(
    xlabel="training step",
    ylabel="attribute loss / baseline",
    title="three phases (o: first phase ends, s: plateau ends)",
  )
  ax.legend(fontsize=7)
  return R.save(fig, out_dir, "claim_three_phases")


def plateau_law(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  laws = population.plateau_law([r for r in runs if r["summary"]])
  if not laws:
    return None
  return population.law_figure(max(laws, key=lambda w: len(w["n"])), out_dir, "claim_plateau_law")


def hallucination(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Seen and held-out attribute loss over the baseline, per seed."""
  runs = _pretrain(runs)
  if not runs:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for run, color in zip(runs, R.palette(len(runs))):
    for key, ls, label in (
      ("attribute_loss", "-", "seen"),
      ("unseen_attribute_loss", ":", "held-out"),
    ):
      steps, loss = R.series(run["records"], key)
      ax.plot(
        steps, loss / R.baseline(run), ls, color=color, label=f"{label}, seed {rules.seed_of(run)}"
      )
  ax.axhline(1.0, color="0.4", ls="--", lw=1)
  ax.set(xlabel="training step", ylabel="attribute loss / baseline", title="hallucinations")
  ax.legend(fontsize=7)
  return R.save(fig, out_dir, "claim_hallucination")


def toy_memory(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Old-pair accuracy lost against the number of new pairs (mean, bars: seeds' range)."""
  score = rules.toy_memory(runs)
  by_n = score.values.get("forgetting_by_n_new")
  if not by_n:
    return None
  n = np.array([int(k) for k in by_n], float)
  mean, low, high = (np.array([d[k] for d in by_n.values()]) for k in ("mean", "min", "max"))
  fig, ax = plt.subplots(figsize=(5, 4))
  ax.errorbar(n, mean, yerr=[mean - low, high - mean], fmt="o-", capsize=3, label="no replay")
  saved = score.values["share_saved_by_replay"]
  if saved["n"]:
    ax.set_title(
      f"replay (weight {score.values['replay_weight']:g}) keeps {saved['mean']:.0%} away"
    )
  ax.set(xscale="log", xlabel="new pairs", ylabel="old-pair accuracy lost")
  ax.legend(fontsize=7)
  return R.save(fig, out_dir, "claim_toy_memory")


def _first_of_family(family, runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """The first figure the report's family draws from these runs (seed 0's, where it draws
  one per seed)."""
  paths, _ = family.draw([r for r in runs if r["summary"]], out_dir)
  return paths[0] if paths else None


def patching(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  return _first_of_family(patching_family, runs, out_dir)


def finetune(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  return _first_of_family(finetune_family, runs, out_dir)
