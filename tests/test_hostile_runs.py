"""Hostile inputs and faults (issue 16): training never reaches held-out ids, whatever the
schedule; a bad value fails in check() with one sentence before anything is written; a torn
record, a broken checkpoint, a corrupt summary, an unreadable run or fine-tuning source each
recover or fail alone, with one line naming what was wrong. Faults a killed process would
leave are made here by editing the files of one tiny finished run."""

import dataclasses
import functools
import io
import pathlib
import shutil

import fiddle as fdl
import numpy as np
import pytest
import sentencepiece as spm
import tensorstore as ts
from absl import flags
from absl.testing import flagsaver
from conftest import HELDOUT, N, tiny_overrides

from bioknow import configs, executors, launch, report
from bioknow.data import schedules
from bioknow.experiments.finetune import FinetuneConfig, SeenMixture
from bioknow.experiments.patching import PatchingConfig
from bioknow.experiments.pretrain import PretrainConfig
from bioknow.models.transformer import ModelConfig
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train.evaluation import EvalConfig
from bioknow.train.step import OptimizerConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
N_STEPS = 40
TINY = tiny_overrides(20, (0, 10, 20), n_sequences=32, n_attention=0)

# Populations partitioned by construction ------------------------------------------------------

P = functools.partial
# Every schedule of schedules.py as a sweep configures it: the run fills in n_individuals.
SCHEDULES = {
  "Uniform": P(schedules.Uniform),
  "PowerLaw": P(schedules.PowerLaw, alpha=1.0, seed=2),
  "Celebrities": P(schedules.Celebrities, n_celebrities=5, weight_celebrities=8.0),
  "Warmup": P(schedules.Warmup, indiv_warmup=10, epochs_warmup=2.0),
  "Sequential": P(schedules.Sequential, n_groups=3, n_repeats=2),
  "Growth": P(schedules.Growth, n_start=5, growth_steps=20, mode="geometric"),
  "Phases": P(
    schedules.Phases,
    schedules=(P(schedules.Warmup, indiv_warmup=7, epochs_warmup=1.0), P(schedules.Uniform)),
    steps=(10,),
  ),
  # Built by fine-tuning runs, never filled in: configured here as a pretraining run's
  # schedule, it must stay inside that run's training ids too.
  "FinetuneMixture": P(
    schedules.FinetuneMixture, n_pretrain=N // 2, new_start=N // 2, new_stop=N, weight_replay=0.5
  ),
}


DATA = dataclasses.replace(
  fdl.build(configs.pretrain("small").data), n_individuals=N, n_heldout=HELDOUT
)


def _pretrain(schedule) -> PretrainConfig:
  return PretrainConfig(
    data=DATA,
    model=ModelConfig(preset="tiny"),
    train=loop.TrainConfig(n_steps=N_STEPS, batch_size=8),
    eval=EvalConfig(steps=(0, N_STEPS), n_sequences=32, batch_size=32, n_attention=0),
    schedule=schedule,
  )


def test_every_schedule_of_schedules_py_is_tested():
  defined = {
    name
    for name, value in vars(schedules).items()
    if isinstance(value, type)
    and callable(getattr(value, "at", None))
    and value is not schedules.Schedule  # the protocol itself
  }
  assert defined == set(SCHEDULES)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_training_draws_only_training_ids(name):
  cfg = _pretrain(SCHEDULES[name])
  cfg.check()
  schedule = cfg.build_schedule()
  reach = schedules.reach(schedule, N_STEPS)
  assert reach and all(0 <= a < b <= N for a, b in reach), reach
  rng = np.random.default_rng(0)
  for step in range(N_STEPS):
    ids = schedule.at(step).sample(rng, 256)
    assert all(any(a <= i < b for a, b in reach) for i in np.unique(ids)), (step, ids)


@pytest.mark.parametrize("name", sorted(set(SCHEDULES) - {"FinetuneMixture"}))
@pytest.mark.parametrize("n_individuals", [N + HELDOUT, 5_000, N - 10])
def test_a_schedule_population_other_than_the_data_is_refused(name, n_individuals):
  factory = SCHEDULES[name]
  if name == "Phases":  # the population of a nested phase
    first, second = factory.keywords["schedules"]
    factory = P(factory, schedules=(first, P(second, n_individuals=n_individuals)))
  else:
    factory = P(factory, n_individuals=n_individuals)
  with pytest.raises(ValueError, match=rf"^schedule.n_individuals: got {n_individuals} but the "):
    _pretrain(factory).check()


