"""Figures of single pretraining runs, and of runs that vary one thing side by side.

learning_curves (Figure 2 left, A, C): attribute loss and accuracy of seen (evaluation
templates) and held-out individuals, with the no-knowledge baseline and the three phases.
attention (Figure 3 right, F): the attention statistics per layer over training.
hallucination (Figure 5 left, M): loss, max-probability and entropy on seen and held-out
individuals, and the AUROC of telling them apart by max-probability.
groups (Figures S-U, P): per-group curves (sequential groups, celebrities, warm-up subset),
with the periods each sequential group is trained on shaded.
ablations (Figures B, C): one panel per family of changes to the run named 'base'.
template_diversity (Figure A): final loss against the number of training templates.
compare (Figures A, C, I): runs whose names share their first word, overlaid (with the run
named 'base', if any).
"""

import math
import pathlib
import re

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from bioknow.analysis import runs as R
from bioknow.figures import attributes
from bioknow.figures import runs as D

_MAX_OVERLAID = 25  # larger families (e.g. the paper's power-law grid) have their own figures


def _phase_spans(ax, run: dict, top: float) -> None:
  """Shades and names the three phases on a loss axis."""
  first, plateau = R.phase_ends(run)
  steps, _ = R.series(run["records"], "attribute_loss")
  if first is None or not len(steps):
    return
  end = plateau if plateau is not None else steps[-1]
  ax.axvspan(0, first, color="C1", alpha=0.08)
  ax.axvspan(first, end, color="C2", alpha=0.12)
  ax.text(first / 2, top, "1: value\ndistribution", ha="center", va="top", fontsize=8)
  # Lower than the other names (the loss axis is logarithmic): short plateaus stay legible.
  ax.text((first + end) / 2, top / 4, "2: plateau", ha="left", va="top", fontsize=8)
  if plateau is not None:
    ax.text((plateau + steps[-1]) / 2, top, "3: knowledge", ha="center", va="top", fontsize=8)


def learning_curves(run: dict, out_dir: pathlib.Path) -> pathlib.Path | None:
  """Attribute loss of seen (evaluation templates) and held-out individuals over training,
  with the no-knowledge baseline and the three phases marked."""
  records = run["records"]
  steps, loss = R.series(records, "attribute_loss")
  if not len(steps):
    return None
  fig, (ax, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  ax.plot(steps, loss, label="seen individuals", color="C0")
  for key, label, color in (
    ("train_templates_attribute_loss", "seen, training templates", "C0"),
    ("unseen_attribute_loss", "held-out individuals", "C3"),
  ):
    s, v = R.series(records, key)
    if len(s):
      ax.plot(s, v, label=label, color=color, ls=":" if "train" in key else "-")
  D.mark_baseline(ax, R.baseline(run))
  _phase_spans(ax, run, top=float(np.nanmax(loss)))
  D.log_y(ax)
  ax.set(
    xlabel="training step", ylabel="attribute loss (nats)", title=f"{run['name']}: attribute loss"
  )
  ax.legend(fontsize=8, loc="lower left")
  for key, label, color in (
    ("attribute_accuracy", "seen", "C0"),
    ("unseen_attribute_accuracy", "held-out", "C3"),
  ):
    s, v = R.series(records, key)
    if len(s):
      ax_acc.plot(s, v, color=color, label=label)
  ax_acc.set(xlabel="training step", ylabel="attribute accuracy", ylim=(0, 1))
  ax_acc.legend(fontsize=8)
  return D.save(fig, out_dir, f"learning_curves_{run['name']}")


_ATTENTION = (
  ("attn_name_to_name", "last name token -> name tokens"),
  ("attn_value_to_name", "first value token -> name tokens"),
  ("attn_value_to_text", "first value token -> template text"),
  ("attn_sharpness", "sharpness (entropy / ln n)"),
)


def attention(run: dict, out_dir: pathlib.Path) -> pathlib.Path | None:
  """Each attention statistic over training, one line per layer, plateau end marked."""
  panels = [(k, t, *R.layer_series(run["records"], k)) for k, t in _ATTENTION]
  panels = [p for p in panels if p[3].size]
  if not panels:
    return None
  _, plateau = R.phase_ends(run)
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), squeeze=False)
  for ax, (_, title, steps, values_TxL) in zip(axes[0], panels):
    colors = D.palette(values_TxL.shape[1], "plasma")
    for layer in range(values_TxL.shape[1]):
      ax.plot(steps, values_TxL[:, layer], color=colors[layer], label=f"layer {layer + 1}")
    if plateau is not None:
      ax.axvline(plateau, color="k", ls=":", lw=1, label="plateau end")
    ax.set(xlabel="training step", title=title)
  axes[0][0].legend(fontsize=7)
  fig.suptitle(f"{run['name']}: attention statistics", fontsize=10)
  return D.save(fig, out_dir, f"attention_{run['name']}")


