"""python -m bioknow.claims [--only=NAME,...] [--seeds=3 | --quick] [--config=set:PATH=VALUE ...]
    [--workdir=runs] [--sweeps=sweeps] [--dry_run] [--score_only] [--out=DIR] [--evidence=DIR]
    [--executor=inline|ray] [--ray_address=...]

The paper's claims as one scorecard. For each claim it runs (or reuses: finished runs are
skipped, interrupted ones resume) the sweep points it needs over --seeds seeds, and where
the claim sweeps the learning rate (catalog.Claim.lr_factors) over its lrs, at the CPU scale
(in two stages: seed 0 walks the lr ladder until each setting's pick is bracketed, then the
other seeds run at each setting's best lr of seed 0; every claim's runs of a stage go to the
executor together, the longest path first: stages.py), then scores them with the
rule written next to the claim (bioknow/claims/rules*.py; a claim with lr copies is scored
at the lr with the best final training loss of each setting) and prints a table: the claim,
the paper's figure and numbers, what was measured (mean and spread over seeds), the verdict
and, beside it, the clause of the rule that decided it (rules.Score.why). Verdicts: holds;
weak (most of the rule holds, or only the means over seeds, none of it the other way, every
part run); not shown (neither the effect nor its opposite is measured beyond its resolution,
or a part of the rule not run); contradicted (the effect is measured,
beyond its resolution and the spread over seeds, in the direction opposite to the paper's);
not run (no finished run to score); not applicable (below). It writes WORKDIR/claims/
claims.json (the claims scored now replace their rows; the others stay; each row with its
verdict, why, rule and values) and one figure per claim in WORKDIR/claims/figures (--out
puts both elsewhere). --dry_run lists every point (lr and seed copies included) with its lr,
then the distinct runs, their steps and the estimated wall time. --score_only runs nothing
and scores the finished runs; a verdict on part of a grid says so ("holds (15 of 45 runs)").

--quick is a quick check, aimed at 30 minutes on 2 cores (--dry_run --quick prints the
estimate): one seed, each claim at its sweep's base lr (no lr ladder), in its cheapest regime
(catalog.Claim.quick: e.g. alpha at the smallest population and budget, templates at the
fewest and the most). Its points are points of the full scorecard, with the same names and
configs, so the two share runs both ways (a run's identity is its config: nothing mixes);
its table is headed as quick and flags every verdict "(quick)", and it is written to
WORKDIR/claims/quick, apart from the full scorecard's. --quick --seeds=3 runs the same points
over 3 seeds; its table says so and goes to WORKDIR/claims/quick_seeds3.

--evidence=DIR copies the runs that were scored (config.json, summary.json, metrics.jsonl;
no checkpoints) into DIR/SWEEP/POINT, so that --score_only --workdir=DIR (with --quick for a
quick one) prints the same table in seconds (bioknow/claims/evidence.py). The table is
printed between the lines <!-- scorecard --> and <!-- /scorecard -->, as README.md holds it.

--sweeps is the folder of the sweep files (sweeps/phases.py, ...) whose points the claims need,
--score_only included (a run is found by its point's name): by default sweeps/ of the current
directory, the root of a bioknow checkout.

--config overrides apply to every run ("does the claim hold for Hawk?" is
--config=set:model.mixer='"hawk"' --workdir=runs/hawk); runs with overrides need a workdir
of their own, so they never mix with the default runs. Without --only, a claim whose points
the overrides do not fit (attention patching under Hawk; the toy memory, which has no
model.mixer) is scored "not applicable", with the reason, and the others run; a claim named
in --only, or overrides that fit no claim, fail before anything runs.

--executor=ray runs the points as Ray tasks, as many at once as the cluster has CPUs (or
GPUs), those of every claim together; figures in docs/benchmarks.md.
"""

import pathlib
import sys
import textwrap
import time
import types

from absl import flags

from bioknow import compile_cache, configs, executors, launch, launch_checks
from bioknow.analysis import ends
from bioknow.claims import catalog, evidence, ladder, rules, stages
from bioknow.claims.evidence import table

PHASE_ENDS = "\n" + textwrap.fill(
  f"Phase ends (bioknow/analysis/ends.py), which most rules compare: the first phase ends when "
  f"attribute loss / no-knowledge baseline falls within {ends.FIRST_PHASE_FACTOR:g} x the "
  f"baseline, the plateau when it falls below {ends.PLATEAU_FACTOR:g} x. A crossing counts only "
  f"when CONFIRM = {ends.CONFIRM} consecutive evaluations lie past the threshold (or every "
  "evaluation through the last one of a finished run), so one noisy evaluation ends nothing. "
  "The end is interpolated between the evaluations around the crossing and carries a "
  "resolution (+- steps); two ends closer than their resolutions, or than their spread over "
  "seeds, are a tie, and a tie never decides a verdict.",
  92,
)

