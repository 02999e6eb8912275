"""Running the claims' points: every claim's runs of a stage at once, the longest path first.

The runs go in stages. First the start points of every claim (all of a claim without an lr
sweep; with one, seed 0 at its lr_start factors). Then, while some claim's seed-0 lr pick
(rules.best_lr) has an unrun neighbour on its ladder, those neighbours (ladder.lr_neighbours),
of every claim at once. Last, the other seeds at each setting's picked lr. Within a stage the
runs of all claims go to the executor together, so two claims never wait on each other's
last run: with Ray, a claim of one long run (three_phases) shares the cores with the others
instead of running alone. Runs two claims share (three_phases and hallucination read the same
`phases`) run once. Each stage is ordered longest path first (`by_longest_path`), so a long
run, or one that others read, starts early rather than last.
"""

import pathlib

from bioknow import executors
from bioknow.analysis import runs as R
from bioknow.claims import catalog, ladder, rules


def _seconds(point) -> float:
  """A point's estimated wall time (catalog.cost); 1 s for a point without an experiment."""
  return catalog.cost(point.experiment)[1] if point.experiment is not None else 1.0


def by_longest_path(jobs: list[executors.Job]) -> list[executors.Job]:
  """The jobs by the estimated time from their start to the end of the last run that reads
  them, longest first (critical-path list scheduling); ties keep their order. A run comes
  before the runs that read it, since their paths are shorter by its own time."""
  by_key = {workdir / p.name: (workdir, p) for workdir, p in jobs}
  readers: dict[pathlib.Path, list[pathlib.Path]] = {k: [] for k in by_key}
  for workdir, p in jobs:
    for source in p.sources:
      if workdir / source in readers:
        readers[workdir / source].append(workdir / p.name)
  path: dict[pathlib.Path, float] = {}

  def longest(key: pathlib.Path) -> float:
    if key not in path:
      tail = max((longest(r) for r in readers[key]), default=0.0)
      path[key] = _seconds(by_key[key][1]) + tail
    return path[key]

  return sorted(by_key.values(), key=lambda job: -longest(job[0] / job[1].name))


def _stage(planned_points) -> list[executors.Job]:
  """(sweep workdir, point) jobs of (sweep workdir, points) pairs, each run once."""
  jobs = {
    sweep_dir / p.name: (sweep_dir, p) for sweep_dir, points in planned_points for p in points
  }
  return by_longest_path(list(jobs.values()))


def finished_runs(sweep_dir: pathlib.Path, points) -> list[dict]:
  """The runs of the points that have a run directory."""
  return [R.load_run(sweep_dir / p.name) for p in points if (sweep_dir / p.name).is_dir()]


def run_claims(planned, executor: str, address: str | None) -> list[executors.Result]:
  """Runs the planned claims' points, (claim, sweep workdir, points) each, in the stages of
  the module docstring (finished points are skipped by the executors); returns every
  stage's results."""
  results: list[executors.Result] = []
  start = [(d, ladder.lr_start_points(ladder.lr_stages(pts, c)[0], c)) for c, d, pts in planned]
  jobs = _stage(start)
  results += executors.run_jobs(jobs, executor, address)
  tried = {d / p.name for d, p in jobs}
  while True:  # the lr walk of every claim that sweeps the lr, one rung at a time
    rung = []
    for claim, sweep_dir, points in planned:
      if len(claim.lr_factors) < 2:
        continue
      first, _ = ladder.lr_stages(points, claim)
      walk = ladder.lr_neighbours(first, finished_runs(sweep_dir, points))
      walk = [p for p in walk if sweep_dir / p.name not in tried]
      if walk:
        names = ", ".join(p.name for p in walk)
        print(f"{claim.name}: seed 0's lr pick is not bracketed yet; next: {names}", flush=True)
        rung.append((sweep_dir, walk))
    if not (jobs := _stage(rung)):
      break
    results += executors.run_jobs(jobs, executor, address)
    tried |= {d / p.name for d, p in jobs}
  seeds = []
  for claim, sweep_dir, points in planned:
    rest = ladder.lr_stages(points, claim)[1]
    if not rest:
      continue
    _, picked = rules.best_lr([r for r in finished_runs(sweep_dir, points) if r["summary"]])
    lrs = ", ".join(f"{s} lr {lr:g}" for s, lr in picked.items())
    print(f"{claim.name}: the other seeds run at {lrs}", flush=True)
    seeds.append((sweep_dir, ladder.at_picked_lrs(rest, picked)))
  if jobs := _stage(seeds):
    results += executors.run_jobs(jobs, executor, address)
  return results
