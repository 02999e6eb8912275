"""The claims command's quick check (--quick), its evidence folders (--evidence) and the README's
scorecard kept equal to the score-only output of its evidence (bioknow/claims/evidence.py)."""

import json
import pathlib
import re
import shutil

import pytest

from bioknow import launch_checks
from bioknow.claims import __main__ as claims_main
from bioknow.claims import catalog, evidence, ladder
from bioknow.rundir import RunDir, config_leaves
from bioknow.train.phases import phase_ends

REPO = pathlib.Path(__file__).resolve().parents[1]
SWEEPS = REPO / "sweeps"
BASELINE = 2.0
# What --quick runs of each claim (catalog.Claim.quick), at seed 0 and the base lr.
QUICK_POINTS = {
  "three_phases": ["phases_n800"],
  "plateau_law": [f"n{n}_seed0_lr0.008" for n in (200, 400, 800)],
  "patching": ["reference", "patch_start0_ref1250"],
  "alpha": ["powerlaw_n1200_steps1500_alpha0", "powerlaw_n1200_steps1500_alpha0.75"],
  "warmup": [
    "powerlaw_n1200_steps1500_alpha0",
    "powerlaw_n1200_steps1500_alpha0.75",
    "celebrities_n120_w8",
    "warmup_n1200_indiv300_epochs40",
  ],
  "hallucination": ["phases_n800"],
  "toy_memory": [f"new{n}_noreplay" for n in (16, 32, 64, 256)]
  + [f"new32_replay1_{w}" for w in (2, 32, 512)],
  "finetune": ["pretrain", "new100", "new800", "new100_replay2"],
  "templates": ["templates1_shuffled", "templates16_shuffled"],
}
# Tiny toy memories: the quick toy_memory claim trains for real in a few seconds.
TINY_TOY = [
  f"--config=set:{field}"
  for field in (
    "n_pairs=512",
    "d_hidden=32",
    "pretrain_steps=300",
    "finetune_steps=60",
    "pretrain_eval_every=100",
    "finetune_eval_every=20",
  )
]


@pytest.fixture(autouse=True)
def _in_the_checkout(monkeypatch):
  """The command runs from a bioknow checkout's root, where --sweeps=sweeps finds the sweeps."""
  monkeypatch.chdir(REPO)


def _main(*argv: str) -> int:
  claims_main.FLAGS.unparse_flags()
  return claims_main.main(["claims", *argv])


def _points(claim: str, workdir: pathlib.Path, quick: bool = True) -> list:
  planned, _ = claims_main.plan(
    [catalog.BY_NAME[claim]], "small", 3, [], workdir, SWEEPS, quick=quick
  )
  return planned[0][2]


def _finished_run(path: pathlib.Path, point, seed: int, train_loss: float, diverged=False) -> None:
  """A pretraining run directory as the library leaves it: the point's config, its metrics and
  summary (or a diverged run's traceback), and the files an evidence folder leaves out."""
  losses = [3 * BASELINE, 3 * BASELINE] + [BASELINE] * 4 + [(0.3 + 0.01 * seed) * BASELINE] * 3
  records = [
    {
      "step": 50 * i,
      "attribute_loss": x,
      "no_knowledge_baseline": BASELINE,
      "train_loss": train_loss,
      "unseen_attribute_loss": 1.5 * BASELINE if i > 5 else BASELINE,
      "train_templates_attribute_loss": 0.2 * x,
    }
    for i, x in enumerate(losses)
  ]
  run = RunDir(path)
  run.write_config(point.cfg)
  run.write_records(records)
  (path / "checkpoints" / "400").mkdir(parents=True)
  (path / "checkpoints" / "400" / "params").write_bytes(b"\0" * 50_000)
  (path / "per_individual.zarr").mkdir()
  (path / "per_individual.zarr" / "zarr.json").write_text("{}")
  if diverged:
    run.write_error(
      f'Traceback (most recent call last):\n  File "{path}/x.py", line 1\n'
      "bioknow.train.loop.TrainingDiverged: non-finite loss at step 40\n"
    )
    return
  summary = records[-1] | phase_ends(records) | {"experiment": "pretrain", "wall_seconds": 61.0}
  run.write_summary(summary | {"step": 400, "seed": seed})


