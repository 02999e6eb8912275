"""Finished (or running) runs as plain data, and the rules for reading them.

A run is a dict: name, dir, records (metrics.jsonl), summary (summary.json, {} while the run is
unfinished) and config (the config's leaves, {"data.n_individuals": 4000, ...}, unset fields at
their defaults), all read through RunDir. Here: loading (load_run, find_runs), config access
(param, experiment, population, schedule_kind, strategy, regime_of, n_steps, learning_rate,
setting, varying, describe), series (series, layer_series, final, baseline), phase ends
(train.phases' rules, imported rather than restated; analysis.ends reads them below the
evaluation spacing), the paper's best learning rate, power-law fits, grouping and formatting.
Nothing here imports jax or matplotlib: the figures draw with it, the claims judge with it.
"""

import math
import pathlib
import re
import sys
from collections.abc import Callable, Iterable

import numpy as np

from bioknow.rundir import RunDir
from bioknow.train import phases
from bioknow.validate import is_number  # runs.is_number: the figures' and the claims'

# Summary or config fields that only one experiment has: they identify unfinished runs.
_EXPERIMENT_FIELDS = {
  "reference_run": "patching",
  "reference_step": "patching",
  "start_patching": "patching",
  "source_run": "finetune",
  "n_finetune": "finetune",
  "n_new": "toy_memory",
}


# Loading ---------------------------------------------------------------------------------------


def load_run(run_dir: pathlib.Path) -> dict:
  """One run's files as a dict; ValueError naming the file if one of them is unreadable."""
  files = RunDir(run_dir)
  return {
    "name": files.name,
    "dir": files.path,
    "records": files.records(),
    "summary": files.summary() or {},
    "config": files.leaves(),
    "diverged": files.diverged(),
  }


def find_runs(workdir: pathlib.Path) -> list[dict]:
  """Every directory under workdir holding a metrics.jsonl (figures/ excluded), sorted; a run
  with an unreadable file is left out with one line on stderr naming it."""
  workdir = pathlib.Path(workdir)
  runs = []
  for p in sorted(workdir.rglob("metrics.jsonl")):
    if "figures" in p.relative_to(workdir).parts:
      continue
    try:
      runs.append(load_run(p.parent))
    except ValueError as e:
      print(f"report: skipped the run {p.parent}: {e}", file=sys.stderr)
  return runs


# Reading values --------------------------------------------------------------------------------


def param(run: dict, name: str):
  """A field from the summary, else the config entry named `name` or ending in `.name`."""
  if run["summary"].get(name) is not None:
    return run["summary"][name]
  if name in run["config"]:
    return run["config"][name]
  return next(
    (v for k, v in run["config"].items() if k.endswith("." + name) and v is not None), None
  )


def experiment(run: dict) -> str:
  """'pretrain', 'patching', 'finetune' or 'toy_memory'; inferred while a run is unfinished."""
  if run["summary"].get("experiment"):
    return run["summary"]["experiment"]
  for key in list(run["summary"]) + list(run["config"]):
    kind = _EXPERIMENT_FIELDS.get(key.rsplit(".", 1)[-1])
    if kind:
      return kind
  first = run["records"][0] if run["records"] else {}
  if "phase" in first:
    return "toy_memory"
  if "pretrain/attribute_loss" in first and "finetune/attribute_loss" in first:
    return "finetune"
  return "pretrain"


def order(value) -> tuple:
  """A sort key: numbers numerically, anything else after them by its text."""
  return (0, value, "") if is_number(value) else (1, 0, str(value))


def series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of the records where `key` holds a finite number."""
  pairs = [(r["step"], r[key]) for r in records if is_number(r.get(key), finite=True)]
  return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs], dtype=float)


def layer_series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps [T], values [T, n_layers]) of a per-layer statistic."""
  rows = [(r["step"], r[key]) for r in records if isinstance(r.get(key), list) and r[key]]
  n_layers = min((len(v) for _, v in rows), default=0)
  return (
    np.array([s for s, _ in rows]),
    np.array([[x if is_number(x, finite=True) else np.nan for x in v[:n_layers]] for _, v in rows]),
  )


def final(run: dict, key: str) -> float:
  """The last finite value of `key` over the records, else the summary's, else NaN."""
  _, values = series(run["records"], key)
  if len(values):
    return float(values[-1])
  value = run["summary"].get(key)
  return float(value) if is_number(value, finite=True) else math.nan


