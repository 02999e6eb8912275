"""analysis.ends' resolution against values computed by hand: a crossing is resolved with the
noise of the run's own evaluation set, which scales as 1 / sqrt(sequences evaluated)."""

import math

import numpy as np
import pytest

from bioknow.analysis import ends as E

BASELINE = 2.0
# Evaluated every 10 steps; the ratio falls from 0.995 to 0.98667 between steps 30 and 40,
# through 0.99: a slope of 0.00833 / 10 steps, so the noise of 256 sequences (0.005) spans 6
# steps and that of 128 (0.00707) 8.49, both between half the spacing (5) and the spacing (10).
STEPS = np.array([0, 10, 20, 30, 40, 50])
RATIOS = np.array([1.2, 1.02, 1.0, 0.995, 0.995 - 0.05 / 6, 0.98])


def _run(ratios, n_sequences=None) -> dict:
  """A loaded run (records and config leaves) with loss / baseline `ratios` at STEPS."""
  records = [
    {"step": int(s), "attribute_loss": r * BASELINE, "no_knowledge_baseline": BASELINE}
    for s, r in zip(STEPS, ratios)
  ]
  config = {} if n_sequences is None else {"eval.n_sequences": n_sequences}
  return {"records": records, "config": config, "summary": {}}


def test_noise_scales_with_the_evaluation_set():
  assert E.noise() == E.NOISE == 0.005  # NOISE keeps its meaning: 256 sequences
  assert E.noise(128) == pytest.approx(0.005 * math.sqrt(2))
  assert E.noise(1_024) == pytest.approx(0.0025)


def test_a_128_sequence_crossing_is_resolved_sqrt2_times_coarser():
  fine = E.crossing(STEPS, RATIOS, 0.99)
  coarse = E.crossing(STEPS, RATIOS, 0.99, n_sequences=128)
  assert fine.resolution == pytest.approx(6.0)  # the noise term, inside [5, 10]
  assert coarse.resolution == pytest.approx(6.0 * math.sqrt(2))
  assert coarse.step == fine.step == pytest.approx(36.0)  # where it is placed does not change
  # Bounded as before: a larger set cannot resolve below half the spacing.
  assert E.crossing(STEPS, RATIOS, 0.99, n_sequences=4_096).resolution == pytest.approx(5.0)


def test_phase_ends_read_the_runs_own_evaluation_set():
  """The population sweep evaluates 128 sequences: its plateau end is resolved with that
  noise; a run without the config entry keeps 256's."""
  small = E.resolved_ends(_run(RATIOS, 128))
  default = E.resolved_ends(_run(RATIOS))
  assert E.eval_sequences(_run(RATIOS, 128)) == 128 and E.eval_sequences(_run(RATIOS)) == 256
  assert default[1] == E.plateau_end(_run(RATIOS)["records"])
  assert small[1].resolution == pytest.approx(math.sqrt(2) * default[1].resolution)
  assert small[1].resolution == pytest.approx(6.0 * math.sqrt(2))
  # The first phase ends steeply (1.2 -> 1.02 over steps 0-10, through 1.05 at 8.33), where
  # half the spacing decides: unchanged.
  assert small[0] == default[0] == E.End(pytest.approx(10 * 0.15 / 0.18), 5.0, True)
