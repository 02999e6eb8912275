import numpy as np
import pytest
from absl import flags

from bioknow.data import pipeline
from bioknow.data import schedules as sch
from bioknow.data.biography import ROLE_PAD


def _collect(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


@pytest.fixture
def schedule(small_dataset):
  return sch.PowerLaw(small_dataset.config.n_individuals, alpha=0.7)


def test_same_batches_whatever_the_threads(small_dataset, schedule):
  kw = dict(batch_size=16, n_steps=6, seed=1)
  one = list(pipeline.training_batches(small_dataset, schedule, num_threads=1, **kw))
  four = list(pipeline.training_batches(small_dataset, schedule, num_threads=4, **kw))
  _assert_same(one, four)
  assert [int(b["step"]) for b in one] == list(range(6))
  other = list(pipeline.training_batches(small_dataset, schedule, batch_size=16, n_steps=6, seed=2))
  assert not np.array_equal(one[0]["tokens_BxT"], other[0]["tokens_BxT"])


@pytest.mark.slow
def test_same_batches_with_worker_processes(small_dataset, schedule):
  flags.FLAGS.mark_as_parsed()  # grain's mp_prefetch reads an absl flag
  kw = dict(batch_size=8, n_steps=4, seed=1)
  inline = list(pipeline.training_batches(small_dataset, schedule, **kw))
  it = iter(pipeline.training_batches(small_dataset, schedule, num_workers=2, **kw))
  try:
    _assert_same(inline, _collect(it, 4))
  finally:
    it.close()


def test_restored_iterator_continues_batch_for_batch(small_dataset, schedule):
  kw = dict(batch_size=8, n_steps=10, seed=5, num_threads=2)
  uninterrupted = list(pipeline.training_batches(small_dataset, schedule, **kw))
  first = iter(pipeline.training_batches(small_dataset, schedule, **kw))
  _collect(first, 4)
  state = first.get_state()
  resumed = iter(pipeline.training_batches(small_dataset, schedule, **kw))
  resumed.set_state(state)
  _assert_same(uninterrupted[4:], list(resumed))


def test_batches_follow_the_schedule_of_their_step(small_dataset):
  warm = sch.Warmup(
    small_dataset.config.n_individuals, indiv_warmup=10, epochs_warmup=0.02, batch_size=4
  )  # switch after 10 steps
  batches = list(pipeline.training_batches(small_dataset, warm, batch_size=4, n_steps=30, seed=0))
  assert max(b["individual_B"].max() for b in batches[:10]) < 10
  assert max(b["individual_B"].max() for b in batches[10:]) >= 10


def test_eval_sets_are_fixed_and_use_the_right_pools(small_dataset):
  ds = small_dataset
  a = pipeline.standard_eval_sets(ds, 300, seed=0, groups={"first_ten": (0, 10)})
  b = pipeline.standard_eval_sets(ds, 300, seed=0, groups={"first_ten": (0, 10)})
  assert set(a) == {"seen", "seen_train_templates", "heldout", "first_ten"}
  for name in a:
    np.testing.assert_array_equal(a[name].tokens_BxT, b[name].tokens_BxT)
  assert a["seen"].individual_B.max() < ds.config.n_individuals
  assert (a["heldout"].individual_B >= ds.config.n_individuals).all()
  assert len(np.unique(a["heldout"].individual_B)) == 100  # all held-out people, then repeats
  assert set(np.unique(a["first_ten"].individual_B)) == set(range(10))
  np.testing.assert_array_equal(a["seen"].individual_B, a["seen_train_templates"].individual_B)
  eval_pool = ds.population.pool("eval")
  used = eval_pool[a["seen"].individual_B[:, None], a["seen"].attribute_BxS]
  assert (used == a["seen"].template_BxS[..., None]).any(-1).all()
  used = eval_pool[
    a["seen_train_templates"].individual_B[:, None], a["seen_train_templates"].attribute_BxS
  ]
  assert not (used == a["seen_train_templates"].template_BxS[..., None]).any()
  with pytest.raises(ValueError, match="groups: bad"):
    pipeline.standard_eval_sets(ds, 10, seed=0, groups={"bad": (0, 10**9)})


def test_plain_rows_are_cut_to_the_planned_length_and_only_padding_goes(small_dataset, schedule):
  ds = small_dataset
  row_len = pipeline.plain_row_len(ds, schedule, 16, 1)
  assert row_len % pipeline.ROW_MULTIPLE == 0 and row_len < ds.seq_len
  kw = dict(batch_size=16, n_steps=4, seed=1)
  full = list(pipeline.training_batches(ds, schedule, **kw))
  cut = list(pipeline.training_batches(ds, schedule, row_len=row_len, num_threads=1, **kw))
  # The same seed gives the same batches, whatever the threads.
  _assert_same(
    cut, list(pipeline.training_batches(ds, schedule, row_len=row_len, num_threads=3, **kw))
  )
  for a, b in zip(full, cut):
    t = b["tokens_BxT"].shape[1]
    assert t == row_len >= a["length_B"].max()
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(b[k], a[k][:, :t] if k.endswith("_BxT") else a[k])
    assert (a["role_BxT"][:, t:] == ROLE_PAD).all()
  # A batch longer than the planned length keeps its longest biography whole.
  longest = int(full[0]["length_B"].max())
  assert pipeline.trim(full[0], 8)["tokens_BxT"].shape[1] == pipeline.round_up(longest)


def test_a_step_computes_the_mean_real_tokens_plus_six_sigma(small_dataset, schedule):
  """compute_tokens by hand from the sampled lengths; every batch of 200 steps fits in it, and
  it is well under the padded batch."""
  ds = small_dataset
  lengths = pipeline.sampled_lengths(ds, schedule, 1)
  assert len(lengths) == 4096
  k = pipeline.compute_tokens(ds, schedule, 16, 1)
  by_hand = 16 * lengths.mean() + 6 * lengths.std() * 4
  assert k % pipeline.ROW_MULTIPLE == 0 and by_hand <= k < by_hand + pipeline.ROW_MULTIPLE
  real = [pipeline.batch_at(ds, schedule, 16, 1, s)["length_B"].sum() for s in range(200)]
  assert max(real) <= k < 16 * pipeline.plain_row_len(ds, schedule, 16, 1)


@pytest.mark.parametrize(
  "schedule, kwargs, message",
  [
    (
      sch.Uniform(2_050),
      {},
      r"^schedule: it draws ids \[0, 2050\) but the training ids are \[0, 2000\); the "
      r"held-out ids \[2000, 2100\) must never be trained on\.$",
    ),
    (sch.Uniform(100), {"batch_size": 0}, r"^batch_size: got 0; it must be an integer"),
    (sch.Uniform(100), {"batch_size": 2.5}, r"^batch_size: got 2.5; it must be an integer"),
    (sch.Uniform(100), {"n_steps": True}, r"^n_steps: got True; it must be an integer"),
    (sch.Uniform, {}, r"^schedule: got a type; give a built schedule"),
  ],
)
def test_training_batches_check_their_arguments_when_called(
  small_dataset, schedule, kwargs, message
):
  arguments = {"batch_size": 4, "n_steps": 3, "seed": 0} | kwargs
  with pytest.raises(ValueError, match=message):
    pipeline.training_batches(small_dataset, schedule, **arguments)  # not iterated