def baseline(run: dict) -> float:
  return final(run, "no_knowledge_baseline")


def phase_ends(run: dict) -> tuple[float | None, float | None]:
  """(first_phase_end_step, plateau_end_step), None where not reached: the summary's values
  when the run finished, else train.phases' rules applied to the records so far."""
  s = run["summary"]
  if "plateau_end_step" in s:
    return s.get("first_phase_end_step"), s["plateau_end_step"]
  ends = phases.phase_ends(run["records"], finished=False)
  return ends["first_phase_end_step"], ends["plateau_end_step"]


def n_steps(run: dict):
  """The run's training steps, from its config."""
  return run["config"].get("train.n_steps", param(run, "n_steps"))


def plateau_end_or_budget(run: dict) -> float:
  """The run's plateau end step; a plateau that never ends counts as the run's training
  steps (a lower bound on it), so runs stuck on the plateau are ranked, not dropped."""
  end = phase_ends(run)[1]
  if end is not None:
    return float(end)
  budget = n_steps(run)
  return float(budget) if is_number(budget) else math.nan


def plateau_end_bounds(run: dict) -> tuple[float, float]:
  """(earliest, latest) plateau end that the run's evaluations allow: the plateau had not
  ended at the evaluation before the one where it is seen ended, so it ended after `earliest`
  and by `latest` (plateau_end_or_budget). A plateau that never ends: both are the budget."""
  end = phase_ends(run)[1]
  if end is None:
    budget = plateau_end_or_budget(run)
    return budget, budget
  steps, _ = series(run["records"], "attribute_loss")
  before = steps[steps < end]
  return (float(before[-1]) if len(before) else 0.0), float(end)


def learning_rate(run: dict) -> float:
  """optimizer.lr from the config, else the first evaluation's lr."""
  config = run["config"]
  lr = config.get("optimizer.lr")
  if lr is None:
    lr = next((v for k, v in config.items() if k.endswith(".optimizer.lr")), None)
  if lr is None and run["records"]:
    lr = run["records"][0].get("lr")
  return float(lr) if is_number(lr, finite=True) else math.nan


# Schedules: which curriculum a pretraining run follows -----------------------------------------

_SCHEDULE_FIELDS = {
  "alpha": "powerlaw",
  "n_celebrities": "celebrities",
  "indiv_warmup": "warmup",
  "n_start": "growth",
  "n_groups": "sequential",
}
_FILLED_IN = ("n_individuals", "batch_size", "n_steps", "seed")  # given by the run, not chosen
KINDS = ("uniform", "powerlaw", "celebrities", "warmup", "growth", "sequential")


def name_word(name: str) -> str:
  """The first word of a run name without its number: 'lr_0.001' -> 'lr', 'n400_...' -> 'n'."""
  first = name.split("_")[0]
  return re.sub(r"\d[\d.e+-]*$", "", first) or first


def population(run: dict):
  return run["config"].get("data.n_individuals", run["summary"].get("n_individuals"))


def schedule_kind(run: dict) -> str:
  """'uniform', 'powerlaw', 'celebrities', 'warmup', 'growth', 'sequential', from the
  schedule's fields in the config; another schedule is named by its run name's first word."""
  fields = {k[len("schedule.") :]: v for k, v in run["config"].items() if k.startswith("schedule.")}
  for field, kind in _SCHEDULE_FIELDS.items():
    if fields.get(field) is not None:
      return kind
  word = name_word(run["name"])
  chosen = [f for f, v in fields.items() if v is not None and f not in _FILLED_IN]
  if chosen or (not run["config"] and word in KINDS):
    return word
  return "uniform"


def strategy(run: dict) -> str:
  """The run's schedule kind (schedule_kind), with a power law at alpha 0 named uniform."""
  kind = schedule_kind(run)
  return "uniform" if kind == "powerlaw" and float(param(run, "alpha")) == 0 else kind


def regime_of(run: dict) -> tuple:
  """(population, training steps) from the run's config."""
  return (population(run), n_steps(run))


# Settings and the best learning rate -----------------------------------------------------------


def _is_tuned(key: str) -> bool:
  """Config entries a setting leaves out: learning rates and seeds (the best-lr rule picks or
  averages over them) and how a run was executed (which does not change what it tests)."""
  last = key.rsplit(".", 1)[-1]
  return last in ("lr", "seed", "n_devices", "progress_seconds", "data_threads")