@pytest.mark.parametrize(
  "schedule, ids",
  [
    (schedules.Uniform(N + HELDOUT), rf"\[0, {N + HELDOUT}\)"),  # built: nothing to fill in
    (
      P(schedules.FinetuneMixture, n_pretrain=N, new_start=N, new_stop=N + 3, weight_replay=0),
      rf"\[{N}, {N + 3}\)",
    ),
  ],
)
def test_a_schedule_reaching_heldout_ids_is_refused_before_compute(schedule, ids):
  with pytest.raises(ValueError, match=rf"^schedule: it draws ids {ids} but the training ids "):
    _pretrain(schedule).check()


@pytest.mark.parametrize("ids", [None, (10, N)])
def test_fine_tuning_schedules_skip_the_heldout_and_extra_ids(ids):
  cfg = FinetuneConfig(
    data=dataclasses.replace(DATA, n_extra=4),
    model=ModelConfig(preset="tiny"),
    train=loop.TrainConfig(n_steps=N_STEPS, batch_size=8),
    eval=EvalConfig(steps=(0, N_STEPS), n_sequences=32, batch_size=32, n_attention=0),
    n_finetune=0 if ids else 20,
    finetune_ids=ids,
    weight_replay=0.5,
  )
  cfg.check()
  schedule = cfg.build_schedule()
  assert isinstance(schedule, SeenMixture if ids else schedules.FinetuneMixture)
  start, stop = cfg.finetune_range
  assert schedules.reach(schedule, N_STEPS) == ([(0, N)] if ids else [(0, N), (start, stop)])
  assert ids or start == N + HELDOUT + 4  # after the held-out and the source's extra ids


# Every value checked before compute -----------------------------------------------------------


def _spm_model(tmp_path: pathlib.Path, **ids) -> str:
  """A SentencePiece model trained on a few words, without the biography tag symbols."""
  out = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(["alice was born in paris", "bob works at acme"] * 20),
    model_writer=out,
    vocab_size=30,
    hard_vocab_limit=False,
    minloglevel=2,
    **ids,
  )
  path = tmp_path / "words.model"
  path.write_bytes(out.getvalue())
  return str(path)


@pytest.mark.parametrize(
  "directive, message",
  [
    ("train.data_threads=-1", "train.data_threads: got -1; it must be an integer >= 0."),
    ("train.seed=-1", "train.seed: got -1; it must be an integer >= 0."),
    ("train.n_devices=0", "train.n_devices: got 0; it must be None"),
    ("train.progress_seconds=-1.0", "train.progress_seconds: got -1.0; it must be a finite"),
    ("optimizer.lr=1e999", "optimizer.lr: got inf; it must be a finite number."),
    ("optimizer.lr=-0.1", "optimizer.lr: got -0.1; it must be > 0."),
    ("optimizer.eps=0.0", "optimizer.eps: got 0.0; it must be > 0"),
    ("optimizer.weight_decay=-1e999", "optimizer.weight_decay: got -inf; it must be a finite"),
    ("eval.every=0", "eval.every: got 0; it must be an integer >= 1."),
    ("eval.steps=(0,10.5,20)", "eval.steps: got (0, 10.5, 20); give None (every, dense_until"),
    ("eval.n_attention=-1", "eval.n_attention: got -1; it must be an integer >= 0."),
    ("model.key_size=-4", "model.key_size: got -4; it must be None"),
    ("data.n_heldout=-1", "n_heldout: got -1; it must be an integer >= 0."),
    ("schedule.n_individuals=556", "schedule.n_individuals: got 556 but the training population"),
    ("schedule.n_individuals=5000", "schedule.n_individuals: got 5000 but the training"),
    ("data.tokenizer='README.md'", "tokenizer: README.md is not a SentencePiece model"),
    ("data.tokenizer=DEFAULT_IDS", "has pad, unk, bos, eos ids (-1, 0, 1, 2)"),
    ("data.tokenizer=NO_TAGS", "lacks the tag symbols <name>, <value>"),
  ],
)
def test_bad_values_fail_in_one_sentence_before_anything_is_written(
  directive, message, tmp_path, monkeypatch
):
  monkeypatch.chdir(REPO)
  if directive.endswith("DEFAULT_IDS"):
    directive = directive.replace("DEFAULT_IDS", repr(_spm_model(tmp_path)))
  if directive.endswith("NO_TAGS"):
    path = _spm_model(tmp_path, pad_id=0, unk_id=1, bos_id=2, eos_id=3)
    directive = directive.replace("NO_TAGS", repr(path))
  module = launch.load_sweep("sweeps/quickstart.py")
  workdir = tmp_path / "runs"
  with pytest.raises(ValueError) as e:
    launch.build_points(module, "small", TINY + [f"set:{directive}"], None, workdir)
  text = str(e.value)
  assert text.startswith("point quickstart: ") and text.endswith(".") and ". " not in text, text
  assert message in text, text
  assert not workdir.exists()


