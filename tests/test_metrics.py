"""Metrics against values computed by hand on tiny, fully specified inputs."""

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest

from bioknow.data.biography import (
  ROLE_FIRST_VALUE,
  ROLE_LAST_NAME,
  ROLE_NAME,
  ROLE_PAD,
  ROLE_TEXT,
  ROLE_VALUE,
)
from bioknow.train import metrics
from bioknow.train.evaluation import EvalConfig, phase_ends

# One biography, vocabulary of 4: BOS, name, last name, value v1, value v2, text, pad.
TOKENS = np.array([[0, 1, 2, 3, 1, 2, 0]])
ROLES = np.array(
  [[ROLE_TEXT, ROLE_NAME, ROLE_LAST_NAME, ROLE_FIRST_VALUE, ROLE_VALUE, ROLE_TEXT, ROLE_PAD]]
)
ATTRS = np.array([[-1, 0, 0, 0, 0, 0, -1]])
# Row t is the distribution predicting token t + 1.
PROBS = np.array(
  [
    [
      [0.1, 0.7, 0.1, 0.1],  # predicts token 1 (p = 0.7)
      [0.1, 0.1, 0.6, 0.2],  # predicts token 2 (p = 0.6)
      [0.2, 0.2, 0.1, 0.5],  # predicts the first value token 3 (p = 0.5, argmax right)
      [0.3, 0.4, 0.2, 0.1],  # predicts value token 1 (p = 0.4, argmax right)
      [0.25, 0.25, 0.25, 0.25],  # predicts token 2 (p = 0.25)
      [0.4, 0.3, 0.2, 0.1],  # predicts padding (not a target)
      [0.25, 0.25, 0.25, 0.25],
    ]
  ]
)
LOGITS = jnp.log(jnp.asarray(PROBS))


def test_next_token_loss_averages_real_targets():
  loss = metrics.next_token_loss(LOGITS, jnp.asarray(TOKENS), jnp.asarray(ROLES))
  expected = -(math.log(0.7) + math.log(0.6) + math.log(0.5) + math.log(0.4) + math.log(0.25)) / 5
  assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_attribute_loss_accuracy_and_confidence():
  scores = metrics.token_scores(LOGITS, jnp.asarray(TOKENS))
  out = metrics.attribute_metrics(scores, jnp.asarray(ROLES), jnp.asarray(ATTRS), 2)
  assert out["loss"].shape == (1, 2)
  # Summed over the value's two tokens, not averaged.
  assert float(out["loss"][0, 0]) == pytest.approx(-(math.log(0.5) + math.log(0.4)), rel=1e-6)
  assert float(out["loss"][0, 1]) == 0.0  # attribute 1 has no value here
  assert bool(out["correct"][0, 0])
  assert float(out["max_prob"][0, 0]) == pytest.approx(0.5, rel=1e-6)
  entropy = -sum(p * math.log(p) for p in PROBS[0, 2])
  assert float(out["entropy"][0, 0]) == pytest.approx(entropy, rel=1e-6)


def test_one_wrong_value_token_makes_the_attribute_wrong():
  probs = PROBS.copy()
  probs[0, 3] = [0.1, 0.2, 0.6, 0.1]  # argmax 2, value token is 1
  scores = metrics.token_scores(jnp.log(jnp.asarray(probs)), jnp.asarray(TOKENS))
  out = metrics.attribute_metrics(scores, jnp.asarray(ROLES), jnp.asarray(ATTRS), 2)
  assert not bool(out["correct"][0, 0])


def test_attention_statistics_of_uniform_causal_attention():
  # BOS, text, name, name, last name, text, first value, value; one sentence (id 0).
  roles = np.array(
    [
      [
        ROLE_TEXT,
        ROLE_TEXT,
        ROLE_NAME,
        ROLE_NAME,
        ROLE_LAST_NAME,
        ROLE_TEXT,
        ROLE_FIRST_VALUE,
        ROLE_VALUE,
      ]
    ]
  )
  sentence = np.array([[-1, 0, 0, 0, 0, 0, 0, 0]])
  t = roles.shape[1]
  uniform = np.tril(np.ones((t, t))) / np.arange(1, t + 1)[:, None]
  patterns = jnp.asarray(np.broadcast_to(uniform, (1, 2, 3, t, t)))  # B, L, H
  stats = metrics.attention_statistics(patterns, jnp.asarray(roles), jnp.asarray(sentence))
  # Last name token (position 4) sees 5 tokens; the other name tokens are 2 of them.
  np.testing.assert_allclose(stats["attn_name_to_name"], [2 / 5] * 2, rtol=1e-6)
  # Position 5 predicts the first value; it sees 6 tokens: 3 name tokens, 2 text tokens of
  # the sentence (BOS belongs to none).
  np.testing.assert_allclose(stats["attn_value_to_name"], [3 / 6] * 2, rtol=1e-6)
  np.testing.assert_allclose(stats["attn_value_to_text"], [2 / 6] * 2, rtol=1e-6)
  np.testing.assert_allclose(stats["attn_sharpness"], [1.0] * 2, rtol=1e-6)


