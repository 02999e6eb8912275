"""Fine-tuning: populations, replay proportions, bad sources and a tiny end-to-end run."""

import dataclasses
import json
import pathlib

import equinox as eqx
import fiddle as fdl
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioknow import configs, executors, launch
from bioknow.data import pipeline
from bioknow.data.dataset import build_dataset
from bioknow.experiments import finetune, pretrain
from bioknow.experiments.finetune import FinetuneConfig
from bioknow.models.transformer import LanguageModel, ModelConfig
from bioknow.rundir import RunDir
from bioknow.train import loop
from bioknow.train import step as step_lib
from bioknow.train.evaluation import EvalConfig
from bioknow.train.step import OptimizerConfig, learning_rate, make_optimizer

REPO = pathlib.Path(__file__).resolve().parents[1]
# The small scale's lists (the finetune sweep's sources are built from them), fewer people.
DATA = dataclasses.replace(
  fdl.build(configs.pretrain("small").data), n_individuals=50, n_heldout=16
)
MODEL = ModelConfig(preset="tiny")
EVAL = EvalConfig(steps=(0, 5, 10, 20), n_sequences=32, batch_size=32, n_attention=0)


def _config(**kwargs) -> FinetuneConfig:
  base = dict(
    source="pretrain",
    data=DATA,
    model=MODEL,
    optimizer=OptimizerConfig(lr=3e-3, schedule="constant"),
    train=loop.TrainConfig(n_steps=20, batch_size=8),
    eval=EVAL,
    n_finetune=20,
  )
  return FinetuneConfig(**(base | kwargs))


def _fdl(value):
  """The fiddle config that builds a (nested) frozen dataclass, as sweeps write them."""
  if dataclasses.is_dataclass(value):
    return fdl.Config(
      type(value), **{f.name: _fdl(getattr(value, f.name)) for f in dataclasses.fields(value)}
    )
  return value


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """A tiny finished pretraining run, written as the launcher writes it."""
  workdir = tmp_path_factory.mktemp("sweep")
  cfg = configs.pretrain("small")
  cfg.data.n_individuals, cfg.data.n_heldout = 50, 16
  cfg.model.preset = "tiny"
  cfg.train.n_steps, cfg.train.batch_size = 20, 8
  cfg.eval = fdl.Config(EvalConfig, steps=(0, 10, 20), n_sequences=32, batch_size=32, n_attention=0)
  status, _ = executors.run_point("pretrain", cfg, fdl.build(cfg), workdir)
  assert status.startswith("done"), status
  return workdir


def test_populations_are_disjoint_and_pretraining_individuals_unchanged():
  cfg = _config(n_finetune=40)
  old, new = build_dataset(DATA).population, finetune.finetune_dataset(cfg).population
  assert new.size == old.size + 40
  for field in ("first_N", "middle_N", "last_N", "values_NxA", "templates_NxAxK"):
    np.testing.assert_array_equal(getattr(new, field)[: old.size], getattr(old, field))
  names = list(zip(new.first_N, new.middle_N, new.last_N))
  assert len(set(names)) == new.size  # new names differ from every old one and each other
  start, stop = cfg.finetune_range
  assert (start, stop) == (50 + 16, 50 + 16 + 40)
  pretrain, heldout, fresh = set(range(50)), set(new.heldout_ids), set(range(start, stop))
  assert not (pretrain & heldout or pretrain & fresh or heldout & fresh)
  assert cfg.groups == (("pretrain", 0, 50), ("finetune", start, stop))