FLAGS = flags.FlagValues()  # its own flags: bioknow.launch's, imported here, have other meanings
flags.DEFINE_string(
  "only", None, "Comma-separated claim names (default: every claim).", flag_values=FLAGS
)
flags.DEFINE_integer("seeds", 3, "Seeds per setting (at least 1).", flag_values=FLAGS)
flags.DEFINE_bool(
  "quick",
  False,
  "A quick check: one seed, the base lr, each claim's cheapest regime; its table is marked "
  "quick and written to WORKDIR/claims/quick.",
  flag_values=FLAGS,
)
flags.DEFINE_multi_string(
  "config", [], "Overrides for every run: set:PATH=VALUE.", flag_values=FLAGS
)
flags.DEFINE_string("workdir", "runs", "Root of the sweeps' run directories.", flag_values=FLAGS)
flags.DEFINE_string(
  "sweeps",
  catalog.DEFAULT_SWEEPS,
  "Folder of the sweep files the claims' points come from (default: sweeps/ of the current "
  "directory, a bioknow checkout's root).",
  flag_values=FLAGS,
)
flags.DEFINE_enum("scale", "small", configs.SCALES, "Grid of the sweeps.", flag_values=FLAGS)
flags.DEFINE_enum(
  "executor",
  "inline",
  list(executors.EXECUTORS),
  "inline: points one after another in this process; ray: one Ray task per point.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "ray_address", None, "Address of a Ray cluster (default: start one here).", flag_values=FLAGS
)
flags.DEFINE_bool("dry_run", False, "Print each claim's points and run nothing.", flag_values=FLAGS)
flags.DEFINE_bool(
  "score_only",
  False,
  "Score the runs that have finished and run nothing; a row read from part of its grid "
  "says how many of its runs it read.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "out",
  None,
  "Where claims.json and the figures go (default WORKDIR/claims, WORKDIR/claims/quick with "
  "--quick).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "evidence",
  None,
  "Copy the scored runs' config.json, summary.json and metrics.jsonl into this folder, as "
  "SWEEP/POINT, for --score_only --workdir=DIR.",
  flag_values=FLAGS,
)
DEFAULT_WORKDIR = "runs"
NOT_APPLICABLE = "not applicable"


def select(only: str | None) -> list[catalog.Claim]:
  if not only:
    return list(catalog.CLAIMS)
  names = [n.strip() for n in only.split(",") if n.strip()]
  if unknown := [n for n in names if n not in catalog.BY_NAME]:
    raise ValueError(f"--only: {unknown[0]} is not a claim; allowed: {', '.join(catalog.BY_NAME)}.")
  return [catalog.BY_NAME[n] for n in names]


def plan(
  claims,
  scale: str,
  seeds: int,
  directives: list[str],
  workdir: pathlib.Path,
  sweeps_dir: pathlib.Path,
  skip_unfit: bool = False,
  quick: bool = False,
):
  """(claim, sweep workdir, points) for each claim: every point built and checked first, from
  its sweep file in sweeps_dir (catalog.check_sweeps: one sentence if any is missing).
  With skip_unfit, a claim whose points the overrides do not fit is left out and returned
  in the second list as (claim, reason), unless no claim fits (then the first reason is
  raised: the overrides, not the claims, are wrong). With quick, each claim as --quick runs
  it (catalog.quick), at one seed."""
  if seeds < 1:
    raise ValueError(f"--seeds: got {seeds}; it must be an integer >= 1.")
  if quick and scale != "small":
    raise ValueError(f"--quick: picks points of the small grids; got --scale={scale}.")
  catalog.check_sweeps(claims, sweeps_dir)
  planned, unfit = [], []
  for claim in map(catalog.quick, claims) if quick else claims:
    module = launch_checks.load_sweep(str(claim.sweep_path(sweeps_dir)))
    shim = types.SimpleNamespace(
      sweep=lambda s, m=module, c=claim: catalog.claim_points(c, m.sweep(s), seeds),
      base=module.base,
      __file__=module.__file__,
    )
    sweep_dir = workdir / claim.sweep_name
    try:
      points = launch.build_points(shim, scale, directives, None, sweep_dir)
    except ValueError as e:
      if not (skip_unfit and directives):
        raise
      unfit.append((claim, str(e)))
      continue
    launch_checks.runs_to_replace(  # a run never mixes configs
      points,
      sweep_dir,
      overwrite=False,
      remedy="give the claims command another --workdir, or delete that run directory.",
    )
    planned.append((claim, sweep_dir, points))
  if unfit and not planned:
    raise ValueError(unfit[0][1])
  return planned, unfit