def test_the_launcher_exits_non_zero_on_a_bad_value_and_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)
  flags.FLAGS.mark_as_parsed()
  workdir = tmp_path / "runs"
  directives = [*TINY, "set:optimizer.lr=1e999"]
  with flagsaver.flagsaver(sweep="sweeps/quickstart.py", workdir=str(workdir), config=directives):
    with pytest.raises(SystemExit) as e:
      launch.main([])
  # sys.exit with a message prints it and exits with status 1.
  assert e.value.code == "point quickstart: optimizer.lr: got inf; it must be a finite number."
  assert not workdir.exists()


# Recovery -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> pathlib.Path:
  """A tiny finished pretraining run, written as the launcher writes it (checkpoints at steps
  0, 10, 20)."""
  cfg = launch.apply_overrides(configs.pretrain("small"), TINY)
  workdir = tmp_path_factory.mktemp("sweep")
  status, _ = executors.run_point("pretrain", cfg, fdl.build(cfg), workdir)
  assert status.startswith("done"), status
  return workdir / "pretrain"


def _copy(run: pathlib.Path, to: pathlib.Path) -> pathlib.Path:
  """A copy of a run, as it would be if killed at its end (no summary.json)."""
  shutil.copytree(run, to)
  (to / "summary.json").unlink()
  return to


def _resume(run_dir: pathlib.Path) -> str:
  """Resumes the run (the launcher's path for an unfinished point); returns its status."""
  cfg = RunDir(run_dir).config()
  status, _ = executors.run_point(run_dir.name, cfg, fdl.build(cfg), run_dir.parent)
  return status


