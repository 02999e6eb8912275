"""bioknow.validate: bools are never integers or numbers, numpy scalars pass only where asked,
bounds hold, non-finite numbers fail, and every message names the field and what is allowed."""

import math
import re

import numpy as np
import pytest

from bioknow.data import schedules
from bioknow.data.lists import load_lists
from bioknow.data.pipeline import check_groups
from bioknow.experiments.finetune import FinetuneConfig
from bioknow.experiments.toy_memory import ToyMemoryConfig
from bioknow.models.transformer import ModelConfig
from bioknow.train.evaluation import EvalConfig
from bioknow.train.loop import TrainConfig
from bioknow.train.phases import phase_ends
from bioknow.train.step import OptimizerConfig
from bioknow.validate import check_bool, check_int, check_number, is_int, is_number


@pytest.mark.parametrize("numpy", [False, True])
def test_bools_are_not_integers_or_numbers(numpy):
  for x in (True, False, np.bool_(True)):
    assert not is_int(x, numpy=numpy)
    assert not is_number(x, numpy=numpy)
    assert not is_number(x, finite=True, numpy=numpy)


def test_integers():
  assert is_int(0) and is_int(-3) and is_int(10**30)
  for x in (1.0, "1", None, [1], 1 + 0j):
    assert not is_int(x) and not is_int(x, numpy=True)


def test_numpy_integers_pass_only_with_numpy():
  for x in (np.int64(3), np.int32(3), np.uint8(3)):
    assert not is_int(x)
    assert is_int(x, numpy=True)
    assert not is_number(x)
    assert is_number(x, numpy=True)


def test_numpy_floats():
  assert is_number(np.float64(0.5))  # a float subclass: passes as Python's float does
  assert not is_number(np.float32(0.5))
  assert is_number(np.float32(0.5), numpy=True)
  assert not is_int(np.float64(1.0), numpy=True)


def test_non_finite_numbers():
  for x in (math.inf, -math.inf, math.nan, np.float32("nan"), np.float64("inf")):
    assert is_number(x, numpy=True)
    assert not is_number(x, finite=True, numpy=True)
  assert is_number(0.0, finite=True) and is_number(-7, finite=True)


def test_check_int_bounds_and_message():
  check_int("train.seed", 0, 0)
  check_int("n", 5, 1, 5)
  with pytest.raises(ValueError, match=r"^eval\.every: got 0; it must be an integer >= 1\.$"):
    check_int("eval.every", 0, 1)
  with pytest.raises(
    ValueError, match=r"^n_celebrities: got 6; it must be an integer in \[0, 5\]\.$"
  ):
    check_int("n_celebrities", 6, 0, 5)
  with pytest.raises(ValueError, match=r"^n_steps: got True; it must be an integer >= 0\.$"):
    check_int("n_steps", True)
  with pytest.raises(ValueError, match=r"^seed: got 2\.0; it must be an integer >= 0\.$"):
    check_int("seed", 2.0)
  with pytest.raises(ValueError, match=r"^seed: got .*2.*; it must be an integer >= 0\.$"):
    check_int("seed", np.int64(2))
  check_int("seed", np.int64(2), numpy=True)


def test_check_number_message():
  check_number("optimizer.lr", 1e-3)
  check_number("alpha", 0, 0)
  check_number("alpha", np.float32(0.5), 0, numpy=True)
  for bad in (math.inf, math.nan, True, "1", None):
    with pytest.raises(ValueError, match=r"^optimizer\.lr: got .*; it must be a finite number\.$"):
      check_number("optimizer.lr", bad)
  with pytest.raises(ValueError, match=r"^weight: got 0; it must be a finite number > 0\.$"):
    check_number("weight", 0, 0, above=True)
  with pytest.raises(ValueError, match=r"^alpha: got -0\.5; it must be a finite number >= 0\.$"):
    check_number("alpha", -0.5, 0)
  with pytest.raises(ValueError, match="it must be a finite number"):
    check_number("alpha", np.float32(0.5), 0)


def test_check_bool():
  check_bool("pack", True)
  check_bool("pack", False)
  for bad in (1, 0, np.bool_(True), "True", None):
    with pytest.raises(ValueError, match=r"^train\.pack: got .*; it must be True or False\.$"):
      check_bool("train.pack", bad)


# The sites keep refusing and accepting what they did ------------------------------------------


@pytest.mark.parametrize(
  "check,message",
  [
    (lambda: TrainConfig(n_steps=True).check(), "train.n_steps: got True; it must be an integer"),
    (lambda: TrainConfig(seed=np.int64(1)).check(), "train.seed: got "),
    (lambda: TrainConfig(n_devices=True).check(), "train.n_devices: got True; it must be None"),
    (lambda: TrainConfig(pack=1).check(), "train.pack: got 1; it must be True or False."),
    (lambda: EvalConfig(every=False).check(10, 1), "eval.every: got False; it must be"),
    (lambda: EvalConfig(steps=(0, True)).check(10, 1), "eval.steps: got (0, True)"),
    (lambda: OptimizerConfig(b1=True).check(), "optimizer.b1: got True; it must be a finite"),
    (lambda: OptimizerConfig(lr=math.nan).check(), "optimizer.lr: got nan; it must be a finite"),
    (lambda: ModelConfig(n_layers=True).resolved(), "model.n_layers: got True; it must be an"),
    (lambda: ModelConfig(key_size=True).resolved(), "model.key_size: got True; it must be None"),
    (lambda: schedules.Uniform(True), "n_individuals: got True; it must be an integer >= 1."),
    (lambda: schedules.PowerLaw(10, np.inf), "alpha: got inf; it must be a finite number >= 0."),
    (lambda: check_groups((("a", 0, True),), 10), "eval_groups: a = [0, True) must have integer"),
    (lambda: TrainConfig(progress_seconds=True).check(), "train.progress_seconds: got True"),
    (lambda: ToyMemoryConfig(seed=True).check(), "seed: got True; it must be an integer"),
    (lambda: ToyMemoryConfig(weight_replay=True).check(), "weight_replay: got True; it must"),
    (lambda: FinetuneConfig(source="x", weight_replay=True).check(), "weight_replay: got True"),
    (lambda: load_lists(max_values=True), "max_values: got True; it must be None"),
  ],
)
def test_sites_refuse_bools_and_name_the_field(check, message):
  with pytest.raises(ValueError, match="^" + re.escape(message)):
    check()


def test_schedules_still_take_numpy_scalars():
  assert schedules.Uniform(np.int64(10)).n_individuals == 10
  schedules.PowerLaw(np.int32(10), np.float32(0.5))


def test_phase_rule_skips_bools_and_non_finite_records():
  base = {"no_knowledge_baseline": 2.0}
  records = [
    {"step": 0, "attribute_loss": 2.0, **base},
    {"step": 1, "attribute_loss": math.nan, **base},
    {"step": 2, "attribute_loss": True, **base},  # not a loss: skipped, not read as 1
    {"step": 3, "attribute_loss": 1.0, **base},
    {"step": 4, "attribute_loss": 1.0, **base},
  ]
  assert phase_ends(records)["plateau_end_step"] == 3