def dry_run(claim: catalog.Claim, sweep_dir: pathlib.Path, points) -> None:
  """Prints the claim's runs, steps and every point (lr and seed copies), marking those that
  run only if the lr walk reaches them or seed 0 picks their lr."""
  first, rest = ladder.lr_stages(points, claim)
  start = ladder.lr_start_points(first, claim)
  n_lrs = max(len(claim.lr_factors), 1)
  steps = sum(catalog.cost(p.experiment)[0] for p in start)  # runs stopped early: estimated
  steps += sum(catalog.cost(p.experiment)[0] for p in rest) // n_lrs
  lrs, staged = "", ""
  if rest or len(start) < len(first):
    lrs = f", lr x {', '.join(f'{x:g}' for x in claim.lr_factors)}"
    staged = (
      f" (seed 0 at lr x {', '.join(f'{x:g}' for x in claim.lr_start)}, "
      "more where its pick is not bracketed, then one lr of the other seeds)"
    )
  print(
    f"{claim.name}: {ladder.planned_runs(points, claim, sweep_dir)} runs{staged} of "
    f"{claim.sweep} in {sweep_dir}, {steps} steps{lrs}"
  )
  on_demand = {p.name for p in first} - {p.name for p in start}
  picked_only = {p.name for p in rest}
  for p in points:  # every copy, so that the lr and seed copies can be read off
    lr = catalog.learning_rate(p.cfg)
    when = "  (if seed 0 picks its lr)" if p.name in picked_only else ""
    when = "  (if the lr walk reaches it)" if p.name in on_demand else when
    print(f"  {p.name}" + (f"  lr {lr:g}" if lr is not None else "") + when)


def estimate(planned, scale: str) -> str:
  """The distinct runs planned (those two claims share counted once; with an lr sweep, seed 0
  at its start lrs and one lr of the other seeds, before any walk), their steps and, at the
  small scale, their wall time on 2 cores (catalog.cost): one at a time, and two at a time
  (--executor=ray runs every claim's points of a stage at once: stages.py)."""
  chosen: dict[pathlib.Path, object] = {}
  for claim, sweep_dir, points in planned:
    first, rest = ladder.lr_stages(points, claim)
    rest = [p for p in rest if ladder.lr_factor_of_point(p.name) == 1]  # stands for the pick
    new = {sweep_dir / p.name: p.experiment for p in ladder.lr_start_points(first, claim) + rest}
    chosen |= {k: e for k, e in new.items() if k not in chosen}
  inline = sum(catalog.cost(e)[1] for e in chosen.values())
  ray = inline / catalog.RAY_SPEEDUP if len(chosen) > 1 else inline
  lm = sum(catalog.cost(e)[0] for e in chosen.values() if getattr(e, "model", None))
  line = f"total: {len(chosen)} distinct runs, {lm:,} training steps of language models"
  if scale != "small":
    return line
  return (
    f"{line}; about {inline / 60:.0f} min one at a time on 2 cores, {ray / 60:.0f} min with "
    "--executor=ray (two at a time), from measured runtimes (catalog.cost)"
  )


def not_applicable(claim: catalog.Claim, reason: str) -> dict:
  """The row of a claim whose points the --config overrides do not fit."""
  result = rules.Score(NOT_APPLICABLE, f"the overrides do not fit its runs: {reason}", {})
  return _row(claim, result, "", [], 0, None)


def score(claim: catalog.Claim, sweep_dir: pathlib.Path, points, out_dir: pathlib.Path) -> dict:
  """The claim's row: its score and figure from the runs of its points."""
  runs = stages.finished_runs(sweep_dir, points)
  result = claim.score(runs)
  figure = claim.figure(runs, out_dir / "figures")
  rule = " ".join((claim.score.__doc__ or "").split())
  planned = ladder.planned_runs(points, claim, sweep_dir)
  return _row(claim, result, rule, runs, planned, figure)


def _row(
  claim: catalog.Claim, result: rules.Score, rule: str, runs: list[dict], planned: int, figure
) -> dict:
  """One row of the scorecard (and of claims.json)."""
  at_top, swept = rules.lr_at_top(runs)
  return {
    "claim": claim.name,
    "statement": claim.statement,
    "paper": claim.paper,
    "measured": result.measured,
    "verdict": result.verdict,
    "why": result.why,
    "rule": rule,
    "values": result.values,
    "runs": [r["name"] for r in runs],
    # Fewer finished than planned: a verdict on part of the grid (--score_only).
    "runs_finished": sum(1 for r in runs if r["summary"]),
    # Settings whose lr grid does not bracket their pick, of those swept (rules.lr_at_top).
    "lr_at_top": at_top,
    "lr_swept": swept,
    "runs_planned": planned,
    "compute_seconds": sum(r["summary"].get("wall_seconds", 0.0) for r in runs),
    "figure": str(figure) if figure else None,
  }


