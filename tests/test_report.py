"""The report on small fabricated run directories of every family: non-empty figures, the
plateau law recovered from synthetic plateau ends, the best-lr rule, partial sweeps."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bioknow import report
from bioknow.analysis import runs as R
from bioknow.figures import attributes, curricula, population, pretrain, toy
from bioknow.figures import runs as D
from bioknow.rundir import RunDir

BASELINE = 4.0


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
  monkeypatch.setattr(D, "DPI", 40)  # the same figures, drawn faster


def _curve(step: int, first: float, plateau: float | None, n_steps: int) -> float:
  """Attribute loss with the three phases: down to the baseline, flat, then falling."""
  if step < first:
    return BASELINE * (1.5 - 0.5 * step / first)
  if plateau is None or step < plateau:
    return BASELINE
  return BASELINE * 0.98 * math.exp(-3.0 * (step - plateau) / n_steps)


def pretrain_records(
  n_steps: int,
  plateau: float | None,
  *,
  full: bool = False,
  groups: tuple[str, ...] = (),
  lr: float = 1e-3,
  final_train: float = 1.0,
  n_evals: int = 9,
) -> list[dict]:
  """Evaluations of a fabricated pretraining run; `full` adds held-out, confidence and
  per-layer attention keys."""
  first = min(n_steps / 8, plateau or n_steps) / 2
  records = []
  for i, step in enumerate(np.linspace(0, n_steps, n_evals).astype(int).tolist()):
    loss = _curve(step, first, plateau, n_steps)
    frac = i / (n_evals - 1)
    r = {
      "step": step,
      "lr": lr * (1 - 0.9 * frac),
      "train_loss": None if step == 0 else final_train + (1 - frac) * 2,
      "attribute_loss": loss,
      "no_knowledge_baseline": BASELINE,
      "attribute_accuracy": max(0.0, 1 - loss / BASELINE),
      "attribute_loss/major": loss,
    }
    if full:
      r |= {
        "unseen_attribute_loss": BASELINE + 2 * (1 - loss / BASELINE),
        "unseen_attribute_accuracy": 0.01,
        "seen_max_prob": 1 - loss / 6,
        "seen_entropy": loss / 2,
        "unseen_max_prob": 0.5 - loss / 20,
        "unseen_entropy": loss,
        "hallucination_auroc": 0.5 + 0.4 * frac,
        "train_templates_attribute_loss": loss / 2,
        "attn_name_to_name": [0.2 + 0.5 * frac, 0.1],
        "attn_value_to_name": [0.1, 0.6 * frac],
        "attn_value_to_text": [0.5, 0.5 - 0.3 * frac],
        "attn_sharpness": [0.9, 0.9 - frac / 2],
      }
    for g, name in enumerate(groups):
      r[f"{name}/attribute_loss"] = loss * (1 + g / 4)
      r[f"{name}/attribute_accuracy"] = max(0.0, 1 - loss * (1 + g / 4) / BASELINE)
    records.append(r)
  return records


def write_run(
  root: pathlib.Path,
  name: str,
  records: list[dict],
  summary: dict | None = None,
  config: dict | None = None,
) -> pathlib.Path:
  """A run directory: metrics.jsonl, summary.json (finished runs) and the config leaves that
  config.json holds (unset fields at their defaults)."""
  run_dir = root / name
  run_dir.mkdir(parents=True)
  (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  if summary is not None:
    (run_dir / "summary.json").write_text(json.dumps(records[-1] | summary))
  write_leaves(run_dir, {"train.seed": 0, "schedule.n_individuals": None} | (config or {}))
  return run_dir


def write_leaves(run_dir: pathlib.Path, leaves: dict) -> None:
  (run_dir / "config.json").write_text(json.dumps({"leaves": leaves}))


def pretrain_run(
  root, name, n, n_steps, plateau, *, lr=1e-3, seed=0, schedule=None, summary=True, **kw
):
  config = {
    "data.n_individuals": n,
    "train.n_steps": n_steps,
    "optimizer.lr": lr,
    "model.preset": "mini",
  } | ({"train.seed": seed, "data.seed": seed} if seed else {})
  config |= schedule or {}
  records = pretrain_records(n_steps, plateau, lr=lr, **kw)
  extra = {"plateau_end_step": plateau, "first_phase_end_step": 10, "experiment": "pretrain"}
  return write_run(root, name, records, extra if summary else None, config)


def pngs(paths) -> dict[str, int]:
  return {pathlib.Path(p).name: pathlib.Path(p).stat().st_size for p in paths}


def run_report(workdir, capsys):
  paths = report.report(workdir)
  out, err = capsys.readouterr()
  assert "skipped" not in err, err
  sizes = pngs(paths)
  assert all(size > 500 for size in sizes.values()), sizes
  assert all(pathlib.Path(p).parent == workdir / "figures" for p in paths)
  return sizes, out


POPULATIONS = (100, 200, 400)


BEST_LR = {100: 1e-3, 200: 1e-3, 400: 3e-3}


def population_sweep(root: pathlib.Path) -> None:
  """At each population's best lr (BEST_LR) the plateau ends at 3 N^0.7 and the final training
  loss is 1; the other lr has plateau ends of 10 N (a fit over them would not give 0.7) and a
  worse loss on average over seeds, though at N=100 its seed 0 alone is better."""
  for n in POPULATIONS:
    for lr in (1e-3, 3e-3):
      for seed in (0, 1) if n == 100 else (0,):
        best = lr == BEST_LR[n]
        train = 1.0 if best else (0.6, 1.6)[seed] if n == 100 else 1.5
        pretrain_run(
          root,
          f"n{n}_seed{seed}_lr{lr:g}",
          n,
          8_000,
          3 * n**0.7 if best else 10.0 * n,
          lr=lr,
          seed=seed,
          final_train=train,
        )


def test_population_plateau_law_and_best_lr(tmp_path):
  population_sweep(tmp_path)
  runs = R.find_runs(tmp_path)
  chosen = {R.population(r): R.learning_rate(r) for r in R.best_lr(runs)}
  assert chosen == BEST_LR
  [law] = population.plateau_law(runs)
  np.testing.assert_allclose(law["k"], 0.7, atol=1e-6)
  np.testing.assert_allclose(law["c"], 3.0, rtol=1e-6)
  assert law["r2"] == pytest.approx(1.0, abs=1e-9)
  assert [m["name"] for m in law["members"]] == [
    "n100_seed0_lr0.001",
    "n100_seed1_lr0.001",
    "n200_seed0_lr0.001",
    "n400_seed0_lr0.003",
  ]
  paths, lines = population.draw(runs, tmp_path / "figures")
  assert pngs(paths)["plateau_vs_population.png"] > 500
  assert (
    "plateau law: plateau_end = 3 * N^0.7000, exponent k = 0.7000 (95% CI 0.700 to "
    "0.700), R^2 = 1.0000"
  ) in lines
  assert lines[0].startswith(
    "plateau end by population (best lr, mean over seeds): 100: 75 "
    "(2 seeds, range 75-75); 200: 122 (1 seeds)"
  )
  assert report.best_lr_lines(runs)[0].startswith(
    "best lr for n_individuals=100: 0.001 (final training loss 1, mean over seeds; others "
    "0.003: 1.1)"
  )


def test_populations_evaluated_on_other_schedules_are_one_sweep(tmp_path):
  """The small grid evaluates up to 400 people every 10 steps and larger ones every 25: the
  law still spans every population (it once split into two sweeps and drew the larger)."""
  for n in (200, 400, 800, 1600, 3200):
    every = {"eval.every": 10 if n <= 400 else 25, "eval.n_sequences": 128}
    pretrain_run(tmp_path, f"n{n}_seed0", n, 8_000, 2 * n**0.9, schedule=every)
  [law] = population.plateau_law(R.find_runs(tmp_path))
  assert list(law["n"]) == [200, 400, 800, 1600, 3200]
  np.testing.assert_allclose(law["k"], 0.9, rtol=1e-6)


def test_plateau_law_interval_by_hand(tmp_path):
  """Three seeds per population with plateau ends 2 N^0.8 times 0.9, 1 and 1.1: the mean, the
  range and the 95% interval of k match a hand computation."""
  factors = (0.9, 1.0, 1.1)
  for n in (250, 1000, 4000):
    for seed, f in enumerate(factors):
      pretrain_run(tmp_path, f"n{n}_seed{seed}", n, 8_000, 2 * n**0.8 * f, seed=seed)
  [law] = population.plateau_law(R.find_runs(tmp_path))
  np.testing.assert_allclose(law["plateau"], [2 * n**0.8 for n in (250, 1000, 4000)])
  np.testing.assert_allclose(law["high"] / law["low"], 1.1 / 0.9)
  assert list(law["seeds"]) == [3, 3, 3] and list(law["ended"]) == [3, 3, 3]
  # By hand: the slope is 0.8 (the factors repeat per population); its standard error is
  # sqrt(SSR / (n - 2) / Sxx) with SSR = 3 sum(log f - mean)^2 over the 9 points.
  log_f = np.log(factors) - np.log(factors).mean()
  log_n = np.log([250, 1000, 4000])
  sxx = 3 * np.sum((log_n - log_n.mean()) ** 2)
  stderr = np.sqrt(3 * np.sum(log_f**2) / 7 / sxx)
  t_975_7 = 2.3646242510102993
  np.testing.assert_allclose(
    [law["k_low"], law["k_high"]], [0.8 - t_975_7 * stderr, 0.8 + t_975_7 * stderr], rtol=1e-9
  )


@pytest.mark.slow
def test_partial_population_sweep(tmp_path, capsys):
  """Unfinished runs (no summary), one with a half-written line, one not started, and a
  population that never left the plateau: the report draws what exists."""
  pretrain_run(tmp_path, "n100_seed0_lr0.001", 100, 8_000, 3 * 100**0.7, full=True)
  pretrain_run(tmp_path, "n200_seed0_lr0.001", 200, 8_000, 3 * 200**0.7, summary=False, n_evals=257)
  run_dir = pretrain_run(tmp_path, "n400_seed0_lr0.001", 400, 8_000, None, summary=False)
  with (run_dir / "metrics.jsonl").open("a") as f:
    f.write('{"step": 9000, "attribute_lo')
  empty = write_run(tmp_path, "n800_seed0_lr0.001", [], None, {"data.n_individuals": 800})
  assert (empty / "metrics.jsonl").read_text() == ""
  sizes, out = run_report(tmp_path, capsys)
  assert "plateau_vs_population.png" in sizes and "learning_curves_n200_seed0_lr0.001.png" in sizes
  assert {
    "attention_n100_seed0_lr0.001.png",
    "hallucination_n100_seed0_lr0.001.png",
    "compare_n.png",
  } <= set(sizes)
  assert "400: not reached" in out and "exponent k" in out
  [law] = population.plateau_law(R.find_runs(tmp_path))
  assert list(law["n"]) == [100, 200, 400]


def test_curricula(tmp_path):
  for n in (1600, 3200):
    for alpha, plateau, final in ((0.0, 2000, 1.2), (0.4, 1200, 0.9), (0.8, 800, 1.0)):
      pretrain_run(
        tmp_path,
        f"powerlaw_n{n}_steps3000_alpha{alpha:g}",
        n,
        3_000,
        plateau * n / 1600,
        schedule={"schedule.alpha": alpha},
        final_train=final,
        n_evals=5,
      )
  for n_celebrities in (100, 400):
    pretrain_run(
      tmp_path,
      f"celebrities_n{n_celebrities}_w4",
      1600,
      3_000,
      900,
      schedule={"schedule.n_celebrities": n_celebrities, "schedule.weight_celebrities": 4},
      groups=("celebrities", "non_celebrities"),
    )
  for epochs in (4, 16):
    pretrain_run(
      tmp_path,
      f"warmup_n1600_indiv100_epochs{epochs}",
      1600,
      3_000,
      600,
      schedule={"schedule.indiv_warmup": 100, "schedule.epochs_warmup": epochs},
      groups=("warmup",),
    )
  pretrain_run(tmp_path, "uniform_n1600", 1600, 3_000, 2100)
  pretrain_run(
    tmp_path,
    "growth_n1600_start100_linear",
    1600,
    3_000,
    700,
    schedule={"schedule.n_start": 100, "schedule.mode": "linear"},
  )
  runs = R.find_runs(tmp_path)
  assert {R.schedule_kind(r) for r in runs} == {
    "powerlaw",
    "celebrities",
    "warmup",
    "uniform",
    "growth",
  }
  regimes, alphas, grid = curricula.alpha_grid(runs)
  assert regimes == [(1600, 3000), (3200, 3000)] and alphas == [0.0, 0.4, 0.8]
  np.testing.assert_allclose(grid["plateau"], [[2000, 1200, 800], [4000, 2400, 1600]])
  assert set(curricula.strategy_table(runs)[(1600, 3000)]) == {
    "uniform",
    "powerlaw",
    "celebrities",
    "warmup",
    "growth",
  }
  paths, lines = curricula.draw(runs, tmp_path / "figures")  # per-run figures: other tests
  sizes = pngs(paths)
  assert set(sizes) == {
    "alpha_heatmaps.png",
    "best_alpha.png",
    "strategies.png",
    "strategies_curves.png",
    "warmup_grid.png",
    "celebrities_grid.png",
  }
  assert all(size > 500 for size in sizes.values()), sizes
  assert "best alpha at N=1.6k, 3k steps: final loss 0.8, plateau 0.8" in lines
  celebrity = next(r for r in runs if r["name"] == "celebrities_n100_w4")
  assert pretrain.groups(celebrity, tmp_path / "figures").stat().st_size > 500


def test_sequential_groups(tmp_path, capsys):
  groups = tuple(f"group{g}" for g in range(4))
  pretrain_run(
    tmp_path,
    "sequential_groups4_repeats1",
    400,
    4_000,
    1500,
    groups=groups,
    schedule={"schedule.n_groups": 4, "schedule.n_repeats": 1},
  )
  [run] = R.find_runs(tmp_path)
  assert R.schedule_kind(run) == "sequential"
  sizes, _ = run_report(tmp_path, capsys)
  assert "groups_sequential_groups4_repeats1.png" in sizes


def test_patching(tmp_path, capsys):
  pretrain_run(tmp_path, "reference", 400, 4_000, 2000)
  for start in (0, 2000):
    for ref_step in (0, 500, 2000):
      plateau = 2000 if ref_step < 2000 else 400
      run_dir = pretrain_run(
        tmp_path, f"patch_start{start}_ref{ref_step}", 400, 4_000, plateau, summary=False
      )
      summary = {
        "experiment": "patching",
        "reference_run": "reference",
        "reference_step": ref_step,
        "start_patching": start,
        "plateau_end_step": plateau,
      }
      if (start, ref_step) != (2000, 2000):  # one unfinished: known from its config alone
        (run_dir / "summary.json").write_text(json.dumps(summary))
      else:
        leaves = R.load_run(run_dir)["config"]
        patching = {"reference_run": "reference", "reference_step": ref_step}
        write_leaves(run_dir, leaves | patching | {"start_patching": start})
  kinds = {r["name"]: R.experiment(r) for r in R.find_runs(tmp_path)}
  assert kinds["patch_start2000_ref2000"] == "patching" and kinds["reference"] == "pretrain"
  sizes, out = run_report(tmp_path, capsys)
  assert {"patching_curves.png", "patching_final.png", "learning_curves_reference.png"} <= set(
    sizes
  )
  assert "learning_curves_patch_start0_ref0.png" not in sizes
  assert "patching from step 2000, final attribute loss by reference step: 0:" in out
  assert (
    "attention frozen at the reference step, final attribute loss by reference step: "
    "2000: 0." in out
  )
  assert "patching reference reference:" in out


def finetune_records(
  n_steps: int, *, celebrities: bool = False, attention: bool = False
) -> list[dict]:
  prefixes = ("celebrities", "non_celebrities") if celebrities else ("pretrain", "finetune")
  records = []
  for step in range(0, n_steps + 1, n_steps // 8):
    f = step / n_steps
    old = 0.5 + 3.5 * math.sqrt(f) if not celebrities else 0.2 + 0.1 * f
    new = BASELINE + 2 - 5 * f
    records.append(
      {
        "step": step,
        "lr": 3e-5,
        "train_loss": new,
        "attribute_loss": old,
        "no_knowledge_baseline": BASELINE,
        f"{prefixes[0]}/attribute_loss": old,
        f"{prefixes[1]}/attribute_loss": new,
        f"{prefixes[0]}/attribute_accuracy": 1 - old / 6,
        f"{prefixes[1]}/attribute_accuracy": max(0, 1 - new / 6),
      }
      | ({"attn_value_to_name": [0.1, 0.5 - f / 4]} if attention else {})
    )
  return records


def test_finetune(tmp_path, capsys):
  pretrain_run(tmp_path, "source", 400, 4_000, 2000)
  points = [(100, 0), (400, 0), (400, 1), (400, 0.25)]
  for n_finetune, weight in points:
    write_run(
      tmp_path,
      f"finetune_n{n_finetune}_replay{weight:g}",
      finetune_records(800, attention=(n_finetune, weight) == (400, 0)),
      {
        "experiment": "finetune",
        "source_run": "source",
        "n_finetune": n_finetune,
        "weight_replay": weight,
      },
      {"optimizer.lr": 3e-5},
    )
  write_run(
    tmp_path,
    "finetune_celebrities",
    finetune_records(800, celebrities=True),
    {"experiment": "finetune", "source_run": "source", "n_finetune": 1500, "weight_replay": 0},
  )
  sizes, out = run_report(tmp_path, capsys)
  assert {"finetune_frame.png", "finetune_steps.png", "attention_finetune_n400_replay0.png"} <= set(
    sizes
  )
  assert "finetune_n100_replay0: loss on old individuals 0.500 -> 4.000" in out


def toy_records(n_pre: int, n_ft: int, clock: str) -> list[dict]:
  """clock 'own': fine-tuning lines carry finetune_step, the first at the last pre-training
  step (as the toy experiment writes them); 'continue': steps go on from pre-training;
  'restart': steps start again at 0."""
  records = []
  for step in range(0, n_pre + 1, n_pre // 4):
    records.append(
      {
        "step": step,
        "phase": "pretrain",
        "train_loss": 3.4 - 3 * step / n_pre,
        "pretrain/loss": 3.4 - 3 * step / n_pre,
        "pretrain/accuracy": step / n_pre,
      }
    )
  for step in range(0 if clock == "own" else n_ft // 4, n_ft + 1, n_ft // 4):
    f = step / n_ft
    records.append(
      {
        "step": step if clock == "restart" else n_pre + step,
        "phase": "finetune",
        "train_loss": 4 - 3 * f,
        "pretrain/loss": 0.4 + 3 * f,
        "pretrain/accuracy": 1 - f / 2,
        "finetune/loss": 5 - 4 * f,
        "finetune/accuracy": f,
      }
      | ({"finetune_step": step} if clock == "own" else {})
    )
  return records


def test_toy_finetune_phase():
  for clock in ("own", "continue", "restart"):
    phase = toy.finetune_phase(toy_records(800, 400, clock))
    assert [r["step"] for r in phase] == [0, 100, 200, 300, 400], clock
    assert phase[0]["pretrain/loss"] == pytest.approx(0.4), clock


@pytest.mark.slow
def test_toy_memory_and_command_line(tmp_path):
  clocks = ("own", "continue", "restart", "own")
  for clock, (n_new, weight) in zip(clocks, [(32, 0), (128, 0), (128, 0.5), (128, 0.125)]):
    write_run(
      tmp_path,
      f"toy_n{n_new}_replay{weight:g}",
      toy_records(800, 400, clock),
      {"experiment": "toy_memory", "n_new": n_new, "weight_replay": weight},
      {"n_values": 30},
    )
  result = subprocess.run(
    [sys.executable, "-m", "bioknow.report", f"--workdir={tmp_path}"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr
  printed = result.stdout.splitlines()
  for name in ("toy_memory_frame.png", "toy_memory_steps.png"):
    assert str(tmp_path / "figures" / name) in printed
    assert (tmp_path / "figures" / name).stat().st_size > 500
  assert "toy toy_n32_replay0: loss on old pairs 0.400 -> 3.400" in result.stdout


def test_ablations_share_the_base_run(tmp_path, capsys):
  """The ablations run their unchanged config once, as 'base'; every family's comparison
  overlays it, labelled by what the family varies."""
  pretrain_run(tmp_path, "base", 300, 1_400, 175, full=True)
  pretrain_run(tmp_path, "lr_0.002", 300, 1_400, 400, lr=2e-3)
  pretrain_run(tmp_path, "mixer_hawk", 300, 1_400, 250, schedule={"model.mixer": "hawk"})
  sizes, _ = run_report(tmp_path, capsys)
  assert {
    "compare_lr.png",
    "compare_mixer.png",
    "learning_curves_base.png",
    "learning_curves_mixer_hawk.png",
    "ablations.png",
  } <= set(sizes)
  runs = R.find_runs(tmp_path)
  [base] = [r for r in runs if r["name"] == "base"]
  [hawk] = [r for r in runs if r["name"] == "mixer_hawk"]
  assert R.varying([base, hawk]) == ["model.mixer"]


@pytest.mark.slow
def test_template_diversity(tmp_path, capsys):
  """Runs that vary the number of training templates and the sentence order get Figure A and
  one line each with their final loss on both kinds of template."""
  for n in (1, 4):
    for shuffle in (True, False):
      plateau = None if (n, shuffle) == (1, False) else 300  # memorises, never leaves it
      pretrain_run(
        tmp_path,
        f"templates{n}_{'shuffled' if shuffle else 'fixed'}",
        300,
        1_400,
        plateau,
        full=True,
        schedule={"data.n_templates_train": n, "data.shuffle_sentences": shuffle},
      )
  sizes, out = run_report(tmp_path, capsys)
  assert {"template_diversity.png", "compare_templates.png"} <= set(sizes)
  assert (
    "templates: 1 training templates, fixed order: attribute loss 4 on evaluation "
    "templates, 2 on training templates"
  ) in out
  assert out.count("templates: ") == 4


def test_per_attribute_phases_figure_and_lines(tmp_path):
  """Two attribute types against their own baselines: birth dates (baseline 2) leave their
  plateau at step 400, majors (baseline 4) stay on it; the lines give each type's ends and
  its loss / baseline range over the run's plateau (steps 100-400)."""
  steps = [0, 100, 200, 300, 400, 500, 600]
  date = [6.0, 2.06, 2.02, 2.0, 1.9, 1.5, 1.0]
  major = [9.0, 4.12, 4.08, 4.04, 4.0, 4.0, 4.0]
  records = [
    {
      "step": s,
      "attribute_loss": (d + m) / 2,
      "no_knowledge_baseline": 3.0,
      "attribute_loss/birth_date": d,
      "no_knowledge_baseline/birth_date": 2.0,
      "attribute_loss/major": m,
      "no_knowledge_baseline/major": 4.0,
    }
    for s, d, m in zip(steps, date, major)
  ]
  write_run(tmp_path, "quickstart", records)
  [run] = R.find_runs(tmp_path)
  assert attributes.attribute_lines(run) == [
    "  birth_date: baseline 2, first phase ends 100, plateau ends 400, loss/baseline "
    "1.000-1.030 over steps 100-400, final loss 1",
    "  major: baseline 4, first phase ends 100, plateau ends None, loss/baseline 1.010-1.030 "
    "over steps 100-400, final loss 4",
  ]
  path = attributes.attribute_curves(run, tmp_path / "figures")
  assert path.name == "attribute_curves_quickstart.png" and path.stat().st_size > 500


def test_the_report_marks_unfinished_and_damaged_runs(tmp_path):
  for name in ("whole", "damaged", "running"):
    run = RunDir(tmp_path / name)
    run.write_records([{"step": s, "attribute_loss": 1.0} for s in (0, 50, 100)])
    if name != "running":
      run.write_summary({"step": 100})
  RunDir(tmp_path / "damaged").write_records([{"step": 0, "attribute_loss": 1.0}])
  lines = report.state_lines(report.find_runs(tmp_path))
  assert lines == [
    "damaged: DAMAGED ("
    f"{tmp_path / 'damaged' / 'metrics.jsonl'} ends at step 0, but summary.json says the run "
    "ended at step 100); delete its summary.json and run it again",
    "running: UNFINISHED, drawn up to step 100",
  ]
