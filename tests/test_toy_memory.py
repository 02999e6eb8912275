"""The toy associative memory: model, task, replay sampling, the fine-tuning path, configs."""

import dataclasses
import json
import math
import pathlib

import jax
import numpy as np
import pytest

from bioknow import launch
from bioknow.experiments import toy_memory as tm
from bioknow.models.toy_memory import ToyMemory
from bioknow.train.step import OptimizerConfig

# Pre-trains to 100% in 600 steps; a high fine-tuning lr makes forgetting show in 200 steps.
TINY = tm.ToyMemoryConfig(
  d_embed=16,
  d_hidden=32,
  n_values=8,
  n_pairs=128,
  batch_size=32,
  pretrain_steps=600,
  pretrain_eval_every=100,
  n_new=32,
  finetune_steps=200,
  finetune_eval_every=20,
  finetune_optimizer=OptimizerConfig(lr=1e-2, schedule="constant", weight_decay=0.01),
)


def test_task_keys_values_and_targets():
  task = tm.make_task(dataclasses.replace(TINY, n_pairs=500, n_new=40))
  assert task.values_VxD.shape == (8, 16) and task.old_keys_NxD.shape == (500, 16)
  assert task.new_keys_MxD.shape == (40, 16) and task.new_targets_M.shape == (40,)
  for x in (task.values_VxD, task.old_keys_NxD, task.new_keys_MxD):
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, rtol=1e-5)
  assert task.old_targets_N.min() >= 0 and task.old_targets_N.max() < 8
  assert len(np.unique(task.old_targets_N)) == 8  # 500 uniform draws hit all 8 values
  # The values and old pairs do not depend on the number of new pairs.
  other = tm.make_task(dataclasses.replace(TINY, n_pairs=500, n_new=7))
  np.testing.assert_array_equal(task.old_keys_NxD, other.old_keys_NxD)
  np.testing.assert_array_equal(task.old_targets_N, other.old_targets_N)
  np.testing.assert_array_equal(task.values_VxD, other.values_VxD)


