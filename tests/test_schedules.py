"""Schedules: exact probabilities, and empirical frequencies that pass a chi-square test."""

import math

import numpy as np
import pytest

from bioknow.data import schedules as sch


def _chi2_rejects(counts, p, p_value=1e-6):
  """Pearson chi-square goodness of fit; the critical value uses the Wilson-Hilferty
  approximation of the chi-square quantile (accurate to <1% for dof >= 3)."""
  keep = p > 0
  expected = counts.sum() * p[keep]
  chi2 = ((counts[keep] - expected) ** 2 / expected).sum()
  dof = keep.sum() - 1
  z = {1e-6: 4.753}[p_value]
  critical = dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
  return chi2 > critical


def _counts(distribution, size, n=400_000, seed=0):
  ids = distribution.sample(np.random.default_rng(seed), n)
  assert ids.min() >= 0 and ids.max() < size
  return np.bincount(ids, minlength=size)


@pytest.mark.parametrize(
  "schedule,size",
  [
    (sch.Uniform(100), 100),
    (sch.PowerLaw(200, alpha=0.8, seed=1), 200),
    (sch.PowerLaw(200, alpha=1.5, seed=1), 200),
    (sch.Celebrities(100, n_celebrities=10, weight_celebrities=8), 100),
    (sch.FinetuneMixture(n_pretrain=50, new_start=60, new_stop=80, weight_replay=0.25), 80),
    (sch.FinetuneMixture(n_pretrain=50, new_start=60, new_stop=80, weight_replay=0), 80),
  ],
)
def test_empirical_frequencies_match_probabilities(schedule, size):
  d = schedule.at(0)
  p = d.probabilities(size)
  assert p.sum() == pytest.approx(1.0)
  assert not _chi2_rejects(_counts(d, size), p)


def test_the_chi2_test_has_power():
  """Frequencies of alpha = 0.8 are rejected as draws of alpha = 0.7."""
  counts = _counts(sch.PowerLaw(200, 0.8, seed=1).at(0), 200)
  assert _chi2_rejects(counts, sch.PowerLaw(200, 0.7, seed=1).at(0).probabilities(200))


def test_power_law_probabilities_are_exact_and_ranked_by_a_seeded_permutation():
  s = sch.PowerLaw(1000, alpha=0.6, seed=3)
  p = s.at(0).probabilities(1000)
  ranks = s.rank_of_id
  np.testing.assert_array_equal(np.sort(ranks), np.arange(1, 1001))
  h = (np.arange(1, 1001) ** -0.6).sum()
  np.testing.assert_allclose(p, ranks**-0.6 / h, rtol=1e-12)
  assert p[ranks == 1000][0] == pytest.approx(1000**-0.6 / h, rel=1e-12)  # smallest, kept
  np.testing.assert_array_equal(ranks, sch.PowerLaw(1000, 0.9, seed=3).rank_of_id)
  assert not np.array_equal(ranks, sch.PowerLaw(1000, 0.6, seed=4).rank_of_id)


def test_power_law_at_a_million_individuals_keeps_tiny_weights():
  d = sch.PowerLaw(1_000_000, alpha=1.0).at(0)
  p = d.probabilities(1_000_000)
  assert p.min() > 0 and p.max() / p.min() == pytest.approx(1e6, rel=1e-9)
  assert d.sample(np.random.default_rng(0), 10).shape == (10,)


def test_celebrity_mass():
  p = sch.Celebrities(100, 10, 8).at(0).probabilities(100)
  assert p[:10].sum() == pytest.approx(80 / 170)
  assert p[0] / p[50] == pytest.approx(8)


def test_replay_weight_two_with_two_old_and_one_new():
  d = sch.FinetuneMixture(n_pretrain=2, new_start=2, new_stop=3, weight_replay=2).at(0)
  np.testing.assert_allclose(d.probabilities(3), [0.4, 0.4, 0.2])
  assert not _chi2_rejects(_counts(d, 3), np.array([0.4, 0.4, 0.2]))


def test_warmup_switches_at_exactly_the_right_step():
  s = sch.Warmup(1000, indiv_warmup=100, epochs_warmup=2, batch_size=32)
  assert s.switch_step == 62  # 2 epochs * 1000 / 32 = 62.5 steps
  assert s.at(61).stops == (100,) and s.at(62).stops == (1000,)
  ids = s.at(61).sample(np.random.default_rng(0), 10_000)
  assert ids.max() < 100
  assert s.at(62).sample(np.random.default_rng(0), 10_000).max() >= 100


def test_sequential_groups_come_in_order():
  s = sch.Sequential(100, n_groups=4, n_repeats=2, n_steps=80)
  groups = [s.group_at(step) for step in range(80)]
  assert groups == [g for _ in range(2) for g in range(4) for _ in range(10)]
  assert s.group_at(10_000) == 3
  for step in (0, 15, 79):
    lo, hi = s.group_bounds(s.group_at(step))
    ids = s.at(step).sample(np.random.default_rng(step), 1000)
    assert ids.min() >= lo and ids.max() < hi and hi - lo == 25


def test_growth_linear_and_geometric():
  lin = sch.Growth(n_start=100, n_individuals=1000, growth_steps=10)
  geo = sch.Growth(n_start=100, n_individuals=1000, growth_steps=10, mode="geometric")
  assert [lin.active(s) for s in (0, 5, 10, 99)] == [100, 550, 1000, 1000]
  assert [geo.active(s) for s in (0, 5, 10)] == [100, 316, 1000]
  assert all(np.diff([geo.active(s) for s in range(12)]) >= 0)
  assert lin.at(5).sample(np.random.default_rng(0), 10_000).max() == 549


def test_phases_compose_a_warmup_and_a_power_law():
  s = sch.Phases((sch.Uniform(10), sch.PowerLaw(1000, 0.5)), steps=(5,))
  assert s.at(4).stops == (10,)
  assert isinstance(s.at(5), sch.Weighted)


@pytest.mark.parametrize(
  "build,match",
  [
    (lambda: sch.PowerLaw(10, alpha=-0.1), "alpha: got -0.1"),
    (lambda: sch.Celebrities(10, n_celebrities=11, weight_celebrities=2), "n_celebrities: got 11"),
    (lambda: sch.Celebrities(10, n_celebrities=2, weight_celebrities=0), "weight_celebrities"),
    (lambda: sch.Warmup(10, indiv_warmup=11, epochs_warmup=1, batch_size=2), "indiv_warmup"),
    (lambda: sch.Sequential(10, n_groups=11, n_repeats=1, n_steps=100), "n_groups: got 11"),
    (lambda: sch.Sequential(10, n_groups=2, n_repeats=1, n_steps=-1), "n_steps: got -1"),
    (lambda: sch.Growth(10, 100, growth_steps=-5), "growth_steps: got -5"),
    (lambda: sch.Phases((sch.Uniform(3), sch.Uniform(4)), steps=(-1,)), "steps: got -1"),
    (lambda: sch.FinetuneMixture(100, new_start=50, new_stop=150, weight_replay=1), "overlap"),
    (
      lambda: sch.FinetuneMixture(100, new_start=100, new_stop=150, weight_replay=-1),
      "weight_replay",
    ),
  ],
)
def test_bad_input_is_one_sentence(build, match):
  with pytest.raises(ValueError, match=match):
    build()