def _seeds() -> int:
  """--seeds, or 1 with --quick where --seeds is not given."""
  return 1 if FLAGS.quick and not FLAGS["seeds"].present else FLAGS.seeds


def _folders(workdir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path | None]:
  """(out, evidence): where the scorecard and the evidence copy go, checked (ValueError, one
  sentence) before anything runs."""
  if FLAGS.evidence and FLAGS.dry_run:
    raise ValueError("--evidence copies scored runs; --dry_run scores none: leave one out.")
  seeds = _seeds()
  quick = ("quick" if seeds == 1 else f"quick_seeds{seeds}") if FLAGS.quick else ""
  out = workdir / "claims" / quick
  out = _as("--out", launch_checks.resolve_workdir, FLAGS.out) if FLAGS.out else out
  if not FLAGS.evidence:
    return out, None
  dest = _as("--evidence", launch_checks.resolve_workdir, FLAGS.evidence)
  evidence.check_destination(dest, workdir)
  return out, dest


def _as(flag: str, check, folder):
  """check(folder), its refusal naming `flag` where it names --workdir."""
  try:
    return check(folder)
  except ValueError as e:
    raise ValueError(str(e).replace("--workdir", flag)) from None


def main(argv: list[str]) -> int:
  if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
    print(__doc__ + PHASE_ENDS + "\n\nflags:\n" + FLAGS.get_help())
    return 0
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    sys.exit(str(e))
  flags.FLAGS.mark_as_parsed()
  compile_cache.enable()
  if len(rest) > 1:
    sys.exit(f"claims: unexpected argument {rest[1]!r}; every option is a --flag.")
  if not FLAGS.workdir:
    sys.exit("--workdir: got an empty value; give a directory, or leave the flag out.")
  if not FLAGS.sweeps:
    sys.exit("--sweeps: got an empty value; give the folder of the sweep files, or leave it out.")
  if FLAGS.config and FLAGS.workdir == DEFAULT_WORKDIR:
    sys.exit("--config changes every run: give them a --workdir of their own, e.g. runs/hawk.")
  try:
    workdir = launch_checks.resolve_workdir(FLAGS.workdir)
    out_dir, dest = _folders(workdir)
    claims = select(FLAGS.only)
    sweeps_dir = pathlib.Path(FLAGS.sweeps).expanduser().resolve()
    planned, unfit = plan(
      claims,
      FLAGS.scale,
      _seeds(),
      FLAGS.config,
      workdir,
      sweeps_dir,
      not FLAGS.only,
      FLAGS.quick,
    )
    if not FLAGS.dry_run:
      for flag, folder in (("--out", out_dir), ("--workdir", workdir), ("--evidence", dest)):
        if folder is not None and not (flag == "--workdir" and FLAGS.score_only):
          _as(flag, launch_checks.check_writable, folder)
  except ValueError as e:
    sys.exit(str(e))
  for claim, reason in unfit:
    print(f"{claim.name}: {NOT_APPLICABLE}: {reason}", flush=True)
  if FLAGS.dry_run:
    for claim, sweep_dir, points in planned:
      dry_run(claim, sweep_dir, points)
    print(estimate(planned, FLAGS.scale))
    return 0
  failed, start = False, time.perf_counter()
  for claim, sweep_dir, points in planned:
    n_runs = ladder.planned_runs(points, claim, sweep_dir)
    print(f"=== claim {claim.name}: {n_runs} runs of {claim.sweep} planned", flush=True)
  if not FLAGS.score_only:
    results = stages.run_claims(planned, FLAGS.executor, FLAGS.ray_address)
    failed = any(status.startswith("FAILED") for _, status, _ in results)
  rows = [score(claim, sweep_dir, points, out_dir) for claim, sweep_dir, points in planned]
  rows += [not_applicable(claim, reason) for claim, reason in unfit]
  rows.sort(key=lambda r: [c.name for c in catalog.CLAIMS].index(r["claim"]))
  for row in rows:
    row["quick"], row["seeds"] = FLAGS.quick, _seeds()
  out_dir.mkdir(parents=True, exist_ok=True)
  card = out_dir / "claims.json"
  evidence.write_card(rows, card)
  print(evidence.marked(table(rows)))
  if dest is not None:
    scored = [sweep_dir / p.name for _, sweep_dir, points in planned for p in points]
    copied = evidence.export([d for d in scored if d.is_dir()], workdir, dest)
    print(f"evidence: {copied['runs']} runs, {copied['bytes'] / 1e6:.2f} MB, copied to {dest}")
  print(f"wall time {time.perf_counter() - start:.0f} s; {card}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