def _assert_same_results(run: pathlib.Path, reference: pathlib.Path) -> None:
  """The resumed run's metrics and per-individual losses are the uninterrupted run's."""
  assert (run / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
  zarrs = []
  for r in (run, reference):
    store = {"driver": "file", "path": str(r / "per_individual.zarr")}
    zarrs.append(ts.open({"driver": "zarr3", "kvstore": store}).result().read().result())
  np.testing.assert_array_equal(*zarrs)


def _largest_file(directory: pathlib.Path) -> pathlib.Path:
  return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_a_torn_last_record_is_dropped_and_recomputed(finished, tmp_path, capsys):
  run = _copy(finished, tmp_path / "sweep" / "pretrain")
  text = (run / "metrics.jsonl").read_text()
  (run / "metrics.jsonl").write_text(text[: text.rstrip("\n").rfind("\n") + 200])  # step 20's
  assert _resume(run).startswith("done")
  out = capsys.readouterr().out
  assert "skipped checkpoint step 20: its record in metrics.jsonl is missing" in out
  assert "resuming from step 10" in out
  _assert_same_results(run, finished)
  assert (run / "skipped_checkpoints" / "20").is_dir() and RunDir(run).checkpoint_steps()[-1] == 20


# orbax leaves the reads of a failed restore un-awaited.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_resume_falls_back_to_the_newest_checkpoint_that_restores(finished, tmp_path, capsys):
  run = _copy(finished, tmp_path / "sweep" / "pretrain")
  with _largest_file(run / "checkpoints" / "20" / "model").open("r+b") as f:
    f.truncate(100)  # a truncated checkpoint
  shutil.rmtree(run / "checkpoints" / "10" / "opt_state")  # one without its optimizer state
  assert _resume(run).startswith("done")
  out = capsys.readouterr().out
  assert "skipped checkpoint step 20: it does not restore (ValueError: OUT_OF_RANGE: " in out
  assert (
    """skipped checkpoint step 10: it does not restore (KeyError: 'Item "opt_state" was not """
    in out
  )
  assert "resuming from step 0" in out
  _assert_same_results(run, finished)
  assert sorted(p.name for p in (run / "skipped_checkpoints").iterdir()) == ["10", "20"]


def test_a_corrupt_summary_fails_only_its_own_point_and_names_the_file(finished, tmp_path):
  good = tmp_path / "sweep" / "good"
  shutil.copytree(finished, good)
  bad = _copy(finished, tmp_path / "sweep" / "bad")
  (bad / "summary.json").write_bytes(b"\x89\xffnot json")
  cfg = RunDir(good).config()
  points = [launch.Point(name, cfg, fdl.build(cfg), {}, ()) for name in ("bad", "good")]
  [(_, bad_status, _), (_, good_status, _)] = executors.run_inline(points, tmp_path / "sweep")
  assert bad_status.startswith(f"FAILED: ValueError: {bad / 'summary.json'} is unreadable")
  assert good_status == "done (skipped)"
  assert (bad / "summary.json").read_bytes() == b"\x89\xffnot json"  # left for the user


def test_the_report_skips_an_unreadable_run_with_one_line_and_draws_the_rest(
  finished, tmp_path, capsys
):
  for name in ("good", "binary_metrics", "corrupt_config", "corrupt_summary"):
    shutil.copytree(finished, tmp_path / name)
  (tmp_path / "binary_metrics" / "metrics.jsonl").write_bytes(bytes(range(256)))
  (tmp_path / "corrupt_config" / "config.json").write_text('{"leaves": ')
  (tmp_path / "corrupt_summary" / "summary.json").write_text("[1, 2]")
  paths = report.report(tmp_path)
  err = capsys.readouterr().err.splitlines()
  skipped = sorted(line for line in err if line.startswith("report: skipped the run"))
  assert len(skipped) == 3, err
  for line, name in zip(skipped, ("binary_metrics", "corrupt_config", "corrupt_summary")):
    assert line.startswith(f"report: skipped the run {tmp_path / name}: {tmp_path / name}/")
  assert paths and all(p.exists() for p in paths)


def test_damaged_records_are_named_and_the_intact_ones_kept(tmp_path):
  run = RunDir(tmp_path / "run")
  run.write_records([{"step": 0}, {"step": 10}, {"step": 20}])
  lines = run.metrics_path.read_text().splitlines()
  run.metrics_path.write_text("\n".join([lines[0], "garbage", lines[2]]) + "\n")
  damage = f"{run.metrics_path} line 2 is not a JSON record with a step."
  assert run.read_records() == ([{"step": 0}], damage)
  with pytest.raises(ValueError, match="line 2 is not a JSON record"):
    run.records()
  run.metrics_path.write_bytes(b'{"step": 0}\n\xff\xfe')
  assert (
    run.read_records()[0] == [] and "is unreadable (UnicodeDecodeError" in run.read_records()[1]
  )


# orbax leaves the reads of a failed restore un-awaited.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_fine_tuning_source_that_does_not_restore_is_refused_before_anything_is_written(
  finished, tmp_path
):
  source = tmp_path / "sweep" / "pretrain"
  shutil.copytree(finished, source)
  with _largest_file(source / "checkpoints" / "20" / "model").open("r+b") as f:
    f.truncate(100)
  pre = RunDir(source).config()
  cfg = fdl.Config(
    FinetuneConfig,
    source="pretrain",
    data=pre.data,
    model=pre.model,
    optimizer=fdl.Config(OptimizerConfig, lr=1e-3, schedule="constant"),
    train=fdl.Config(loop.TrainConfig, n_steps=10, batch_size=8),
    eval=fdl.Config(EvalConfig, steps=(0, 10), n_sequences=32, batch_size=32, n_attention=0),
    n_finetune=10,
  )
  status, _ = executors.run_point("ft", cfg, fdl.build(cfg), tmp_path / "sweep")
  assert status.startswith(
    f"FAILED: ValueError: source: the checkpoint of step 20 in {source} does not restore "
    "(ValueError: OUT_OF_RANGE"
  ), status
  assert "delete its summary.json and re-run its sweep" in status
  assert not (tmp_path / "sweep" / "ft").exists()


# orbax leaves the reads of a failed restore un-awaited.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_patching_reference_that_does_not_restore_is_refused_before_anything_is_written(
  finished, tmp_path
):
  reference = tmp_path / "sweep" / "reference"
  shutil.copytree(finished, reference)
  with _largest_file(reference / "checkpoints" / "10" / "model").open("r+b") as f:
    f.truncate(100)
  built = fdl.build(RunDir(reference).config())
  cfg = PatchingConfig.of(built, reference_run="reference", reference_step=10, start_patching=10)
  with pytest.raises(ValueError) as e:
    cfg.check_sources(RunDir(tmp_path / "sweep" / "patched"))
  assert str(e.value).startswith(
    f"reference_run: the checkpoint of step 10 in {reference} does not restore (ValueError: "
  )
  assert not (tmp_path / "sweep" / "patched").exists()
