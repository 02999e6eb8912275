"""One figure per claim, drawn from the runs its score read (matplotlib; no JAX)."""

import pathlib
import textwrap

import matplotlib.pyplot as plt
import numpy as np

from bioknow.analysis import runs as R
from bioknow.claims import rules, rules_curricula, rules_finetune, rules_templates, rules_warmup
from bioknow.figures import finetune as finetune_family
from bioknow.figures import population
from bioknow.figures import runs as D


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
  for run, color in zip(runs, D.palette(len(runs))):
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
  return D.save(fig, out_dir, "claim_three_phases")


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
  for run, color in zip(runs, D.palette(len(runs))):
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
  return D.save(fig, out_dir, "claim_hallucination")


def toy_memory(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Old-pair accuracy lost against the number of new pairs (mean, bars: seeds' range)."""
  score = rules_finetune.toy_memory(runs)
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
  return D.save(fig, out_dir, "claim_toy_memory")


def _first_of_family(family, runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """The first figure the report's family draws from these runs (seed 0's, where it draws
  one per seed)."""
  paths, _ = family.draw([r for r in runs if r["summary"]], out_dir)
  return paths[0] if paths else None


def patching(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Patched from step 0, against the reference step of the patterns: plateau end (hollow: a
  plateau that never ends, at the run's last step) and final attribute loss, mean with the
  seeds' range, the unpatched references' mean and range behind; right, the references'
  last-layer attention from the first value token to the name, one line per seed, phase ends
  marked."""
  done = [r for r in runs if r["summary"]]
  patched = [r for r in done if R.experiment(r) == "patching" and not R.param(r, "start_patching")]
  if not patched:
    return None
  refs = [r for r in _pretrain(done) if r["name"].startswith("reference")]
  by_step = R.group_by(patched, lambda r: R.param(r, "reference_step"))
  steps = sorted(by_step, key=R.order)
  fig, axes = plt.subplots(1, 3, figsize=(16, 4))
  for ax, value, label in (
    (axes[0], R.plateau_end_or_budget, "plateau end (steps)"),
    (axes[1], lambda r: R.final(r, "attribute_loss"), "final attribute loss (nats)"),
  ):
    per_step = [np.array([value(r) for r in by_step[s]]) for s in steps]
    mean = np.array([v.mean() for v in per_step])
    low, high = np.array([v.min() for v in per_step]), np.array([v.max() for v in per_step])
    ax.errorbar(
      range(len(steps)),
      mean,
      yerr=[mean - low, high - mean],
      fmt="o-",
      capsize=3,
      label=f"patched from step 0 ({len(per_step[0])} seeds)",
    )
    if refs:
      unpatched = np.array([value(r) for r in refs])
      ax.axhline(unpatched.mean(), color="k", lw=1, label=f"unpatched ({len(refs)} seeds)")
      ax.axhspan(unpatched.min(), unpatched.max(), color="k", alpha=0.1)
    ax.set_xticks(range(len(steps)), [str(s) for s in steps])
    ax.set(xlabel="reference step of the patterns", ylabel=label)
  never = [
    (i, R.plateau_end_or_budget(r))
    for i, s in enumerate(steps)
    for r in by_step[s]
    if R.phase_ends(r)[1] is None
  ]
  if never:
    axes[0].plot(*zip(*never), "o", color="C0", mfc="white", ms=9, label="never ends (last step)")
  axes[1].axhline(R.baseline(patched[0]), color="0.4", ls="--", lw=1, label="no-knowledge floor")
  for ref, color in zip(refs, D.palette(len(refs))):
    at, attention = R.layer_series(ref["records"], "attn_value_to_name")
    if not len(at):
      continue
    axes[2].plot(at, attention[:, -1], color=color, label=f"reference, seed {rules.seed_of(ref)}")
    for end, marker in zip(R.phase_ends(ref), ("o", "s")):
      if end is not None:
        axes[2].plot([end], [np.interp(end, at, attention[:, -1])], marker, color=color)
  axes[2].set(
    xlabel="training step",
    ylabel="last-layer attention, first value token -> name",
    title="o: first phase ends, s: plateau ends",
  )
  for ax in axes:
    ax.legend(fontsize=7)
  return D.save(fig, out_dir, "claim_patching")


def finetune(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  return _first_of_family(finetune_family, runs, out_dir)


def warmup(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Final attribute accuracy of uniform sampling, the best static schedule and the best
  warm-up at the warm-ups' population and budget: bars the means, dots the seeds."""
  score = rules_warmup.warmup(runs)
  by_seed = score.values.get("by_seed")
  if not by_seed:
    return None
  kinds = ("uniform", "static", "warmup")
  settings = score.values["settings"]
  colors = D.palette(3, "tab10")
  fig, (ax, curves) = plt.subplots(1, 2, figsize=(11, 4))
  for i, (kind, color) in enumerate(zip(kinds, colors)):
    accuracy = [seed[kind] for seed in by_seed.values()]
    ax.bar(i, np.mean(accuracy), 0.6, color=color, alpha=0.6)
    ax.plot([i] * len(accuracy), accuracy, "o", color="k", ms=4)
  # Point names run to 30 characters: wrapped at their underscores so the labels do not overlap.
  names = [textwrap.fill(settings[kind].replace("_", " "), 16) for kind in kinds]
  lrs = [f"lr {score.values['lr'][settings[kind]]:g}" for kind in kinds]  # each at its best lr
  labels = [f"{kind}\n{name}\n{lr}" for kind, name, lr in zip(kinds, names, lrs)]
  ax.set_xticks(range(3), labels, fontsize=7)
  ax.set(
    ylabel="final attribute accuracy",
    ylim=(0, 1),
    title=f"warm-up at N={R.fmt_count(score.values['population'])}, "
    f"{R.fmt_count(score.values['budget'])} steps ({score.verdict})",
  )
  _warmup_curves(curves, runs, score.values, colors)
  return D.save(fig, out_dir, "claim_warmup")


def _warmup_curves(ax, runs: list[dict], values: dict, colors: list) -> None:
  """Attribute loss over training, one line per seed: uniform and the best static schedule
  on everyone; the best warm-up on its own people (dashed) and on the others (estimated,
  rules_warmup.split_series), with its switch step."""
  runs, _ = rules.best_lr(rules.finished(runs, "pretrain"))
  of = lambda kind: [r for r in runs if rules.point_setting(r) == values["settings"][kind]]
  for kind, color in zip(("uniform", "static"), colors):
    for i, run in enumerate(of(kind)):
      ax.plot(*R.series(run["records"], "attribute_loss"), color=color, lw=1,
              label=kind if i == 0 else None)  # fmt: skip
  for i, run in enumerate(of("warmup")):
    steps, own, others = rules_warmup.split_series(run, values["population"])
    ax.plot(steps, others, color=colors[2], lw=1.5, label="warm-up: the others" if i == 0 else None)
    ax.plot(steps, own, "--", color=colors[2], lw=1, label="warm-up: its own" if i == 0 else None)
  if switch := values.get("after_switch", {}).get("steps_after_switch"):
    ax.axvline(values["budget"] - switch, color="gray", lw=0.8, ls=":")
  baseline = R.baseline(of("uniform")[0])
  ax.axhline(baseline, color="k", lw=0.8, ls="--")
  ax.set(xlabel="step", ylabel="attribute loss (nats)", ylim=(0, 2 * baseline),
         title="loss by group; dotted: the warm-up's switch")  # fmt: skip
  ax.legend(fontsize=7)


def alpha(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """Mean plateau end and final attribute loss against alpha, one line per population and
  budget; the shortest plateaus and the lowest losses marked."""
  rows = rules_curricula.alpha(runs).values.get("by_regime")
  if not rows:
    return None
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for row, color in zip(rows, D.palette(len(rows))):
    label = f"N={R.fmt_count(row['population'])}, {R.fmt_count(row['budget'])} steps"
    for ax, key, best in (
      (axes[0], "plateau_end", row["shortest_plateau_alpha"]),
      (axes[1], "final_loss", [row["best_loss_alpha"]]),
    ):
      ax.plot(row["alphas"], row[key], "o-", color=color, label=label)
      marked = [y for a, y in zip(row["alphas"], row[key]) if a in best]
      ax.plot([a for a in row["alphas"] if a in best], marked, "*", color="r", ms=12)
  axes[0].set(xlabel="power-law exponent alpha", ylabel="plateau end (steps)")
  axes[0].set_title("plateau end (*: shortest)", fontsize=9)
  axes[1].set(xlabel="power-law exponent alpha", ylabel="final attribute loss (nats)")
  axes[1].set_title("final loss (*: lowest)", fontsize=9)
  axes[0].legend(fontsize=7)
  return D.save(fig, out_dir, "claim_alpha")


def templates(runs: list[dict], out_dir: pathlib.Path) -> pathlib.Path | None:
  """The evaluation-minus-training-template loss gap, and the evaluation loss, over the
  baseline, against training templates per attribute, shuffled and fixed sentence order
  (mean, bars: seeds' range); the rule's margins dotted."""
  values = rules_templates.templates(runs).values
  if not values:
    return None
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, key, title in (
    (axes[0], "gap_over_baseline", "(evaluation - training-template loss) / baseline"),
    (axes[1], "eval_loss_over_baseline", "evaluation-template loss / baseline"),
  ):
    for order, ls in (("shuffled", "o-"), ("fixed", "s--")):
      by_count = values[key].get(order, {})
      if not by_count:
        continue
      n = np.array([int(k) for k in by_count], float)
      mean, low, high = (
        np.array([d[k] for d in by_count.values()]) for k in ("mean", "min", "max")
      )
      ax.errorbar(n, mean, yerr=[mean - low, high - mean], fmt=ls, capsize=3, label=order)
    counts = sorted({int(n) for by_count in values[key].values() for n in by_count})
    ax.set(xscale="log", xlabel="training templates per attribute")
    ax.set_xticks(counts, [str(n) for n in counts])  # the counts run, not powers of 10
    ax.minorticks_off()
    ax.set_title(title, fontsize=9)
  for margin in (rules_templates.ONE_TEMPLATE_GAP, rules_templates.MANY_TEMPLATES_GAP):
    axes[0].axhline(margin, color="0.5", ls=":", lw=1)
  axes[1].axhline(1.0, color="0.4", ls="--", lw=1, label="no-knowledge floor")
  axes[1].legend(fontsize=7)
  return D.save(fig, out_dir, "claim_templates")