def _phases_runs(workdir: pathlib.Path) -> list:
  """three_phases' runs: seed 0 at x1, x2 (the best) and x4 (diverged: it brackets the pick),
  seeds 1 and 2 at x2. 4 of its 5 planned runs finished."""
  points = _points("three_phases", workdir, quick=False)
  kept = []
  for p in points:
    factor, seed = ladder.lr_factor_of_point(p.name), ladder.seed_of_point(p.name)
    if factor in catalog.LR_START and (seed == 0 or factor == 2):
      train_loss = 1.0 if factor == 2 else 1.5
      _finished_run(workdir / "phases" / p.name, p, seed, train_loss, diverged=factor == 4)
      kept.append(p)
  return kept


def _score_only(capsys, workdir, out, *argv: str) -> str:
  """The table that --score_only prints for workdir (between the markers)."""
  assert _main("--score_only", f"--workdir={workdir}", f"--out={out}", *argv) == 0
  return evidence.between_markers(capsys.readouterr().out)


def test_help_states_the_verdicts_the_phase_end_rule_and_the_new_flags(capsys):
  assert _main("--help") == 0
  out = " ".join(capsys.readouterr().out.split())
  for verdict in ("holds;", "weak (", "not shown (", "contradicted (", "not run ("):
    assert verdict in out
  assert "the clause of the rule that decided it (rules.Score.why)" in out
  assert "A crossing counts only when CONFIRM = 2 consecutive evaluations" in out
  assert "interpolated between the evaluations" in out and "carries a resolution" in out
  for flag in ("--[no]quick:", "--out:", "--evidence:", "--score_only --workdir=DIR"):
    assert flag in out


def test_quick_plans_one_seed_at_the_base_lr_in_each_claims_cheapest_regime(tmp_path):
  planned, unfit = claims_main.plan(catalog.CLAIMS, "small", 1, [], tmp_path, SWEEPS, quick=True)
  assert not unfit
  assert {c.name: [p.name for p in points] for c, _, points in planned} == QUICK_POINTS
  for claim, sweep_dir, points in planned:
    assert claim.lr_factors == () and sweep_dir == tmp_path / claim.sweep_name
    assert ladder.planned_runs(points, claim, sweep_dir) == len(points)
  # The sweeps' own points, configs and all: the full scorecard and the launcher share them.
  for claim, _, points in planned:
    swept = dict(
      launch_checks.swept_points(launch_checks.load_sweep(str(claim.sweep_path(SWEEPS))), "small")
    )
    for p in points:
      assert config_leaves(p.cfg) == config_leaves(swept[p.name])


def test_quick_dry_run_prints_the_total_and_its_estimate(tmp_path, capsys):
  assert _main("--dry_run", "--quick", f"--workdir={tmp_path}") == 0
  out = capsys.readouterr().out
  assert "warmup: 4 runs of curricula.py" in out and "lr x" not in out
  assert "\n  patch_start0_ref1250  lr 0.008\n" in out and "_seed1" not in out
  total = re.search(
    r"total: (\d+) distinct runs, ([\d,]+) training steps of language models; about (\d+) min "
    r"one at a time on 2 cores, (\d+) min with --executor=ray",
    out,
  )
  assert total, out
  runs, steps = int(total[1]), int(total[2].replace(",", ""))
  inline, ray = int(total[3]), int(total[4])
  assert runs == len({n for names in QUICK_POINTS.values() for n in names})  # phases once
  # The budget: 30 minutes on 2 cores, by the estimate fitted to the slowest machine measured.
  assert 15_000 < steps < 20_000 and ray < inline and ray <= 30
  assert list(tmp_path.iterdir()) == []