def hallucination(run: dict, out_dir: pathlib.Path) -> pathlib.Path | None:
  """Seen against held-out individuals: loss, max-probability, entropy, detection AUROC."""
  records = run["records"]
  panels = [
    ("attribute_loss", "unseen_attribute_loss", "attribute loss (nats)"),
    ("seen_max_prob", "unseen_max_prob", "max probability of a value token"),
    ("seen_entropy", "unseen_entropy", "predictive entropy (nats)"),
  ]
  panels = [p for p in panels if len(R.series(records, p[1])[0])]
  auroc = R.series(records, "hallucination_auroc")
  if not panels and not len(auroc[0]):
    return None
  n = len(panels) + bool(len(auroc[0]))
  fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5), squeeze=False)
  _, plateau = R.phase_ends(run)
  for ax, (seen, unseen, title) in zip(axes[0], panels):
    ax.plot(*R.series(records, seen), color="C0", label="seen individuals")
    ax.plot(*R.series(records, unseen), color="C3", label="held-out individuals")
    if seen == "attribute_loss":
      D.mark_baseline(ax, R.baseline(run))
    ax.set(xlabel="training step", title=title)
  if len(auroc[0]):
    ax = axes[0][-1]
    ax.plot(*auroc, color="C4")
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set(
      xlabel="training step", ylim=(0, 1), title="detection AUROC (seen vs held-out, max-prob.)"
    )
  for ax in axes[0]:
    if plateau is not None:
      ax.axvline(plateau, color="k", ls=":", lw=1, label="plateau end")
    ax.legend(fontsize=7)
  fig.suptitle(f"{run['name']}: hallucinations", fontsize=10)
  return D.save(fig, out_dir, f"hallucination_{run['name']}")


def group_names(records: list[dict], metric: str = "attribute_loss") -> list[str]:
  """Evaluation groups present, in natural order: 'group0', 'group1', ..., 'celebrities'."""
  names = {
    k[: -len(metric) - 1]
    for r in records
    for k in r
    if k.endswith("/" + metric) and not k.startswith(metric)
  }
  return sorted(names, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])


def _shade_sequential(ax, run: dict, colors: dict) -> None:
  """Shades the steps during which each sequential group is the one trained on."""
  n_groups, n_repeats = R.param(run, "n_groups"), R.param(run, "n_repeats")
  n_steps = R.param(run, "n_steps")
  if not all(isinstance(v, int) and v > 0 for v in (n_groups, n_repeats, n_steps)):
    return
  length = n_steps / (n_groups * n_repeats)
  for phase in range(n_groups * n_repeats):
    color = colors.get(f"group{phase % n_groups}")
    if color is not None:
      ax.axvspan(phase * length, (phase + 1) * length, color=color, alpha=0.08, lw=0)


def groups(run: dict, out_dir: pathlib.Path) -> pathlib.Path | None:
  """Attribute loss and accuracy per evaluation group, next to the whole population's."""
  records = run["records"]
  names = group_names(records)
  if not names:
    return None
  colors = dict(
    zip(names, [f"C{i}" for i in range(len(names))] if len(names) <= 10 else D.palette(len(names)))
  )
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, metric in zip(axes, ("attribute_loss", "attribute_accuracy")):
    ax.plot(*R.series(records, metric), color="k", lw=1.5, label="all seen individuals")
    for name in names:
      ax.plot(*R.series(records, f"{name}/{metric}"), color=colors[name], label=name)
    _shade_sequential(ax, run, colors)
    ax.set(xlabel="training step", ylabel=metric.replace("_", " "))
  D.mark_baseline(axes[0], R.baseline(run))
  D.log_y(axes[0])
  axes[1].set_ylim(0, 1)
  axes[0].legend(fontsize=7, ncol=2 if len(names) > 8 else 1)
  fig.suptitle(f"{run['name']}: per group", fontsize=10)
  return D.save(fig, out_dir, f"groups_{run['name']}")


