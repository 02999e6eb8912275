import numpy as np
import pytest

from bioknow.data.population import make_population

KW = dict(
  n_first_names=900,
  n_last_names=1000,
  n_values_A=(74772, 800, 200, 100, 500, 800),
  n_templates=25,
  n_templates_train=20,
  n_templates_eval=5,
)


def _pop(seed=0, n=5_000, heldout=500, **kw):
  return make_population(n_individuals=n, n_heldout=heldout, seed=seed, **(KW | kw))


def test_same_seed_same_population():
  a, b = _pop(seed=1), _pop(seed=1)
  for field in ("first_N", "middle_N", "last_N", "values_NxA", "templates_NxAxK"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert not np.array_equal(a.values_NxA, _pop(seed=2).values_NxA)


def test_names_are_unique_including_heldout():
  p = _pop(n=50_000, heldout=5_000, n_first_names=30, n_last_names=100)  # 90k names for 55k
  codes = (p.first_N.astype(np.int64) * 30 + p.middle_N) * 100 + p.last_N
  assert len(np.unique(codes)) == p.size == 55_000
  assert p.first_N.max() < 30 and p.last_N.max() < 100


def test_attributes_cover_their_ranges_uniformly():
  p = _pop(n=100_000, heldout=0)
  for a, n in enumerate(KW["n_values_A"]):
    assert p.values_NxA[:, a].min() >= 0 and p.values_NxA[:, a].max() < n
  counts = np.bincount(p.values_NxA[:, 3], minlength=100)  # 100 majors, 1000 expected each
  chi2 = ((counts - 1000) ** 2 / 1000).sum()
  assert chi2 < 160  # 99 degrees of freedom: p(chi2 > 160) < 1e-4


def test_template_split_is_a_random_partition_per_individual():
  p = _pop()
  np.testing.assert_array_equal(
    np.sort(p.templates_NxAxK, axis=2), np.broadcast_to(np.arange(25), p.templates_NxAxK.shape)
  )
  train, evaluation = p.pool("train"), p.pool("eval")
  assert train.shape == (5_500, 6, 20) and evaluation.shape == (5_500, 6, 5)
  assert not (train[..., :, None] == evaluation[..., None, :]).any()
  assert len({tuple(row) for row in evaluation[:, 0]}) > 5_000  # splits differ across people


def test_heldout_ids_follow_the_training_population():
  p = _pop(n=100, heldout=7)
  np.testing.assert_array_equal(p.heldout_ids, np.arange(100, 107))


def test_too_many_individuals_or_templates_are_rejected():
  with pytest.raises(ValueError, match="n_individuals: .* unique full names"):
    _pop(n=8, heldout=1, n_first_names=2, n_last_names=2)
  with pytest.raises(ValueError, match="n_templates_train"):
    _pop(n_templates_train=21)
