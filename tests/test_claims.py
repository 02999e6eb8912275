"""The claims scorecard: every verdict rule on synthetic run directories, and the command's
refusals and dry run."""

import dataclasses
import json
import math
import pathlib
import shutil
import types

import pytest
from test_rules_mechanisms import _curriculum_run, _warmup_grid  # the shared synthetic runs

from bioknow import executors as executors_module
from bioknow.analysis import runs as R
from bioknow.claims import __main__ as claims_main
from bioknow.claims import (
  attributes,
  catalog,
  figures,
  ladder,
  rules,
  stages,
)
from bioknow.rundir import RunDir
from bioknow.train.phases import phase_ends

SWEEPS = pathlib.Path(__file__).resolve().parents[1] / "sweeps"
BASELINE = 2.0
ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "company", "current_city")


@pytest.fixture(autouse=True)
def _in_the_checkout(monkeypatch):
  """The command runs from a bioknow checkout's root, where --sweeps=sweeps finds the sweeps."""
  monkeypatch.chdir(SWEEPS.parent)


def _write_run(path: pathlib.Path, leaves: dict, records: list[dict], summary: dict | None) -> dict:
  """A run directory as the library writes it (config leaves, metrics, summary), loaded back
  the way the scorecard reads it. Without a summary: a run whose training diverged, as the
  executors leave it (its traceback in error.txt)."""
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps({"leaves": leaves}))
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  if summary is None:
    text = "Traceback ...\nbioknow.train.loop.TrainingDiverged: non-finite loss at step 40\n"
    RunDir(path).write_error(text)
  else:
    (path / "summary.json").write_text(json.dumps(summary))
  return R.load_run(path)


def _pretrain_run(path, seed, losses, n=800, extra=None) -> dict:
  """A pretraining run whose attribute loss at steps 0, 50, 100, ... is `losses`."""
  records = [
    {"step": 50 * i, "attribute_loss": x, "no_knowledge_baseline": BASELINE} | (extra or {})
    for i, x in enumerate(losses)
  ]
  summary = records[-1] | phase_ends(records) | {"experiment": "pretrain", "wall_seconds": 60.0}
  leaves = {
    "data.n_individuals": n,
    "data.seed": seed,
    "train.seed": seed,
    "optimizer.lr": 8e-3,
    "schedule.n_individuals": None,
  }
  return _write_run(path, leaves, records, summary)


def _curve(first: int, plateau: int, final: float) -> list[float]:
  """Loss at every 50 steps: above the floor for `first` evaluations, at it for `plateau`,
  then down to `final` x baseline."""
  return [3 * BASELINE] * first + [BASELINE] * plateau + [final * BASELINE] * 3


def test_seeded_repeats_points_with_every_seed_field():
  module = claims_main.launch_checks.load_sweep(str(SWEEPS / "quickstart.py"))
  points = list(catalog.seeded(module.sweep("small"), 3, seeded_sweep=False))
  assert [n for n, _ in points] == ["quickstart", "quickstart_seed1", "quickstart_seed2"]
  assert [(c.data.seed, c.train.seed) for _, c in points] == [(0, 0), (1, 1), (2, 2)]
  toy = claims_main.launch_checks.load_sweep(str(catalog.BY_NAME["toy_memory"].sweep_path(SWEEPS)))
  first = next(iter(toy.sweep("small")))
  assert next(iter(catalog.seeded(iter([first]), 2, False))) == first
  assert list(catalog.seeded(iter([first]), 2, False))[1][1].seed == 1
  # A sweep with its own seeds keeps the first K.
  named = [(f"n{n}_seed{s}", None) for n in (1, 2) for s in range(3)]
  assert [n for n, _ in catalog.seeded(iter(named), 2, True)] == [
    "n1_seed0",
    "n1_seed1",
    "n2_seed0",
    "n2_seed1",
  ]


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--only=growth"], "--only: growth is not a claim; allowed: three_phases"),
    (["--seeds=0"], "--seeds: got 0; it must be an integer >= 1."),
    (["--config=set:optimizer.lr=1e-3"], "--config changes every run: give them a --workdir"),
    (["stray"], "claims: unexpected argument 'stray'"),
  ],
)
def test_bad_arguments_fail_in_one_sentence(tmp_path, monkeypatch, argv, message):
  monkeypatch.chdir(tmp_path)
  claims_main.FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as e:
    claims_main.main(["claims", *argv])
  assert message in str(e.value)
  assert list(tmp_path.iterdir()) == []  # nothing written


def test_missing_sweep_files_fail_before_anything_runs(tmp_path, monkeypatch):
  """Outside a checkout (no sweeps/ in the current directory), the command, --score_only too,
  stops in one sentence naming --sweeps, as it does for a folder that lacks a claim's sweep
  file; nothing is written. A folder holding the sweeps of the claims asked for is enough."""
  monkeypatch.chdir(tmp_path)
  partial = tmp_path / "partial"
  partial.mkdir()
  shutil.copy(SWEEPS / "phases.py", partial)
  before = sorted(tmp_path.rglob("*"))
  holding = "run from a bioknow checkout or pass --sweeps=DIR holding phases.py, population.py"
  for argv, message in [
    ([], f"--sweeps: no sweep files in {(tmp_path / 'sweeps').resolve()}; {holding}"),
    (["--score_only", "--quick"], f"--sweeps: no sweep files in {(tmp_path / 'sweeps').resolve()}"),
    (
      ["--sweeps=nowhere", "--dry_run"],
      f"--sweeps: no sweep files in {tmp_path.resolve()}/nowhere",
    ),
    (
      ["--sweeps=partial", "--only=three_phases,patching"],
      f"--sweeps: {partial.resolve()} has no patching.py; run from a bioknow checkout or pass "
      "--sweeps=DIR holding phases.py, patching.py.",
    ),
  ]:
    claims_main.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as e:
      claims_main.main(["claims", *argv])
    assert message in str(e.value) and "\n" not in str(e.value)
  assert sorted(tmp_path.rglob("*")) == before  # nothing written
  claims_main.FLAGS.unparse_flags()
  argv = ["claims", "--sweeps=partial", "--only=three_phases", "--dry_run"]
  assert claims_main.main(argv) == 0