def tuned(members: list[dict]) -> list[dict]:
  """A family's runs at the best lr of their setting, unless the lr is all the family varies
  (a learning-rate ablation keeps every lr)."""
  return R.best_lr(members) if len({R.setting(r) for r in members}) > 1 else members


def _by_keys(runs: list[dict], keys: list[str]) -> list[dict]:
  """Runs in the order of the config values that label them."""
  return sorted(runs, key=lambda r: [R.order(r["config"].get(k)) for k in keys])


def compare(family_name: str, members: list[dict], out_dir: pathlib.Path):
  """Attribute loss and accuracy of a family of runs overlaid, labelled by what varies. Where
  the family varies more than the learning rate, each setting keeps its best lr and one seed."""
  members = tuned(members)
  if len({R.setting(r) for r in members}) > 1:
    members = [
      min(g, key=lambda r: str(R.param(r, "seed"))) for g in R.group_by(members, R.setting).values()
    ]
  if not 2 <= len(members) <= _MAX_OVERLAID:
    return None
  keys = R.varying(members) or (
    ["optimizer.lr"] if len({R.learning_rate(r) for r in members}) > 1 else []
  )
  members = _by_keys(members, keys)
  colors = D.palette(len(members))
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  for run, color in zip(members, colors):
    label = R.describe(run, keys)
    axes[0].plot(*R.series(run["records"], "attribute_loss"), color=color, label=label)
    axes[1].plot(*R.series(run["records"], "attribute_accuracy"), color=color, label=label)
  D.mark_baseline(axes[0], R.baseline(members[0]))
  D.log_y(axes[0])
  axes[0].set(xlabel="training step", ylabel="attribute loss (nats)")
  axes[1].set(xlabel="training step", ylabel="attribute accuracy", ylim=(0, 1))
  axes[1].legend(fontsize=6, ncol=2 if len(members) > 10 else 1)
  fig.suptitle(f"{family_name}: {', '.join(keys) or 'runs'}", fontsize=10)
  return D.save(fig, out_dir, f"compare_{family_name}")


def template_diversity(pre: list[dict], out_dir: pathlib.Path):
  """Final attribute loss and accuracy on evaluation and on training templates against the
  number of training templates, for shuffled and fixed sentence order (Figure A). A gap
  between the two kinds of template is memorised text rather than knowledge."""
  runs = [r for r in pre if R.is_number(R.param(r, "n_templates_train"))]
  if len({R.param(r, "n_templates_train") for r in runs}) < 2:
    return None, []
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  lines = []
  for shuffled, color in ((True, "C0"), (False, "C1")):
    members = sorted(
      (r for r in runs if bool(R.param(r, "shuffle_sentences")) == shuffled),
      key=lambda r: R.param(r, "n_templates_train"),
    )
    if not members:
      continue
    n_V = [R.param(r, "n_templates_train") for r in members]
    order = "shuffled" if shuffled else "fixed"
    for ax, metric in zip(axes, ("attribute_loss", "attribute_accuracy")):
      for prefix, style, where in (
        ("", "-o", "evaluation"),
        ("train_templates_", ":s", "training"),
      ):
        ax.plot(
          n_V,
          [R.final(r, prefix + metric) for r in members],
          style,
          color=color,
          label=f"{order} order, {where} templates",
        )
    lines += [
      f"templates: {n} training templates, {order} order: attribute loss "
      f"{R.final(r, 'attribute_loss'):.4g} on evaluation templates, "
      f"{R.final(r, 'train_templates_attribute_loss'):.4g} on training templates"
      for n, r in zip(n_V, members)
    ]
  D.mark_baseline(axes[0], R.baseline(runs[0]))
  axes[0].set(ylabel="final attribute loss (nats)")
  axes[1].set(ylabel="final attribute accuracy", ylim=(0, 1))
  for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({R.param(r, "n_templates_train") for r in runs}))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("training templates per attribute")
  axes[1].legend(fontsize=7)
  fig.suptitle("template diversity and sentence order", fontsize=10)
  return D.save(fig, out_dir, "template_diversity"), lines