def setting(run: dict, ignore: Iterable[str] = ()) -> tuple:
  """What a run tests, less its learning rate, seeds and the `ignore`d config entries."""
  ignore = set(ignore)
  if run["config"]:
    items = tuple(
      sorted((k, repr(v)) for k, v in run["config"].items() if not _is_tuned(k) and k not in ignore)
    )
  else:  # no stored config: the run name without its lr and seed parts
    items = (("name", re.sub(r"_?(lr|seed)[0-9.e+-]+", "", run["name"])),)
  return (experiment(run),) + items


def group_by(items: Iterable, key: Callable) -> dict:
  groups: dict = {}
  for item in items:
    groups.setdefault(key(item), []).append(item)
  return groups


def final_train_loss(run: dict) -> float:
  loss = final(run, "train_loss")
  return loss if math.isfinite(loss) else math.inf  # diverged runs lose


def best_lr_choices(
  runs: list[dict], key: Callable = setting, seed: Callable | None = None
) -> dict:
  """setting -> (best lr, {lr: mean final training loss over seeds}), as the paper picks;
  `key` gives a run's setting (default: its config less lr and seeds). With `seed` (a run's
  seed), the lrs of a setting are compared on the seeds they all have: an lr run at seed 0
  only is not measured against another lr's mean over three seeds."""
  choices = {}
  for group_key, group in group_by(runs, key).items():
    by_lr = group_by(group, learning_rate)
    if seed is not None:
      shared = set.intersection(*({seed(r) for r in rs} for rs in by_lr.values()))
      by_lr = {lr: [r for r in rs if seed(r) in shared] or rs for lr, rs in by_lr.items()}
    scores = {lr: float(np.mean([final_train_loss(r) for r in rs])) for lr, rs in by_lr.items()}
    choices[group_key] = (min(scores, key=lambda lr: (scores[lr], lr)), scores)
  return choices


def best_lr(runs: list[dict], key: Callable = setting, seed: Callable | None = None) -> list[dict]:
  """The runs (every seed) at the best learning rate of their setting, in input order."""
  choices = best_lr_choices(runs, key, seed)
  return [r for r in runs if learning_rate(r) == choices[key(r)][0] or math.isnan(learning_rate(r))]


def varying(runs: list[dict]) -> list[str]:
  """Config entries (not lr or seeds) whose value differs between runs."""
  keys = sorted(
    {k for r in runs for k in r["config"] if not _is_tuned(k) and not k.endswith("eval_groups")}
  )  # derived, long
  return [k for k in keys if len({repr(r["config"].get(k)) for r in runs}) > 1]


def describe(run: dict, keys: list[str]) -> str:
  """A short label: the given config entries' values, else the run name."""
  parts = [f"{k.rsplit('.', 1)[-1]}={run['config'].get(k)}" for k in keys]
  return ", ".join(parts) if parts else run["name"]


# Fits and formatting ---------------------------------------------------------------------------


def fit_power_law(x, y) -> tuple[float, float, float]:
  """y = c * x^k by least squares in log-log; returns (k, c, R^2 in log space)."""
  log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
  k, log_c = np.polyfit(log_x, log_y, 1)
  residual = log_y - (k * log_x + log_c)
  total = np.sum((log_y - log_y.mean()) ** 2)
  r2 = 1.0 - np.sum(residual**2) / total if total > 0 else 1.0
  return float(k), float(np.exp(log_c)), float(r2)


def power_law_interval(x, y, level: float = 0.95) -> tuple[float, float]:
  """The `level` confidence interval of k in y = c * x^k: the least-squares slope in log-log
  plus or minus Student's t quantile times its standard error (n - 2 degrees of freedom).
  Every point counts, so seeds of one population widen the interval by their spread."""
  from scipy.special import stdtrit  # the t quantile; scipy.stats takes seconds to import

  log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
  n = len(log_x)
  if n < 3 or np.ptp(log_x) == 0:
    return math.nan, math.nan
  k, log_c = np.polyfit(log_x, log_y, 1)
  residual = log_y - (k * log_x + log_c)
  stderr = math.sqrt(np.sum(residual**2) / (n - 2) / np.sum((log_x - log_x.mean()) ** 2))
  half = float(stdtrit(n - 2, 0.5 + level / 2)) * stderr
  return float(k - half), float(k + half)


def fmt_count(n) -> str:
  """4000 -> '4k', 1600 -> '1.6k', 300 -> '300'."""
  if not is_number(n, finite=True):
    return str(n)
  return f"{n / 1000:g}k" if n >= 1000 else f"{n:g}"