def test_sharpness_of_one_hot_attention_is_zero():
  roles = np.full((1, 4), ROLE_TEXT)
  patterns = jnp.asarray(np.broadcast_to(np.eye(4), (1, 1, 1, 4, 4)))
  stats = metrics.attention_statistics(patterns, jnp.asarray(roles), jnp.zeros((1, 4), int))
  np.testing.assert_allclose(stats["attn_sharpness"], [0.0], atol=1e-7)


def test_auroc_matches_pairwise_counting():
  rng = np.random.default_rng(0)
  pos, neg = rng.normal(1, 1, 60).round(1), rng.normal(0, 1, 80).round(1)  # with ties
  pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
  assert metrics.auroc(pos, neg) == pytest.approx(np.mean(pairs), abs=1e-12)
  assert metrics.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_eval_schedule_of_the_paper():
  steps = EvalConfig().schedule(16_000)
  assert steps[:3] == [0, 125, 250] and 2_000 in steps and steps[-1] == 16_000
  assert len([s for s in steps if s > 2_000]) == 28  # 32 spaced, 4 of them <= 2k
  assert EvalConfig(steps=(5, 10)).schedule(20) == [5, 10, 20]
  with pytest.raises(ValueError, match="eval.steps"):
    EvalConfig(steps=(5, 30)).check(20, 1)


def test_phase_ends():
  b = 6.78
  records = [
    {"step": s, "attribute_loss": l, "no_knowledge_baseline": b}
    for s, l in [(0, 30.0), (10, 7.0), (20, 6.9), (30, 6.8), (40, 6.5), (50, 2.0)]
  ]
  assert phase_ends(records) == {"plateau_end_step": 40, "first_phase_end_step": 10}


def test_phase_ends_need_two_evaluations_in_a_row():
  """One noisy evaluation below 0.99 x baseline (step 30) or within 5% (step 10) ends no
  phase; a condition that holds through the last evaluation does."""
  b = 2.0
  losses = [
    (0, 9.0),
    (10, 2.09),
    (20, 2.5),
    (30, 1.97),
    (40, 2.01),
    (50, 2.05),
    (60, 1.9),
    (70, 1.95),
    (80, 1.5),
  ]
  records = [{"step": s, "attribute_loss": l, "no_knowledge_baseline": b} for s, l in losses]
  assert phase_ends(records) == {"first_phase_end_step": 30, "plateau_end_step": 60}
  last = records[:1] + [records[-1]]
  assert phase_ends(last) == {"first_phase_end_step": 80, "plateau_end_step": 80}
  # While the run trains, the last evaluation alone confirms nothing.
  assert phase_ends(last, finished=False) == {
    "first_phase_end_step": None,
    "plateau_end_step": None,
  }
  assert phase_ends(records, finished=False)["plateau_end_step"] == 60
  assert phase_ends(records[:3]) == {"first_phase_end_step": None, "plateau_end_step": None}


def test_phase_ends_per_attribute():
  """Each attribute type against its own baseline: birth dates (baseline 4) end their plateau
  at step 20, majors (baseline 2) never do; the mean follows the overall keys."""
  rows = [(0, 9.0, 5.0), (10, 4.1, 2.0), (20, 3.9, 2.0), (30, 3.0, 1.99), (40, 2.0, 2.0)]
  records = [
    {
      "step": s,
      "attribute_loss": (d + m) / 2,
      "no_knowledge_baseline": 3.0,
      "attribute_loss/birth_date": d,
      "no_knowledge_baseline/birth_date": 4.0,
      "attribute_loss/major": m,
      "no_knowledge_baseline/major": 2.0,
    }
    for s, d, m in rows
  ]
  ends = phase_ends(records)
  assert ends["first_phase_end_step/birth_date"] == 10
  assert ends["plateau_end_step/birth_date"] == 20
  assert ends["first_phase_end_step/major"] == 10 and ends["plateau_end_step/major"] is None
  assert ends["first_phase_end_step"] == 10 and ends["plateau_end_step"] == 20


@pytest.mark.slow
def test_value_token_scores_are_token_scores_at_the_value_tokens():
  """Scoring value tokens only, from hidden states and the tied table: at value tokens the
  scores of the whole logits, elsewhere the unscored fill; extra rows (fillers) change
  nothing. Two rows, the second with its value tokens elsewhere."""
  rng = np.random.default_rng(0)
  tokens = np.concatenate([TOKENS, TOKENS[:, ::-1]])
  roles = np.concatenate(
    [
      ROLES,
      np.array(
        [[ROLE_TEXT, ROLE_TEXT, ROLE_VALUE, ROLE_FIRST_VALUE, ROLE_TEXT, ROLE_TEXT, ROLE_PAD]]
      ),
    ]
  )
  h = jnp.asarray(rng.normal(size=(2, 7, 3)), jnp.float32)
  embed = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  full = metrics.token_scores(h @ embed.T, jnp.asarray(tokens))
  is_value = roles >= ROLE_VALUE
  for n_scored in (int(is_value.sum()), 9):
    got = metrics.value_token_scores(h, embed, jnp.asarray(tokens), jnp.asarray(roles), n_scored)
    for k, v in got.items():
      np.testing.assert_allclose(np.asarray(v)[is_value], np.asarray(full[k])[is_value], rtol=1e-6)
      assert (np.asarray(v)[~is_value] == metrics.UNSCORED[k]).all()