def ablations(base: dict, families: dict, out_dir: pathlib.Path) -> pathlib.Path | None:
  """One panel per family of changes to the base run: attribute loss over training, the base
  run in black (Figures B, C: the plateau survives every change)."""
  families = {k: v for k, v in families.items() if 1 <= len(v) <= _MAX_OVERLAID}
  if len(families) < 2:
    return None
  fig, axes = D.panels(len(families), 4.2, 3.4, max_cols=3)
  for ax, members in zip(axes, families.values()):
    keys = R.varying(members + [base]) or ["optimizer.lr"]
    members = _by_keys(members, keys)
    # Batch sizes are compared at equal data seen, so their x axis counts sequences.
    per_step = any(k.endswith("batch_size") for k in keys) and all(
      R.is_number(R.param(r, "batch_size")) for r in members + [base]
    )

    def curve(run, per_step=per_step):
      steps, loss = R.series(run["records"], "attribute_loss")
      return steps * (R.param(run, "batch_size") if per_step else 1), loss

    ax.plot(*curve(base), color="k", lw=1.8, label=f"base: {R.describe(base, keys)}")
    for run, color in zip(members, D.palette(len(members), "plasma")):
      ax.plot(*curve(run), color=color, label=R.describe(run, keys))
    D.mark_baseline(ax, R.baseline(base), label=False)
    D.log_y(ax)
    ax.set(
      xlabel="sequences seen" if per_step else "training step",
      ylabel="attribute loss (nats)",
      title=", ".join(k.rsplit(".", 1)[-1] for k in keys if "n_steps" not in k),
    )
    ax.legend(fontsize=6)
  fig.suptitle("one change at a time to the base run (dashed: no-knowledge baseline)", fontsize=10)
  return D.save(fig, out_dir, "ablations")


def draw(runs: list[dict], out_dir: pathlib.Path):
  """Per-run figures of every pretraining run (at its setting's best lr, see `tuned`), and one
  comparison per family of runs (runs whose names share their first word). A run named 'base'
  (the ablations' unchanged config) joins every family as its point of comparison."""
  pre = [r for r in runs if R.experiment(r) == "pretrain" and r["records"]]
  base = [r for r in pre if r["name"] == "base"]
  families = R.group_by([r for r in pre if r["name"] != "base"], lambda r: R.name_word(r["name"]))
  kept = [r for members in families.values() for r in tuned(members)]
  paths = []
  for run in base + kept:
    paths += [
      learning_curves(run, out_dir),
      attributes.attribute_curves(run, out_dir),
      attention(run, out_dir),
      hallucination(run, out_dir),
      groups(run, out_dir),
    ]
  paths += [compare(name, members + base, out_dir) for name, members in families.items()]
  if base:
    paths.append(ablations(base[0], {k: tuned(v) for k, v in families.items()}, out_dir))
  diversity, lines = template_diversity(kept, out_dir)
  return [p for p in paths + [diversity] if p is not None], lines


def summarise(run: dict) -> str:
  s = (run["records"][-1] if run["records"] else {}) | run["summary"]
  first, plateau = R.phase_ends(run)
  s = s | {"first_phase_end_step": first, "plateau_end_step": plateau}
  keys = (
    "plateau_end_step",
    "first_phase_end_step",
    "attribute_loss",
    "attribute_accuracy",
    "unseen_attribute_loss",
    "no_knowledge_baseline",
    "wall_seconds",
  )
  return f"{run['name']}: " + ", ".join(
    f"{k}={s[k]:.4g}" if isinstance(s.get(k), float) and not math.isnan(s[k]) else f"{k}={s.get(k)}"
    for k in keys
  )