def test_quick_over_three_seeds_runs_the_same_points_and_says_so(tmp_path, capsys):
  """--quick --seeds=3: the quick points and their _seed1, _seed2 copies; the table is headed
  with its seeds and goes to claims/quick_seeds3."""
  assert _main("--dry_run", "--quick", "--seeds=3", f"--workdir={tmp_path}") == 0
  out = capsys.readouterr().out
  assert "\n  patch_start0_ref1250_seed2  lr 0.008\n" in out and "lr x" not in out
  assert "\n  n800_seed2_lr0.008  lr 0.008\n" in out  # a sweep with its own seeds keeps them
  rows = [{"claim": "toy_memory", "quick": True, "seeds": 3, "compute_seconds": 0}]
  header = evidence.table(
    [r | {"statement": "", "paper": "", "measured": "", "verdict": "v"} for r in rows]
  )
  assert header.startswith("Quick check (`python -m bioknow.claims --quick --seeds=3`): 3 seeds,")
  assert (
    _main("--quick", "--seeds=3", "--score_only", "--only=toy_memory", f"--workdir={tmp_path}") == 0
  )
  assert (tmp_path / "claims" / "quick_seeds3" / "claims.json").is_file()


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--quick", "--scale=paper"], "--quick: picks points of the small grids"),
    (["--dry_run", "--evidence=ev"], "--evidence copies scored runs; --dry_run scores none"),
    (["--workdir=runs", "--evidence=runs/ev"], "--evidence: "),
  ],
)
def test_quick_and_evidence_refusals_are_one_sentence(tmp_path, monkeypatch, argv, message):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(SystemExit) as e:
    _main(*argv)
  assert message in str(e.value)
  assert list(tmp_path.iterdir()) == []


def test_quick_runs_only_its_points_and_marks_its_table(tmp_path, capsys, monkeypatch):
  """--quick hands the executor each claim's quick points and nothing else (no lr walk, no
  other seeds); its table is headed as quick, flags every verdict and is written apart from
  the full scorecard's claims.json."""
  ran: dict[str, list[str]] = {}

  def run_jobs(jobs, executor, address):
    for sweep_dir, p in jobs:
      ran.setdefault(sweep_dir.name, []).append(p.name)
    return [(p.name, "done", {}) for _, p in jobs]

  monkeypatch.setattr(claims_main.executors, "run_jobs", run_jobs)
  assert _main("--quick", f"--workdir={tmp_path}") == 0
  out = capsys.readouterr().out
  by_sweep: dict[str, set[str]] = {}
  for claim in catalog.CLAIMS:
    by_sweep.setdefault(claim.sweep_name, set()).update(QUICK_POINTS[claim.name])
  assert {k: sorted(v) for k, v in ran.items()} == {k: sorted(v) for k, v in by_sweep.items()}
  table = evidence.between_markers(out)
  lines = table.splitlines()
  assert lines[0] == evidence.QUICK and lines[2].startswith("| claim |")
  rows = lines[4:]
  assert len(rows) == len(catalog.CLAIMS) and all("** (quick)" in r for r in rows)
  card = json.loads((tmp_path / "claims" / "quick" / "claims.json").read_text())
  assert [r["quick"] for r in card] == [True] * len(catalog.CLAIMS)
  assert {r["verdict"] for r in card} == {"not run"}
  assert not (tmp_path / "claims" / "claims.json").exists()


def test_evidence_rescores_to_the_same_table(tmp_path, capsys):
  """--evidence copies the scored runs' three files (and a diverged run's exception line, so
  the lr pick reads the same), no checkpoint, no per-individual array, no config.txt; the
  copy, scored with --score_only, prints the same table, and its figure draws."""
  runs, dest = tmp_path / "runs", tmp_path / "evidence" / "small"
  points = _phases_runs(runs)
  argv = ["--only=three_phases,hallucination"]
  table = _score_only(capsys, runs, tmp_path / "out", *argv, f"--evidence={dest}")
  assert "**holds** (4 of 5 runs)" in table or "(4 of 5 runs)" in table
  assert str(tmp_path) not in table and "| 4 min |" in table  # no path; compute from summaries
  copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
  files = {f"phases/{p.name}/{f}" for p in points for f in evidence.FILES}
  files -= {"phases/phases_lrx4/summary.json"}
  assert copied == sorted(files | {"phases/phases_lrx4/error.txt"})
  error = (dest / "phases" / "phases_lrx4" / "error.txt").read_text()
  assert error == "bioknow.train.loop.TrainingDiverged: non-finite loss at step 40\n"
  assert evidence.size(dest) < evidence.size(runs) - 5 * 50_000  # no checkpoint
  again = _score_only(capsys, dest, tmp_path / "out2", *argv)
  assert again == table
  assert (tmp_path / "out2" / "figures" / "claim_three_phases.png").stat().st_size > 500
  card = json.loads((tmp_path / "out2" / "claims.json").read_text())
  assert card[0]["runs"] == [p.name for p in points]


