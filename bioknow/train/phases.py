"""The phase rules, stated once: where the first phase and the plateau end, from metrics records.

Plain Python over records (no jax; numpy only through bioknow.validate), so that the training
loop (which stops at the plateau's end), the experiments (which write the ends into
summary.json) and everything that reads finished runs (bioknow.analysis, the figures, the
claims) apply one definition without starting an accelerator. bioknow.analysis.ends places
the same crossings between evaluations.
"""

from collections.abc import Sequence

from bioknow.validate import is_number

FIRST_PHASE_FACTOR = 1.05  # the first phase ends when the loss is within 5% of the baseline
PLATEAU_FACTOR = 0.99  # the plateau ends when the loss falls below 0.99 x the baseline
# A rule must hold at this many consecutive evaluations (or through the last one), so that one
# noisy evaluation neither ends the first phase nor ends the plateau.
CONFIRM = 2


def confirmed(holds: Sequence[bool], finished: bool = True) -> int | None:
  """The index of the first evaluation from which `holds` is true for CONFIRM evaluations in a
  row (in a finished run, a run of true values through the last evaluation also counts)."""
  for i in range(len(holds)):
    window = holds[i : i + CONFIRM]
    if all(window) and (len(window) == CONFIRM or (finished and i + len(window) == len(holds))):
      return i
  return None


def _first_step(steps: list[int], holds: list[bool], finished: bool) -> int | None:
  """The first step from which `holds` is true for CONFIRM evaluations in a row; in a
  finished run, a run of true values that reaches the last evaluation also counts."""
  i = confirmed(holds, finished)
  return None if i is None else steps[i]


def phase_ends(records: list[dict], finished: bool = True) -> dict:
  """first_phase_end_step and plateau_end_step, overall and per attribute type (keys
  'plateau_end_step/birth_date', ...), from metrics records.

  first_phase_end_step: the first evaluation from which the attribute loss is within 5% of the
  no-knowledge baseline (loss <= 1.05 x baseline) for CONFIRM evaluations in a row.
  plateau_end_step: the first evaluation from which it is below 0.99 x the baseline (PAPER.md's
  rule) for CONFIRM evaluations in a row. None where a phase never ends. Per attribute type,
  the same rules compare 'attribute_loss/<name>' with 'no_knowledge_baseline/<name>'.
  finished=False (a run still training): a rule that holds only at the last evaluation is
  not yet confirmed.
  """
  out = {}
  names = [
    k.split("/", 1)[1]
    for k in (records[0] if records else {})
    if k.startswith("no_knowledge_baseline/")
  ]
  for suffix in ("", *(f"/{n}" for n in names)):
    kept = [
      r
      for r in records
      if is_number(r.get(f"attribute_loss{suffix}"), finite=True)
      and is_number(r.get(f"no_knowledge_baseline{suffix}"), finite=True)
    ]
    steps = [int(r["step"]) for r in kept]
    ratio = [r[f"attribute_loss{suffix}"] / r[f"no_knowledge_baseline{suffix}"] for r in kept]
    out[f"first_phase_end_step{suffix}"] = _first_step(
      steps, [x <= FIRST_PHASE_FACTOR for x in ratio], finished
    )
    out[f"plateau_end_step{suffix}"] = _first_step(
      steps, [x < PLATEAU_FACTOR for x in ratio], finished
    )
  return out