def test_help_prints_the_usage_and_every_flag(capsys):
  assert claims_main.main(["claims", "--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("python -m bioknow.claims")
  for flag in ("--only", "--seeds", "--config", "--workdir", "--sweeps", "--executor", "--dry_run"):
    assert flag in out


@pytest.mark.slow
def test_dry_run_lists_every_claim(tmp_path, capsys):
  claims_main.FLAGS.unparse_flags()
  assert claims_main.main(["claims", "--dry_run", f"--workdir={tmp_path}"]) == 0
  out = capsys.readouterr().out
  for claim in catalog.CLAIMS:
    assert f"{claim.name}: " in out
  # 3 start lrs at seed 0, then seeds 1 and 2 at the pick; sweeps/phases.py's names.
  staged = "(seed 0 at lr x 1, 2, 4, more where its pick is not bracketed, then one lr of"
  assert f"three_phases: 5 runs {staged} the other seeds)" in out
  assert "\n  phases_lrx2  lr 0.016\n" in out
  assert "\n  phases_seed1  lr 0.008  (if seed 0 picks its lr)\n" in out
  assert "lr x 0.25, 0.5, 1, 2, 4, 8, 16" in out
  # 16 settings: 3 lrs at seed 0, then seeds 1 and 2 at one of them; every copy is listed.
  assert f"warmup: 80 runs {staged} the other seeds)" in out
  seed2 = "\n  powerlaw_n1200_steps1500_alpha0.5_lrx2_seed2  lr 0.016  (if seed 0 picks its lr)\n"
  assert seed2 in out
  assert "\n  templates1_shuffled_lrx0.5  lr 0.004  (if the lr walk reaches it)\n" in out
  assert "\n  templates1_shuffled_lrx4  lr 0.032\n" in out
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_hawk_scorecard_leaves_out_the_claims_it_does_not_fit(tmp_path, capsys):
  """The README's Hawk command (scoring only): attention patching and the toy memory (no
  model.mixer) are "not applicable" under Hawk and say why, the others are planned with Hawk;
  every claim keeps its row, in catalog order. Named in --only, an unfit claim fails; an
  override that fits no claim fails; neither writes anything."""
  hawk = ["--config=set:model.mixer='hawk'", f"--workdir={tmp_path / 'hawk'}"]
  claims_main.FLAGS.unparse_flags()
  assert claims_main.main(["claims", "--score_only", *hawk]) == 0
  out = capsys.readouterr().out
  assert "patching: not applicable: point patch_start0_ref0: model.mixer: got 'hawk'" in out
  assert "toy_memory: not applicable: --config: model.mixer is not a config path" in out
  assert "=== claim three_phases: 5 runs of phases.py planned" in out and "| patching: " in out
  card = json.loads((tmp_path / "hawk" / "claims" / "claims.json").read_text())
  assert [r["claim"] for r in card] == [c.name for c in catalog.CLAIMS]
  verdicts = {r["claim"]: r["verdict"] for r in card}
  assert verdicts["patching"] == verdicts["toy_memory"] == "not applicable"
  assert verdicts["three_phases"] == "not run"
  for argv, message in [
    (["--only=three_phases,patching"], "attention patching needs 'attention'"),
    (["--config=set:model.mixr='hawk'"], "model.mixr is not a config path"),
  ]:
    claims_main.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as e:
      claims_main.main(["claims", *hawk[:1], *argv, f"--workdir={tmp_path / 'bad'}"])
    assert message in str(e.value)
  assert [d.name for d in tmp_path.iterdir()] == ["hawk"]


# Ray starts its local cluster's processes with fork + exec, which JAX warns about.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_claims_command_trains_scores_and_then_reuses(tmp_path, capsys):
  """End to end, with real training: the toy-memory claim at one seed, shrunk by overrides
  (1,024 pairs, a 64-unit memory, 2,000 + 500 steps), trains its 7 points as Ray tasks
  (--executor=ray), scores them from their run directories and draws its figure; a second
  call, inline, trains nothing and scores the same runs to the same row."""
  pytest.importorskip("ray")
  argv = [
    "claims",
    "--only=toy_memory",
    "--seeds=1",
    *(
      f"--config=set:{field}"
      for field in (
        "n_pairs=1024",
        "d_hidden=64",
        "pretrain_steps=2000",
        "finetune_steps=500",
        "pretrain_eval_every=500",
        "finetune_eval_every=50",
      )
    ),
    f"--workdir={tmp_path}",
  ]
  claims_main.FLAGS.unparse_flags()
  assert claims_main.main([*argv, "--executor=ray"]) == 0
  trained = [line for line in capsys.readouterr().out.splitlines() if line.startswith("== ")]
  assert len(trained) == 7 and all(line.endswith("(submitted to Ray)") for line in trained)
  card = json.loads((tmp_path / "claims" / "claims.json").read_text())
  [row] = card
  assert (row["runs_finished"], row["runs_planned"]) == (7, 7)
  assert row["verdict"] in rules.VERDICTS and row["verdict"] != rules.NO_RUNS
  assert set(row["values"]["forgetting_by_n_new"]) == {"16", "32", "64", "256"}
  assert pathlib.Path(row["figure"]).stat().st_size > 500
  summaries = sorted((tmp_path / "toy_memory").glob("*/summary.json"))
  assert len(summaries) == 7
  before = [p.read_text() for p in summaries]
  claims_main.FLAGS.unparse_flags()
  assert claims_main.main(argv) == 0
  out = capsys.readouterr().out
  assert "=== claim toy_memory: 7 runs" in out
  assert not [line for line in out.splitlines() if line.startswith("== ")]  # nothing trained
  assert [p.read_text() for p in summaries] == before
  again = json.loads((tmp_path / "claims" / "claims.json").read_text())
  assert again[0]["values"] == row["values"] and again[0]["verdict"] == row["verdict"]


def test_scorecard_from_finished_runs(tmp_path, capsys):
  """Scoring reuses finished runs: seed 0 at the start lrs (x1, x2, x4) and seeds 1 and 2 at x2,
  already there, are read and scored at the lr with the best training loss (x2, bracketed, so
  the lr walk runs nothing more); nothing trains."""
  sweep_dir = tmp_path / "phases"
  points = claims_main.plan([catalog.BY_NAME["three_phases"]], "small", 3, [], tmp_path, SWEEPS)[0][
    0
  ][2]
  factor = lambda p: ladder.lr_factor_of_point(p.name)
  points = [
    p
    for p in points
    if factor(p) in catalog.LR_START and (ladder.seed_of_point(p.name) == 0 or factor(p) == 2)
  ]
  for p in points:
    seed = ladder.seed_of_point(p.name)
    train_loss = 1.0 if factor(p) == 2 else 1.5  # twice the base lr trains best
    _pretrain_run(sweep_dir / p.name, seed, _curve(2, 8, 0.5), extra={"train_loss": train_loss})
    (sweep_dir / p.name / "config.json").unlink()
    RunDir(sweep_dir / p.name).write_config(p.cfg)  # the point's own config: reused, not refused
  # An earlier scorecard: its toy_memory row stays, its three_phases row is replaced.
  (tmp_path / "claims").mkdir()
  earlier = [{"claim": "toy_memory", "verdict": "holds"}, {"claim": "three_phases", "verdict": "x"}]
  (tmp_path / "claims" / "claims.json").write_text(json.dumps(earlier))
  claims_main.FLAGS.unparse_flags()
  assert claims_main.main(["claims", "--only=three_phases", f"--workdir={tmp_path}"]) == 0
  out = capsys.readouterr().out
  assert "| three_phases: " in out and "**holds**" in out
  card = json.loads((tmp_path / "claims" / "claims.json").read_text())
  assert [r["claim"] for r in card] == ["three_phases", "toy_memory"]  # catalog order
  assert card[1] == earlier[0]
  assert card[0]["verdict"] == "holds" and len(card[0]["runs"]) == 5
  assert card[0]["values"]["lr"] == {"phases": 1.6e-2}
  assert card[0]["rule"].startswith("Claim 1, the phases.")
  assert (tmp_path / "claims" / "figures" / "claim_three_phases.png").stat().st_size > 500
  assert math.isclose(card[0]["compute_seconds"], 300.0)


def test_score_only_reads_part_of_a_grid_and_trains_nothing(tmp_path, capsys):
  """--score_only on 3 of three_phases' 5 planned runs (seed 0 at its 3 start lrs): the row is
  scored from those 3, says so, and no run directory is created for the missing points."""
  sweep_dir = tmp_path / "phases"
  points = claims_main.plan([catalog.BY_NAME["three_phases"]], "small", 3, [], tmp_path, SWEEPS)[0][
    0
  ][2]
  points = [
    p
    for p in points
    if ladder.seed_of_point(p.name) == 0 and ladder.lr_factor_of_point(p.name) in (1, 2, 4)
  ]
  for p in points:
    _pretrain_run(sweep_dir / p.name, 0, _curve(2, 4, 0.5), extra={"train_loss": 1.0})
    (sweep_dir / p.name / "config.json").unlink()
    RunDir(sweep_dir / p.name).write_config(p.cfg)
  claims_main.FLAGS.unparse_flags()
  argv = ["claims", "--only=three_phases", "--score_only", f"--workdir={tmp_path}"]
  assert claims_main.main(argv) == 0
  assert "(3 of 5 runs)" in capsys.readouterr().out
  assert sorted(d.name for d in sweep_dir.iterdir()) == sorted(p.name for p in points)
  card = json.loads((tmp_path / "claims" / "claims.json").read_text())
  assert (card[0]["runs_finished"], card[0]["runs_planned"]) == (3, 5)


def _patching_group(tmp_path, name, seed, final_end, inside_end, initial_end) -> list[dict]:
  """One seed's reference (first phase ends at step 100, plateau at 400; last-layer attention
  to the name 0.1 -> 0.3) and runs patched from step 0 with the patterns of its steps 0, 200
  and 1,250, whose plateaus end at the steps given (None: never, in 1,250 steps)."""
  attn = [{"attn_value_to_name": [0.5, 0.1 if i <= 3 else 0.3]} for i in range(9)]
  ref = _pretrain_run(tmp_path / f"{name}reference_{seed}", seed, _curve(2, 6, 0.5))
  ref["records"] = [r | a for r, a in zip(ref["records"], attn)]
  runs = [ref | {"name": "reference" + (f"_seed{seed}" if seed else "")}]
  for ref_step, end in ((0, initial_end), (200, inside_end), (1250, final_end)):
    if end is None:  # the plateau never ends: at the floor to the last evaluation
      curve = _curve(2, 7, 1.0)
    else:
      curve = _curve(2, end // 50 - 2, 0.5) if end > 100 else _curve(1, 1, 0.5)
    run = _pretrain_run(tmp_path / f"{name}p{ref_step}_{seed}", seed, curve)
    run["summary"]["experiment"] = "patching"
    run["config"] |= {"reference_step": ref_step, "start_patching": 0, "train.n_steps": 1250}
    runs.append(run)
  return runs


def test_seeded_copies_read_their_own_seeds_sources():
  patching = claims_main.launch_checks.load_sweep(
    str(catalog.BY_NAME["patching"].sweep_path(SWEEPS))
  )
  claim = catalog.BY_NAME["patching"]
  points = dict(catalog.seeded(patching.sweep("small"), 2, False, claim.only))
  assert "patch_start200_ref200" not in points  # frozen runs are not part of the claim
  assert points["patch_start0_ref400_seed1"].reference_run == "reference_seed1"
  assert points["patch_start0_ref400"].reference_run == "reference"
  assert points["reference_seed1"].train.seed == 1


def test_a_run_of_another_config_is_refused_before_anything_runs(tmp_path):
  """A phases run stored with another lr stops the scorecard with the launcher's
  sentence; nothing is written."""
  points = claims_main.plan([catalog.BY_NAME["three_phases"]], "small", 1, [], tmp_path, SWEEPS)[0][
    0
  ][2]
  run = _pretrain_run(tmp_path / "phases" / points[0].name, 0, _curve(2, 4, 0.5))
  before = sorted(p for p in tmp_path.rglob("*"))
  with pytest.raises(ValueError, match="holds a run of another config"):
    claims_main.plan([catalog.BY_NAME["three_phases"]], "small", 1, [], tmp_path, SWEEPS)
  assert sorted(p for p in tmp_path.rglob("*")) == before and run["summary"]


# The lr pick ------------------------------------------------------------------------------------


def _lr_run(path, seed, lr, train_loss, diverged=False) -> dict:
  """A pretraining run at `lr` whose final training loss is `train_loss`; a diverged one
  stopped without a summary, as the training loop stops it."""
  records = [{"step": 0, "train_loss": 5.0}, {"step": 100, "train_loss": train_loss}]
  leaves = {"optimizer.lr": lr, "train.seed": seed}
  summary = {"experiment": "pretrain", "train_loss": train_loss}
  return _write_run(path, leaves, records, None if diverged else summary)


def test_best_lr_keeps_the_lowest_mean_final_training_loss(tmp_path):
  runs = [
    _lr_run(tmp_path / "p_lrx0.5", 0, 4e-3, 1.0),
    _lr_run(tmp_path / "p_lrx0.5_seed1", 1, 4e-3, 1.2),  # mean 1.1: kept
    _lr_run(tmp_path / "p", 0, 8e-3, 0.9),
    _lr_run(tmp_path / "p_seed1", 1, 8e-3, 1.4),  # mean 1.15: the best seed is not enough
    _lr_run(tmp_path / "p_lrx2", 0, 1.6e-2, 0.5),
    _lr_run(tmp_path / "p_lrx2_seed1", 1, 1.6e-2, math.nan),  # diverged: its lr loses
    _lr_run(tmp_path / "q", 0, 8e-3, 3.0),  # one lr only: kept as it is
  ]
  assert rules.point_setting(runs[5]) == "p"
  kept, lrs = rules.best_lr(runs)
  assert [r["name"] for r in kept] == ["p_lrx0.5", "p_lrx0.5_seed1", "q"]
  assert lrs == {"p": 4e-3, "q": 8e-3}
  assert rules.best_lr([]) == ([], {})


def test_best_lr_compares_lrs_on_the_seeds_they_share(tmp_path):
  """An lr run at seed 0 only is compared with another lr's seed 0, not with its 3-seed mean
  (which lucky seeds 1 and 2 pull down here)."""
  runs = [
    _lr_run(tmp_path / "p", 0, 8e-3, 1.0),
    _lr_run(tmp_path / "p_seed1", 1, 8e-3, 0.4),
    _lr_run(tmp_path / "p_seed2", 2, 8e-3, 0.4),  # mean 0.6
    _lr_run(tmp_path / "p_lrx2", 0, 1.6e-2, 0.9),  # better than 1.0 at seed 0
  ]
  kept, lrs = rules.best_lr(runs)
  assert lrs == {"p": 1.6e-2} and [r["name"] for r in kept] == ["p_lrx2"]
  assert rules.best_lr(runs[:3] + [_lr_run(tmp_path / "p_lrx2_seed1", 1, 1.6e-2, 0.9)])[1] == {
    "p": 8e-3  # seeds 0 and 1 shared: 0.7 against 0.9
  }


def test_settings_whose_pick_is_the_top_of_their_lr_grid_are_named(tmp_path, capsys):
  runs = [
    _lr_run(tmp_path / "p_lrx0.5", 0, 4e-3, 1.0),
    _lr_run(tmp_path / "p", 0, 8e-3, 0.9),
    _lr_run(tmp_path / "p_lrx2", 0, 1.6e-2, 0.8),  # the top: not bracketed
    _lr_run(tmp_path / "q", 0, 8e-3, 0.7),
    _lr_run(tmp_path / "q_lrx2", 0, 1.6e-2, 0.8),  # bracketed from above
    _lr_run(tmp_path / "r", 0, 8e-3, 0.5),  # one lr: not swept
  ]
  assert rules.lr_at_top(runs) == (["p"], 2)
  row = claims_main._row(
    catalog.BY_NAME["templates"], rules.Score("holds", "m", {}), "", runs, 6, None
  )
  assert (row["lr_at_top"], row["lr_swept"]) == (["p"], 2)
  assert "**holds** (best lr at the top of its grid for 1 of 2 settings)" in claims_main.table(
    [row]
  )


def _fake_lr_runs(
  best: dict[str, float], fail: tuple[str, ...] = (), diverge: tuple[str, ...] = ()
):
  """An executor that writes, for each point, a finished run whose final training loss grows
  with the distance in octaves of its lr from its setting's best; `fail` points write none,
  `diverge` points a run that diverged (no summary, TrainingDiverged in error.txt)."""
  calls = []

  def fake_run(jobs, executor, address):
    calls.append([p.name for _, p in jobs])
    for sweep_dir, p in jobs:
      lr = p.cfg.optimizer.lr
      if p.name not in fail and not (sweep_dir / p.name).is_dir():  # finished: skipped
        loss = 0.5 + abs(math.log2(lr / best[p.name[0]]))
        _lr_run(sweep_dir / p.name, ladder.seed_of_point(p.name), lr, loss, p.name in diverge)
    return [(p.name, "FAILED" if p.name in fail + diverge else "done", None) for _, p in jobs]

  return calls, fake_run


def _ladder_points(factors=(0.5, 1, 2, 4)) -> list:
  cfg = lambda lr: types.SimpleNamespace(optimizer=types.SimpleNamespace(lr=lr))
  return [
    types.SimpleNamespace(
      name=f"{s}{'' if f == 1 else f'_lrx{f:g}'}{seed_part}",
      cfg=cfg(8e-3 * f),
      experiment=None,
      sources=(),
    )
    for s in ("p", "q")
    for f in factors
    for seed_part in ("", "_seed1", "_seed2")
  ]


def test_an_lr_sweep_walks_its_ladder_then_runs_the_other_seeds_at_the_pick(
  tmp_path, monkeypatch, capsys
):
  """A ladder of lr x 0.5, 1, 2, 4 starting at x1 and x2, two settings over 3 seeds: seed 0
  runs the start lrs, then the unrun neighbour of each pick (x4 for p, x0.5 for q), then
  nothing (each pick is at the ladder's end); seeds 1 and 2 run at each pick: 10 runs of 24,
  and the planned count says so once the walk's runs exist."""
  claim = dataclasses.replace(
    catalog.BY_NAME["templates"], lr_factors=(0.5, 1, 2, 4), lr_start=(1, 2)
  )
  points = _ladder_points()
  calls, fake_run = _fake_lr_runs({"p": 3.2e-2, "q": 4e-3})
  monkeypatch.setattr(stages.executors, "run_jobs", fake_run)
  assert ladder.planned_runs(points, claim, tmp_path) == 8  # 4 start, 4 seeds: nothing run
  results = stages.run_claims([(claim, tmp_path, points)], "inline", None)
  assert calls == [
    ["p", "p_lrx2", "q", "q_lrx2"],
    ["p_lrx4", "q_lrx0.5"],
    ["p_lrx4_seed1", "p_lrx4_seed2", "q_lrx0.5_seed1", "q_lrx0.5_seed2"],
  ]
  assert len(results) == 10 == ladder.planned_runs(points, claim, tmp_path)
  out = capsys.readouterr().out
  assert "templates: seed 0's lr pick is not bracketed yet; next: p_lrx4, q_lrx0.5" in out
  assert "templates: the other seeds run at p lr 0.032, q lr 0.004" in out
  assert ladder.planned_runs(points, dataclasses.replace(claim, lr_factors=())) == 24
  # Bracketed picks run nothing more: a second call only re-submits the start lrs and seeds.
  calls.clear()
  stages.run_claims([(claim, tmp_path, points)], "inline", None)
  assert len(calls) == 2


def test_the_lr_walk_stops_at_a_bracketed_pick_and_at_a_failed_neighbour(tmp_path, monkeypatch):
  """p's pick x2 is bracketed by x1 and x4 from the start; q's pick x2 (top of the start lrs)
  needs x4, which fails: the walk does not retry it and the seeds run at x2. Where x4
  diverges instead (TrainingDiverged, no summary), it counts as worse and brackets the pick,
  for the walk and for lr_at_top."""
  claim = dataclasses.replace(
    catalog.BY_NAME["templates"], lr_factors=(0.5, 1, 2, 4), lr_start=(1, 2, 4)
  )
  claim_q = dataclasses.replace(claim, lr_start=(1, 2))
  calls, fake_run = _fake_lr_runs({"p": 1.6e-2, "q": 3.2e-2}, fail=("q_lrx4",))
  monkeypatch.setattr(stages.executors, "run_jobs", fake_run)
  stages.run_claims([(claim, tmp_path / "p", _ladder_points()[:12])], "inline", None)
  assert calls == [["p", "p_lrx2", "p_lrx4"], ["p_lrx2_seed1", "p_lrx2_seed2"]]
  calls.clear()
  stages.run_claims([(claim_q, tmp_path / "q", _ladder_points()[12:])], "inline", None)
  assert calls == [["q", "q_lrx2"], ["q_lrx4"], ["q_lrx2_seed1", "q_lrx2_seed2"]]
  calls, fake_run = _fake_lr_runs({"q": 3.2e-2}, diverge=("q_lrx4",))
  monkeypatch.setattr(stages.executors, "run_jobs", fake_run)
  stages.run_claims([(claim_q, tmp_path / "q_nan", _ladder_points()[12:])], "inline", None)
  assert calls == [["q", "q_lrx2"], ["q_lrx4"], ["q_lrx2_seed1", "q_lrx2_seed2"]]
  calls.clear()  # called again: the diverged x4 brackets the pick and is not sent again
  stages.run_claims([(claim_q, tmp_path / "q_nan", _ladder_points()[12:])], "inline", None)
  assert calls == [["q", "q_lrx2"], ["q_lrx2_seed1", "q_lrx2_seed2"]]
  runs = stages.finished_runs(tmp_path / "q_nan", _ladder_points()[12:])
  assert rules.lr_at_top(runs) == ([], 1)  # x2 tops the finished lrs, but x4 diverged


def test_the_lr_walk_steps_down_when_every_start_lr_diverges(tmp_path, monkeypatch):
  """x1 and x2 diverge: no pick yet, so the walk tries the next lower lr, x0.5, which
  trains; it is then bracketed by x1 (diverged) and the ladder's end, and the seeds run
  there."""
  claim = dataclasses.replace(
    catalog.BY_NAME["templates"], lr_factors=(0.5, 1, 2, 4), lr_start=(1, 2)
  )
  calls, fake_run = _fake_lr_runs({"p": 4e-3}, diverge=("p", "p_lrx2"))
  monkeypatch.setattr(stages.executors, "run_jobs", fake_run)
  stages.run_claims([(claim, tmp_path, _ladder_points()[:12])], "inline", None)
  assert calls == [["p", "p_lrx2"], ["p_lrx0.5"], ["p_lrx0.5_seed1", "p_lrx0.5_seed2"]]
  assert [ladder.lr_factor_of_point(n) for n in ("q", "q_lrx0.5_seed2", "q_lrx16")] == [1, 0.5, 16]


def _job_point(name: str, sources=(), steps: int = 100):
  """A point with an experiment of `steps` steps of the 64-wide model (catalog.cost reads it)."""
  model = types.SimpleNamespace(resolved=lambda: types.SimpleNamespace(d_model=64))
  experiment = types.SimpleNamespace(n_steps=steps, model=model)
  return types.SimpleNamespace(name=name, sources=tuple(sources), experiment=experiment, cfg=None)


def test_a_stage_runs_the_longest_path_first_and_every_source_before_its_readers(tmp_path):
  """A short pretraining run that a long fine-tuning reads goes before a long run alone; the
  fine-tuning after its source; equal paths keep their order."""
  a, b = tmp_path / "a", tmp_path / "b"
  jobs = [
    (a, _job_point("short", steps=100)),
    (a, _job_point("alone", steps=3_000)),
    (b, _job_point("finetune", sources=("pretrain",), steps=2_000)),
    (b, _job_point("pretrain", steps=1_500)),
    (a, _job_point("short2", steps=100)),
  ]
  order = [p.name for _, p in stages.by_longest_path(jobs)]
  assert order == ["pretrain", "alone", "finetune", "short", "short2"]


def test_the_claims_runs_of_a_stage_go_to_the_executor_at_once_and_shared_runs_once(
  tmp_path, monkeypatch
):
  """Two claims without an lr sweep, of two sweeps, and a third claim on the first sweep
  that shares one of its points: one executor call, each run directory once."""
  calls = []

  def fake_run(jobs, executor, address):
    calls.append(sorted(str(d / p.name) for d, p in jobs))
    return [(p.name, "done", {}) for _, p in jobs]

  monkeypatch.setattr(stages.executors, "run_jobs", fake_run)
  plain = dataclasses.replace(catalog.BY_NAME["toy_memory"], lr_factors=())
  a, b = tmp_path / "a", tmp_path / "b"
  planned = [
    (plain, a, [_job_point("x"), _job_point("y")]),
    (plain, b, [_job_point("x")]),
    (plain, a, [_job_point("y"), _job_point("z")]),
  ]
  stages.run_claims(planned, "inline", None)
  assert calls == [[str(a / "x"), str(a / "y"), str(a / "z"), str(b / "x")]]


def test_ray_keeps_no_more_runs_in_flight_than_slots_and_starts_them_in_order(
  tmp_path, monkeypatch
):
  """With 2 CPUs, 4 ready jobs and one that reads the first: at most 2 tasks at once,
  submitted in the given order, the reader only after its source returned."""
  events, in_flight, most = [], set(), [0]

  class Ref:
    def __init__(self, name):
      self.name = name

  class FakeRay:
    @staticmethod
    def init(**kwargs):
      pass

    @staticmethod
    def shutdown():
      pass

    @staticmethod
    def cluster_resources():
      return {"CPU": 2.0}

    @staticmethod
    def remote(**kwargs):
      def wrap(fn):
        def submit(name, config_json, workdir):
          events.append(f"start {name}")
          in_flight.add(name)
          most[0] = max(most[0], len(in_flight))
          return Ref(name)

        return types.SimpleNamespace(remote=submit)

      return wrap

    @staticmethod
    def wait(refs, num_returns):
      first = refs[0]
      in_flight.discard(first.name)
      events.append(f"end {first.name}")
      return [first], refs[1:]

    @staticmethod
    def get(ref):
      return "done", {}

  monkeypatch.setitem(__import__("sys").modules, "ray", FakeRay)
  monkeypatch.setattr(executors_module.serialization, "dump_json", lambda cfg: "{}")
  w = tmp_path / "w"
  jobs = [(w, _job_point(n)) for n in ("p", "q", "r")]
  jobs.insert(1, (w, _job_point("reads_p", sources=("p",))))
  results = executors_module.run_jobs(jobs, "ray")
  assert most[0] == 2
  assert events.index("start reads_p") > events.index("end p")
  starts = [e.split()[1] for e in events if e.startswith("start")]
  assert starts == ["p", "q", "reads_p", "r"]
  assert [r[:2] for r in results] == [(n, "done") for n in ("p", "reads_p", "q", "r")]


# Curricula and templates -----------------------------------------------------------------------


def _alpha_grid(root, best_loss_alpha: dict, plateau_by_alpha=None, every=50) -> list[dict]:
  """Two seeds of alphas 0, 0.5, 1 at each (population, budget) of best_loss_alpha: the
  final loss lowest at its alpha; plateau ends by alpha (None: never ends; a pair: by seed),
  evaluations every `every` steps."""
  plateau_by_alpha = plateau_by_alpha or {0.0: 600, 0.5: 400, 1.0: None}
  runs = []
  for (n, steps), best in best_loss_alpha.items():
    for alpha_value, ends in plateau_by_alpha.items():
      for seed in range(2):
        runs.append(
          _curriculum_run(
            root,
            f"powerlaw_n{n}_steps{steps}_alpha{alpha_value:g}",
            seed,
            {"alpha": alpha_value},
            n,
            steps,
            every,
            loss=1.0 if alpha_value == best else 1.5,
            plateau_end=ends[seed] if isinstance(ends, tuple) else ends,
          )
        )
  return runs


def test_attribute_view_and_clause(tmp_path):
  """The helper on its own: attribute names in recorded order, one value per run (NaN where a
  run lacks it), attributes no run records left out, and the clause naming the exceptions."""
  extra = {"no_knowledge_baseline/major": 4.0, "no_knowledge_baseline/company": 2.0}
  one = _pretrain_run(tmp_path / "a", 0, [6.0, 2.0, 2.0, 1.0], extra=extra | {"x/major": 2.0})
  two = _pretrain_run(tmp_path / "b", 1, [6.0, 2.0, 2.0, 2.0], extra=extra | {"x/major": 6.0})
  assert attributes.names([one, two]) == ["major", "company"]
  view = attributes.view([one, two], lambda r, a: attributes.over_baseline(r, "x", a))
  assert view == {"major": [0.5, 1.5]}  # no run records x/company
  assert attributes.clause({"major": True, "company": True}) == "by attribute: 2 of 2"
  assert attributes.clause({"a": False, "b": True, "c": False}) == "by attribute: 1 of 3 (a, c not)"
  assert attributes.clause({}) == "by attribute: not recorded"
  # No per-attribute plateau end in the summary: train.evaluation's rules on the records.
  records = [
    {"step": 50 * i, "attribute_loss/major": x, "no_knowledge_baseline/major": 4.0}
    for i, x in enumerate([9.0, 4.0, 4.0, 4.0, 3.0, 3.0])
  ]
  run = _write_run(tmp_path / "c", {"train.n_steps": 250}, records, {"plateau_end_step": 200})
  assert attributes.plateau_end_bounds(run, "major") == (150.0, 200.0)
  flat = _write_run(tmp_path / "d", {"train.n_steps": 250}, records[:4], {"plateau_end_step": None})
  assert attributes.plateau_end_bounds(flat, "major") == (250.0, 250.0)


def _templates_grid(
  root, gaps_by_count: dict, fixed_extra: float = 0.1, by_attribute=None
) -> list[dict]:
  """Shuffled and fixed-order runs, one per seed in each count's list of gaps: training
  templates at 0.1 x baseline, evaluation templates `gap` x baseline above that (fixed
  order: `fixed_extra` x baseline more). by_attribute(count, seed, attribute) -> gap: the
  same per attribute, over each attribute's own baseline (4 for birth_date, else 2)."""
  runs = []
  for count, gaps in gaps_by_count.items():
    for order in ("shuffled", "fixed"):
      for seed, gap in enumerate(gaps):
        extra = fixed_extra if order == "fixed" else 0.0
        per_attribute = {}
        for a in ATTRIBUTES if by_attribute else ():
          floor = 4.0 if a == "birth_date" else BASELINE
          per_attribute |= {
            f"no_knowledge_baseline/{a}": floor,
            f"train_templates_attribute_loss/{a}": 0.1 * floor,
            f"attribute_loss/{a}": (0.1 + by_attribute(count, seed, a) + extra) * floor,
          }
        run = _curriculum_run(
          root,
          f"templates{count}_{order}",
          seed,
          loss=(0.1 + gap + extra) * BASELINE,
          train_templates_attribute_loss=0.1 * BASELINE,
          **per_attribute,
        )
        run["config"] |= {
          "data.n_templates_train": count,
          "data.shuffle_sentences": order == "shuffled",
        }
        runs.append(run)
  return runs


def test_new_claims_draw_their_figures(tmp_path):
  runs = _warmup_grid(tmp_path / "w", (0.65, 0.7, 0.6))
  assert figures.warmup(runs, tmp_path / "fig").stat().st_size > 500
  grid = {(600, 1000): 0.5, (1200, 1000): 1.0}
  assert figures.alpha(_alpha_grid(tmp_path / "a", grid), tmp_path / "fig").stat().st_size > 500
  templates = _templates_grid(tmp_path / "t", {1: [1.0], 16: [0.05]})
  assert figures.templates(templates, tmp_path / "fig").stat().st_size > 500
  assert figures.warmup([], tmp_path / "fig") is None
  patched = [r for seed in range(2) for r in _patching_group(tmp_path, "p", seed, 150, 450, None)]
  assert figures.patching(patched, tmp_path / "fig").name == "claim_patching.png"
  assert figures.patching(patched[:1], tmp_path / "fig") is None  # a reference alone


# The claims' points: lr copies and regimes ------------------------------------------------------


def test_lr_copies_compose_with_seeds():
  """Each point at lr x 0.5, 1, 2, 4 (factor 1 keeps the sweep's name), each over the seeds."""
  claim = dataclasses.replace(
    catalog.BY_NAME["three_phases"],
    sweep="quickstart.py",
    only=(),
    lr_factors=(0.5, 1, 2, 4),
  )
  module = claims_main.launch_checks.load_sweep(str(claim.sweep_path(SWEEPS)))
  points = list(catalog.claim_points(claim, module.sweep("small"), 2))
  assert [n for n, _ in points] == [
    "quickstart_lrx0.5",
    "quickstart_lrx0.5_seed1",
    "quickstart",
    "quickstart_seed1",
    "quickstart_lrx2",
    "quickstart_lrx2_seed1",
    "quickstart_lrx4",
    "quickstart_lrx4_seed1",
  ]
  base_lr = module.base("small").optimizer.lr
  assert [c.optimizer.lr / base_lr for _, c in points] == [0.5, 0.5, 1, 1, 2, 2, 4, 4]
  assert [(c.data.seed, c.train.seed) for _, c in points] == [(0, 0), (1, 1)] * 4


def test_the_phases_sweep_makes_the_runs_the_phases_claims_read():
  """sweeps/phases.py, launched on its own, names and configures its lr and seed copies as
  the three_phases claim does (so `make tour` and the scorecard share runs), and the claim
  runs seeds 1 and 2 at whichever lr seed 0 picks."""
  claim = catalog.BY_NAME["three_phases"]
  module = claims_main.launch_checks.load_sweep(str(claim.sweep_path(SWEEPS)))
  claimed = dict(catalog.claim_points(claim, module.sweep("small"), 3))
  own = dict(module.sweep("small"))
  quick = own.pop("phases_n800")  # the quick check's smaller run, not the full claim's
  assert sorted(own) == ["phases", "phases_lrx0.5", "phases_lrx2", "phases_seed1", "phases_seed2"]
  assert quick.data.n_individuals == 800 and claim.quick == ("phases_n800",)
  for name, cfg in own.items():
    assert cfg == claimed[name], name
  assert "phases_lrx0.5_seed2" in claimed and len(claimed) == 21  # 7 lrs x 3 seeds
  assert catalog.BY_NAME["hallucination"].only == claim.only


def test_lr_copies_read_their_own_lrs_sources():
  patching = catalog.BY_NAME["patching"]
  module = claims_main.launch_checks.load_sweep(str(patching.sweep_path(SWEEPS)))
  claim = dataclasses.replace(patching, lr_factors=(1, 2))
  points = dict(catalog.claim_points(claim, module.sweep("small"), 2))
  assert points["patch_start0_ref400_lrx2_seed1"].reference_run == "reference_lrx2_seed1"
  assert points["patch_start0_ref400_lrx2"].reference_run == "reference_lrx2"
  assert points["patch_start0_ref400"].reference_run == "reference"
  assert points["reference_lrx2"].optimizer.lr == 2 * points["reference"].optimizer.lr
  assert points["patch_start0_ref400_lrx2"].optimizer.lr == points["reference_lrx2"].optimizer.lr


def test_warmup_points_are_those_at_the_warmups_population():
  """The warm-up claim keeps the static schedules at the warm-ups' population and budget
  only; a config without an lr cannot be swept."""
  point = lambda n, steps: types.SimpleNamespace(
    data=types.SimpleNamespace(n_individuals=n), train=types.SimpleNamespace(n_steps=steps)
  )
  swept = [
    ("powerlaw_n600_steps1500_alpha0.5", point(600, 1500)),
    ("powerlaw_n1200_steps1500_alpha0.5", point(1200, 1500)),
    ("powerlaw_n1200_steps3000_alpha0.5", point(1200, 3000)),
    ("celebrities_n120_w8", point(1200, 1500)),
    ("warmup_n1200_indiv150_epochs16", point(1200, 1500)),
  ]
  kept = [n for n, _ in catalog.at_regime_of(iter(swept), "warmup_*")]
  assert kept == [
    "powerlaw_n1200_steps1500_alpha0.5",
    "celebrities_n120_w8",
    "warmup_n1200_indiv150_epochs16",
  ]
  with pytest.raises(ValueError, match="point celebrities_n120_w8: lr_factors need"):
    list(catalog.with_lrs(iter(swept[3:4]), (1, 2)))
  claim = catalog.BY_NAME["warmup"]
  module = claims_main.launch_checks.load_sweep(str(claim.sweep_path(SWEEPS)))
  names = [n for n, _ in catalog.claim_points(claim, module.sweep("small"), 1)]
  assert not [n for n in names if n.startswith("growth")]
  assert "warmup_n1200_indiv150_epochs16_lrx2" in names