def test_evidence_leaves_out_runs_still_training(tmp_path):
  """A run without summary.json (training, or killed) is not copied: its partial metrics are
  no evidence, and scoring counts it as unfinished either way."""
  runs, dest = tmp_path / "runs", tmp_path / "evidence"
  for name, done in (("done", True), ("training", False)):
    run = runs / "phases" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    if done:
      (run / "summary.json").write_text('{"step": 0}')
  copied = evidence.export(sorted((runs / "phases").iterdir()), runs, dest)
  assert copied["runs"] == 1
  assert sorted(p.name for p in (dest / "phases").iterdir()) == ["done"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_quick_trains_exports_and_rescores_the_same_table(tmp_path, capsys):
  """End to end with real training: the quick toy_memory claim (tiny memories) trains its 7
  points, exports them and rescores the export to the same table, marked quick."""
  work, dest = tmp_path / "work", tmp_path / "evidence"
  argv = ["--quick", "--only=toy_memory", *TINY_TOY]
  assert _main(*argv, f"--workdir={work}", f"--evidence={dest}") == 0
  out = capsys.readouterr().out
  assert "evidence: 7 runs" in out
  table = evidence.between_markers(out)
  assert table.startswith(evidence.QUICK) and "** (quick)" in table
  assert evidence.size(dest) < 200_000
  assert _score_only(capsys, dest, tmp_path / "out", *argv) == table


def test_readme_table_reads_the_block_between_the_markers(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(f"# x\n\n{evidence.marked('| a |')}\n\ntext\n{evidence.marked('| b |')}\n")
  assert evidence.readme_table(readme) == "| a |"
  readme.write_text("# x\n| a |\n")
  with pytest.raises(ValueError, match="has no scorecard between the lines <!-- scorecard -->"):
    evidence.readme_table(readme)


def test_readme_scorecard_equals_score_only_of_the_evidence(tmp_path, capsys):
  """The mechanism of the committed check below, on a synthetic evidence folder and README:
  the table pasted into the README equals --score_only on the evidence, and a changed run in
  the evidence makes them differ."""
  runs, dest = tmp_path / "runs", tmp_path / "evidence"
  _phases_runs(runs)
  printed = _score_only(capsys, runs, tmp_path / "o1", "--only=three_phases", f"--evidence={dest}")
  readme = tmp_path / "README.md"
  readme.write_text(f"# bioknow\n\nThe scorecard:\n\n{evidence.marked(printed)}\n\nMore.\n")
  scored = _score_only(capsys, dest, tmp_path / "o2", "--only=three_phases")
  assert scored == evidence.readme_table(readme)
  summary = dest / "phases" / "phases_lrx2_seed1" / "summary.json"
  summary.write_text(summary.read_text().replace('"wall_seconds": 61.0', '"wall_seconds": 961.0'))
  assert _score_only(capsys, dest, tmp_path / "o3", "--only=three_phases") != printed


@pytest.mark.slow
@pytest.mark.parametrize("document, folder, flags", evidence.COMMITTED)
def test_committed_scorecards_match_their_evidence(tmp_path, capsys, document, folder, flags):
  """Each committed scorecard (README.md's, docs/claims.md's) is the score-only output of its
  committed evidence folder."""
  work = tmp_path / "evidence"
  shutil.copytree(REPO / folder, work)  # scoring writes nothing into the repository
  assert _score_only(capsys, work, tmp_path / "out", *flags) == evidence.readme_table(
    REPO / document
  )