@pytest.mark.parametrize("weight", [0.0, 1.0, 0.25, 1 / 16])
def test_replay_proportions_actually_sampled(weight):
  cfg = _config(
    n_finetune=40,
    weight_replay=weight,
    train=loop.TrainConfig(n_steps=100, batch_size=32, pack=False),
  )
  ds = finetune.finetune_dataset(cfg)
  batches = pretrain.training_batches(cfg.train, ds, cfg.build_schedule())
  ids = np.concatenate([b["individual_B"] for b in batches])
  start, stop = cfg.finetune_range
  replay = ids < 50
  assert np.all(replay | ((ids >= start) & (ids < stop)))  # never held-out individuals
  p = weight * 50 / (weight * 50 + 40)
  n = len(ids)
  assert abs(replay.sum() - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1e-9, (replay.mean(), p)
  # Uniform within the fine-tuning individuals: chi-square, 39 dof, p < 1e-4 bound.
  counts = np.bincount(ids[~replay] - start, minlength=40)
  expected = counts.sum() / 40
  assert ((counts - expected) ** 2 / expected).sum() < 85


def test_seen_mixture_replays_the_others():
  cfg = _config(
    n_finetune=0,
    finetune_ids=(10, 50),
    weight_replay=0.5,
    eval_groups=(("celebrities", 0, 10), ("non_celebrities", 10, 50)),
  )
  cfg.check()
  ranges = cfg.build_schedule().at(0)
  probabilities = ranges.probabilities(50)
  np.testing.assert_allclose(probabilities[:10], 0.5 / (0.5 * 10 + 40))
  np.testing.assert_allclose(probabilities[10:], 1 / (0.5 * 10 + 40))


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(weight_replay=-0.5), "weight_replay: got -0.5; it must be a finite number >= 0"),
    (dict(weight_replay=float("nan")), "weight_replay: got nan"),
    (
      dict(n_finetune=0, finetune_ids=(40, 60)),
      r"finetune_ids: \[40, 60\) overlaps the held-out individuals \[50, 66\)",
    ),
    (dict(n_finetune=5, finetune_ids=(0, 10)), "n_finetune: got 5 together with finetune_ids"),
    (dict(n_finetune=0), "n_finetune: got 0"),
    (dict(n_finetune=0, finetune_ids=(0, 50), weight_replay=1.0), "nobody is left to replay"),
    (dict(eval_groups=(("seen", 0, 5),)), "eval_groups: the name 'seen' is taken"),
    (dict(n_finetune=20_000), "exceeds the 13,824 unique full names"),
    (
      dict(reset_optimizer=False, optimizer=OptimizerConfig(lr=3e-3)),
      "optimizer.schedule: got 'cosine' with reset_optimizer=False; the carried-over step count",
    ),
  ],
)
def test_bad_configs_fail_in_one_sentence(kwargs, message):
  with pytest.raises(ValueError, match=message):
    _config(**kwargs).check()


@pytest.mark.slow
def test_missing_unfinished_or_different_source_fails_before_compute(tmp_path, source):
  run_dir = tmp_path / "ft"
  run_dir.mkdir()
  with pytest.raises(ValueError, match="source: .*nope does not exist; run its pretraining"):
    _config(source="nope").run(run_dir)
  (tmp_path / "half").mkdir()
  with pytest.raises(ValueError, match="half is unfinished"):
    _config(source="half").run(run_dir)
  assert not any(run_dir.iterdir())  # nothing written
  ok = _config(source=str(source / "pretrain"))
  assert ok.check_sources(run_dir) is None
  with pytest.raises(ValueError, match="data.seed: got 1 but the source run .* used 0"):
    dataclasses.replace(ok, data=dataclasses.replace(DATA, seed=1)).check_sources(run_dir)
  with pytest.raises(ValueError, match="model.preset: got 'mini'"):
    dataclasses.replace(ok, model=ModelConfig(preset="mini")).check_sources(run_dir)


