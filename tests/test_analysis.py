"""bioknow.analysis: reading and judging runs starts neither jax nor matplotlib, and the phase
rules have one definition (train.phases) that the loop, the summaries and the readers share."""

import json
import subprocess
import sys

import pytest

from bioknow.analysis import ends as E
from bioknow.analysis import runs as R
from bioknow.train import phases

# Everything that reads runs and judges claims; none of it may start an accelerator or a
# plotting library (the claims' figures and the report's drawing import them on use).
READERS = (
  "bioknow.analysis",
  "bioknow.analysis.ends",
  "bioknow.analysis.runs",
  "bioknow.train.phases",
  "bioknow.claims",
  "bioknow.claims.attributes",
  "bioknow.claims.rules",
  "bioknow.claims.rules_curricula",
  "bioknow.claims.rules_finetune",
  "bioknow.claims.rules_patching",
  "bioknow.claims.rules_templates",
  "bioknow.claims.rules_warmup",
  "bioknow.report",
  "bioknow.validate",
)


@pytest.mark.slow
def test_reading_and_scoring_import_neither_jax_nor_matplotlib():
  code = (
    "import importlib, json, sys\n"
    f"for name in {READERS!r}:\n"
    "  importlib.import_module(name)\n"
    "from bioknow import report\n"
    "assert callable(report.find_runs) and callable(report.best_lr_lines)\n"
    "heavy = ('jax', 'matplotlib', 'optax', 'grain', 'fiddle')\n"
    "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
  )
  loaded = json.loads(out.stdout.strip().splitlines()[-1])
  assert "jax" not in loaded and "matplotlib" not in loaded, loaded
  assert loaded == [], loaded


def test_the_phase_rule_has_one_definition():
  assert (E.FIRST_PHASE_FACTOR, E.PLATEAU_FACTOR, E.CONFIRM) == (
    phases.FIRST_PHASE_FACTOR,
    phases.PLATEAU_FACTOR,
    phases.CONFIRM,
  )
  assert E.confirmed is phases.confirmed


def test_an_unfinished_run_is_read_with_the_phase_rule(tmp_path):
  # loss / baseline: 1.2, 1.0, 1.0, 0.9, 0.8 every 50 steps; no summary yet.
  records = [
    {"step": 50 * i, "attribute_loss": 2.0 * x, "no_knowledge_baseline": 2.0}
    for i, x in enumerate((1.2, 1.0, 1.0, 0.9, 0.8))
  ]
  (tmp_path / "config.json").write_text(json.dumps({"leaves": {"train.n_steps": 200}}))
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  run = R.load_run(tmp_path)
  assert R.phase_ends(run) == (50, 150)
  assert phases.phase_ends(records, finished=False)["plateau_end_step"] == 150
  assert R.plateau_end_bounds(run) == (100.0, 150.0)
  assert R.regime_of(run) == (None, 200) and R.strategy(run) == "uniform"
