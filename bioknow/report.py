"""Figures drawn from run directories alone.

  python -m bioknow.report --workdir=runs/quickstart

Finds every run (a directory with metrics.jsonl) under --workdir, writes PNGs into
WORKDIR/figures/ and prints their paths and a short summary of each run.
"""

import json
import pathlib

import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt  # noqa: E402
from absl import app, flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory holding one or more run directories.")


def load_run(run_dir: pathlib.Path) -> dict:
  records = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l]
  summary_path = run_dir / "summary.json"
  summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
  return {"name": run_dir.name, "dir": run_dir, "records": records, "summary": summary}


def find_runs(workdir: pathlib.Path) -> list[dict]:
  return [load_run(p.parent) for p in sorted(workdir.rglob("metrics.jsonl"))
          if "figures" not in p.parts]


def learning_curves(run: dict, out_dir: pathlib.Path) -> pathlib.Path:
  """Attribute loss of seen (evaluation templates) and held-out individuals over training,
  with the no-knowledge baseline and the three phases marked."""
  records = run["records"]
  steps = [r["step"] for r in records]
  baseline = records[0]["no_knowledge_baseline"]
  fig, (ax, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  ax.plot(steps, [r["attribute_loss"] for r in records], label="seen individuals", color="C0")
  if "unseen_attribute_loss" in records[0]:
    ax.plot(steps, [r["unseen_attribute_loss"] for r in records], label="held-out individuals",
            color="C3")
  ax.axhline(baseline, color="k", ls="--", lw=1, label=f"no-knowledge baseline ({baseline:.2f})")
  first = next((r["step"] for r in records if r["attribute_loss"] <= 1.05 * baseline), None)
  plateau = next((r["step"] for r in records if r["attribute_loss"] < 0.99 * baseline), None)
  top = max(r["attribute_loss"] for r in records)
  if first is not None:
    ax.axvspan(0, first, color="C1", alpha=0.08)
    ax.axvspan(first, plateau if plateau is not None else steps[-1], color="C2", alpha=0.12)
    ax.text(first / 2, top, "1: value\ndistribution", ha="center", va="top", fontsize=8)
    end = plateau if plateau is not None else steps[-1]
    ax.text((first + end) / 2, top, "2: plateau", ha="center", va="top", fontsize=8)
  if plateau is not None:
    ax.text((plateau + steps[-1]) / 2, top, "3: knowledge", ha="center", va="top", fontsize=8)
  ax.set_yscale("log")
  ax.set_xlabel("training step")
  ax.set_ylabel("attribute loss (nats)")
  ax.set_title(f"{run['name']}: attribute loss")
  ax.legend(fontsize=8, loc="lower left")
  ax_acc.plot(steps, [r["attribute_accuracy"] for r in records], color="C0", label="seen")
  if "unseen_attribute_accuracy" in records[0]:
    ax_acc.plot(steps, [r["unseen_attribute_accuracy"] for r in records], color="C3",
                label="held-out")
  ax_acc.set_xlabel("training step")
  ax_acc.set_ylabel("attribute accuracy")
  ax_acc.set_ylim(0, 1)
  ax_acc.legend(fontsize=8)
  fig.tight_layout()
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / f"learning_curves_{run['name']}.png"
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def summarise(run: dict) -> str:
  s = run["summary"] or run["records"][-1]
  keys = ("plateau_end_step", "first_phase_end_step", "attribute_loss", "attribute_accuracy",
          "unseen_attribute_loss", "no_knowledge_baseline", "wall_seconds")
  return f"{run['name']}: " + ", ".join(
      f"{k}={s[k]:.4g}" if isinstance(s.get(k), float) else f"{k}={s.get(k)}" for k in keys)


def report(workdir: pathlib.Path) -> list[pathlib.Path]:
  runs = find_runs(workdir)
  out_dir = workdir / "figures"
  paths = [learning_curves(run, out_dir) for run in runs if run["records"]]
  for run in runs:
    print(summarise(run))
  return paths


def main(argv):
  del argv
  workdir = pathlib.Path(_WORKDIR.value or "runs")
  if not workdir.is_dir():
    raise SystemExit(f"--workdir: {workdir} is not a directory of runs.")
  for path in report(workdir):
    print(path)


if __name__ == "__main__":
  app.run(main)