@pytest.mark.slow
def test_tiny_finetune_end_to_end(source, monkeypatch):
  cfg = _config(weight_replay=0.25)
  assert cfg.train.pack
  pack_shapes = []

  def spy(*args, pack_shape=None, **kwargs):
    pack_shapes.append(pack_shape)
    return real(*args, pack_shape=pack_shape, **kwargs)

  real = pipeline.training_batches
  monkeypatch.setattr(pipeline, "training_batches", spy)
  status, summary = executors.run_point("ft", _fdl(cfg), cfg, source)
  assert len(pack_shapes) == 1 and pack_shapes[0] is not None  # train.pack is honoured
  assert status.startswith("done"), status
  records = [json.loads(l) for l in (source / "ft" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [0, 5, 10, 20]
  for key in (
    "pretrain/attribute_loss",
    "pretrain/attribute_accuracy",
    "finetune/attribute_loss",
    "finetune/attribute_accuracy",
    "unseen_attribute_loss",
    "unseen_max_prob",
    "unseen_entropy",
  ):
    assert key in records[-1], key
  # Step 0 is the source's final model, evaluated on the same seen set.
  source_final = json.loads((source / "pretrain" / "summary.json").read_text())
  assert records[0]["attribute_loss"] == pytest.approx(source_final["attribute_loss"], rel=1e-5)
  assert records[-1]["finetune/attribute_loss"] < records[0]["finetune/attribute_loss"]
  assert summary["experiment"] == "finetune" and summary["n_finetune"] == 20
  assert summary["weight_replay"] == 0.25 and summary["source_run"].endswith("pretrain")
  assert summary["pretrain/attribute_accuracy_min_step"] in (0, 5, 10, 20)
  assert summary["pretrain_accuracy_before_finetune"] == records[0]["pretrain/attribute_accuracy"]
  assert summary["min_pretrain_accuracy"] == min(r["pretrain/attribute_accuracy"] for r in records)


@pytest.mark.slow
def test_optimizer_state_carried_over_from_the_source(source, monkeypatch):
  cfg = _config(source=str(source / "pretrain"), reset_optimizer=False)
  ds = finetune.finetune_dataset(cfg)
  model = LanguageModel(MODEL, ds.vocab_size, key=jax.random.key(1))
  optimizer = make_optimizer(cfg.optimizer, learning_rate(cfg.optimizer, cfg.train.n_steps))
  skeleton = optimizer.init(eqx.filter(model, eqx.is_array))
  restored, opt_state = finetune.restore_source(RunDir(source / "pretrain"), 20, model, skeleton)
  adam = opt_state[0]
  assert int(adam.count) == 20  # the source's 20 steps
  assert float(jnp.abs(adam.mu.embed_VxD).sum()) > 0
  assert not np.allclose(restored.embed_VxD, model.embed_VxD)
  # The run starts from that state: its schedule count goes on from the source's, and the
  # lr it logs is the constant lr it applies.
  first_states = []
  real = step_lib.train_step

  def spy(optimizer, model, opt_state, *args):
    if not first_states:
      first_states.append(jax.device_get(opt_state))  # train_step donates its inputs
    return real(optimizer, model, opt_state, *args)

  monkeypatch.setattr(step_lib, "train_step", spy)
  status, _ = executors.run_point("ft_carried", _fdl(cfg), cfg, source)
  assert status.startswith("done"), status
  (state,) = first_states
  np.testing.assert_array_equal(state[0].nu.embed_VxD, adam.nu.embed_VxD)
  assert int(state[0].count) == step_lib.schedule_step(state) == 20
  records = RunDir(source / "ft_carried").records()
  assert [r["lr"] for r in records] == pytest.approx([3e-3] * len(records))


def test_sweep_runs_sources_first_and_rejects_a_missing_one(tmp_path):
  module = launch.load_sweep(str(REPO / "sweeps" / "finetune.py"))
  points = launch.build_points(module, "small", [], None)
  names = [p.name for p in points]
  for p in points:
    assert all(names.index(s) < names.index(p.name) for s in p.sources), p.name
  assert {p.sources for p in points if p.name.startswith("new")} == {("pretrain",)}
  with pytest.raises(ValueError, match=r"point new50: source: .*pretrain does not exist"):
    launch.build_points(module, "small", [], "new50", tmp_path)
  assert not any(tmp_path.iterdir())