def test_model_forward_by_hand_and_init_scale():
  model = ToyMemory(d_embed=16, d_hidden=4096, key=jax.random.key(0))
  assert model.w_in_HxD.shape == (4096, 16) and model.w_out_DxH.shape == (16, 4096)
  assert model.b_in_H.shape == (4096,) and model.b_out_D.shape == (16,)
  task = tm.make_task(dataclasses.replace(TINY, n_pairs=64))
  keys_BxD, values_VxD = task.old_keys_NxD, task.values_VxD
  # By hand: values . (W_out relu(W_in k + b_in) + b_out), for every key.
  w_in, w_out = np.asarray(model.w_in_HxD), np.asarray(model.w_out_DxH)
  expected_BxV = (np.maximum(keys_BxD @ w_in.T, 0) @ w_out.T) @ values_VxD.T
  logits_BxV = np.asarray(model.batch(keys_BxD, values_VxD))
  assert logits_BxV.shape == (64, 8)
  np.testing.assert_allclose(logits_BxV, expected_BxV, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(model(keys_BxD[3], values_VxD), logits_BxV[3], rtol=1e-5, atol=1e-5)
  # Unit-norm keys give hidden pre-activations of unit variance and, with He scaling of the
  # read-out, logits of about unit second moment against unit value vectors.
  assert abs(np.mean((keys_BxD @ w_in.T) ** 2) - 1) < 0.1
  assert 0.5 < np.mean(logits_BxV**2) < 1.5


def test_replay_fraction_and_sampled_proportions():
  cfg = dataclasses.replace(TINY, n_pairs=8_192, n_new=128, weight_replay=1 / 8)
  assert cfg.replay_fraction == pytest.approx(1_024 / (1_024 + 128))
  assert dataclasses.replace(cfg, weight_replay=2.0).replay_fraction == pytest.approx(
    16_384 / 16_512
  )
  assert dataclasses.replace(cfg, weight_replay=0.0).replay_fraction == 0.0
  rng = np.random.default_rng(0)
  index = tm.sample_indices(rng, (50, 400), cfg.n_pairs, cfg.n_new, cfg.replay_fraction)
  assert index.shape == (50, 400) and index.min() >= 0 and index.max() < 8_192 + 128
  is_old = index < 8_192
  assert abs(is_old.mean() - cfg.replay_fraction) < 0.01  # 20k draws: 4 standard errors
  # Without replay only new pairs, each about equally often (200 +- 14 draws each).
  no_replay = tm.sample_indices(rng, (200, 128), cfg.n_pairs, cfg.n_new, 0.0)
  counts = np.bincount(no_replay.ravel() - 8_192, minlength=128)
  assert len(counts) == 128 and counts.min() > 140 and counts.max() < 260


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A tiny run without replay, one with replay (weight 1), and the first one repeated."""
  root = tmp_path_factory.mktemp("toy")
  out = {}
  for name, weight in [("noreplay", 0.0), ("replay", 1.0), ("again", 0.0)]:
    summary = dataclasses.replace(TINY, weight_replay=weight).run(root / name)
    out[name] = (summary, (root / name / "metrics.jsonl").read_text())
  return out


def test_finetuning_forgets_old_pairs_without_replay(runs):
  noreplay, replay = runs["noreplay"][0], runs["replay"][0]
  for s in (noreplay, replay):
    assert s["experiment"] == "toy_memory"
    assert s["pretrain/accuracy_before_finetune"] > 0.95
    assert s["finetune/accuracy_before_finetune"] < 0.5  # new keys are unknown
    assert s["finetune/accuracy"] > 0.9  # and learned
  assert noreplay["n_new"] == 32 and noreplay["weight_replay"] == 0.0
  assert replay["replay_fraction"] == pytest.approx(128 / 160)
  assert noreplay["min_pretrain_accuracy_during_finetune"] < 0.8
  assert (
    replay["min_pretrain_accuracy_during_finetune"]
    > noreplay["min_pretrain_accuracy_during_finetune"] + 0.15
  )
  assert replay["pretrain/accuracy"] > noreplay["pretrain/accuracy"] + 0.15


def test_metrics_lines(runs):
  summary, text = runs["noreplay"]
  records = [json.loads(line) for line in text.splitlines()]
  pre = [r for r in records if r["phase"] == "pretrain"]
  ft = [r for r in records if r["phase"] == "finetune"]
  assert [r["step"] for r in pre] == list(range(0, 601, 100))
  assert [r["step"] for r in ft] == list(range(600, 801, 20))
  assert [r["finetune_step"] for r in ft] == list(range(0, 201, 20))
  assert pre[0]["train_loss"] is None and ft[0]["train_loss"] is None
  assert all(
    set(r) >= {"step", "lr", "train_loss", "pretrain/loss", "pretrain/accuracy"} for r in records
  )
  assert not any("finetune/accuracy" in r for r in pre)
  assert all({"finetune/loss", "finetune/accuracy"} <= set(r) for r in ft)
  assert pre[0]["lr"] == pytest.approx(0.03) and ft[-1]["lr"] == pytest.approx(1e-2)
  assert pre[0]["pretrain/loss"] == pytest.approx(math.log(8), abs=1.0)  # near chance at init
  worst = min(ft, key=lambda r: r["pretrain/accuracy"])
  assert summary["min_pretrain_accuracy_during_finetune"] == worst["pretrain/accuracy"]
  assert summary["min_pretrain_accuracy_finetune_step"] == worst["finetune_step"]
  assert summary["finetune/accuracy"] == ft[-1]["finetune/accuracy"]
  assert summary["wall_seconds"] > 0


def test_same_seed_same_result_and_shared_pretraining(runs):
  assert runs["again"][1] == runs["noreplay"][1]
  pre = lambda text: [line for line in text.splitlines() if '"phase": "pretrain"' in line]
  assert pre(runs["replay"][1]) == pre(runs["noreplay"][1])


@pytest.mark.parametrize(
  "changes, field",
  [
    (dict(n_pairs=0), "n_pairs"),
    (dict(n_values=1), "n_values"),
    (dict(d_hidden=2.5), "d_hidden"),
    (dict(weight_replay=-1.0), "weight_replay"),
    (dict(weight_replay=float("inf")), "weight_replay"),
    (dict(finetune_eval_every=30), "finetune_eval_every"),
    (dict(pretrain_optimizer=OptimizerConfig(lr=0.0)), "pretrain_optimizer.lr"),
    (dict(finetune_optimizer=OptimizerConfig(schedule="linear")), "finetune_optimizer.schedule"),
    (dict(seed=-1), "seed"),
  ],
)
def test_bad_config_fails_before_anything_is_written(tmp_path, changes, field):
  cfg = dataclasses.replace(TINY, **changes)
  with pytest.raises(ValueError, match=rf"^{field}: ") as e:
    cfg.run(tmp_path / "run")
  assert str(e.value).endswith(".") and "\n" not in str(e.value)
  assert not (tmp_path / "run").exists()


def test_sweep_grid_and_paper_defaults():
  module = launch.load_sweep(str(pathlib.Path(__file__).parents[1] / "sweeps/toy_memory.py"))
  paper = launch.build_points(module, "paper", [], None)
  names = [p.name for p in paper]
  assert names[:6] == [f"new{n}_noreplay" for n in (32, 64, 128, 256, 512, 1024)]
  assert names[6:] == [
    "new128_replay2",
    "new128_replay1_2",
    "new128_replay1_8",
    "new128_replay1_32",
    "new128_replay1_128",
    "new128_replay1_512",
  ]
  weights = [p.experiment.weight_replay for p in paper[6:]]
  assert weights == [2, 1 / 2, 1 / 8, 1 / 32, 1 / 128, 1 / 512]
  # The sweep's paper base is the config's defaults (the paper's numbers).
  assert paper[2].experiment == tm.ToyMemoryConfig()
  assert paper[0].experiment.n_steps == 20_000  # what the launcher's dry run adds up
  small = launch.build_points(module, "small", [], None)
  assert 0 < len(small) < len(paper)
