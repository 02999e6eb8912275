"""The fine-tuning claims as measurements on runs, in the shape of rules.py: the language
model's forgetting of old people when fine-tuned on new ones (claim 6) and the toy associative
memory's (claim 7)."""

import math

from bioknow.claims import attributes as A
from bioknow.claims.rules import (
  HOLDS,
  NO_RUNS,
  NOT_SHOWN,
  WEAK,
  Score,
  finished,
  fmt,
  seed_of,
  spread,
)
from bioknow.figures import runs as R

# Fine-tuning (toy memory and language model): replay, and fine-tuning on rare seen people,
# must keep this share of the forgetting away.
KEPT_AWAY = 0.5
# "More new items, more forgetting": the largest size must forget this much more accuracy
# than the smallest, above the 0.02-0.04 that seeds of one size differ by at the CPU scale,
# so forgetting that has saturated (everything erased at every size) does not count as growth.
GROWTH_MARGIN = 0.05
# Fine-tuning: "within the first few hundred steps" (the paper), read as half of the forgetting.
FAST_STEPS = 300


def _grows(means: list[float]) -> bool:
  """Whether forgetting means by size (ascending) grow with every step up and by at least
  GROWTH_MARGIN from the smallest size to the largest, over at least 3 sizes."""
  return (
    len(means) >= 3
    and all(b > a for a, b in zip(means, means[1:]))
    and means[-1] - means[0] >= GROWTH_MARGIN
  )


def _plain_by_size(runs: list[dict], size: str) -> dict[int, list[dict]]:
  """The runs without replay, grouped by their `size` new items, smallest first."""
  plain = [r for r in runs if not R.param(r, "weight_replay")]
  return dict(sorted(R.group_by(plain, lambda r: int(R.param(r, size))).items()))


def _forgetting_grid(runs: list[dict], size: str, forgetting) -> tuple:
  """What the fine-tuning claims share, over runs with `size` new items: the forgetting by
  size without replay ({size: spread}), whether its mean grows with every step up and by at
  least GROWTH_MARGIN from the smallest size to the largest (at least 3 sizes), the heaviest
  replay weight, the share of forgetting it keeps away against no replay
  at the same size and seed (spread), and whether that share reaches KEPT_AWAY in every run."""
  by_n = _plain_by_size(runs, size)
  plain = [r for g in by_n.values() for r in g]
  drops = {n: spread([forgetting(r) for r in g]) for n, g in by_n.items()}
  grows = _grows([d["mean"] for d in drops.values()])
  replayed = [r for r in runs if R.param(r, "weight_replay")]
  top = max((R.param(r, "weight_replay") for r in replayed), default=None)
  saved = []
  for r in (r for r in replayed if R.param(r, "weight_replay") == top):
    twins = [p for p in plain if R.param(p, size) == R.param(r, size)]
    twins = [p for p in twins if seed_of(p) == seed_of(r)] or twins
    if twins and forgetting(twins[0]) > 0:
      saved.append(1 - forgetting(r) / forgetting(twins[0]))
  return drops, grows, top, spread(saved), bool(saved) and all(x >= KEPT_AWAY for x in saved)


def toy_memory(runs: list[dict]) -> Score:
  """Claim 7. Forgetting = old-pair accuracy before fine-tuning minus after it. Holds when the mean
  forgetting without replay grows with every step up in the number of new pairs, by GROWTH_MARGIN
  from the fewest to the most (at least 3 sizes) and the most replayed run keeps at least KEPT_AWAY
  of the forgetting away (against no replay at the same number of new pairs) in every seed; weak
  when one of the two holds; does not hold otherwise."""
  runs = finished(runs, "toy_memory")
  if not runs:
    return Score(NO_RUNS, "no finished run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain/accuracy_before_finetune"] - s["pretrain/accuracy"]

  grid = _forgetting_grid(runs, "n_new", forgetting)
  drops, grows, top, kept_away, replay_helps = grid
  values = {
    "forgetting_by_n_new": {str(n): d for n, d in drops.items()},
    "replay_weight": top,
    "share_saved_by_replay": kept_away,
  }
  verdict = HOLDS if grows and replay_helps else WEAK if grows or replay_helps else NOT_SHOWN
  by_n_text = ", ".join(f"{n}: {fmt(d, 2)}" for n, d in drops.items())
  measured = (
    f"old-pair accuracy lost by new pairs {by_n_text}; replay at weight {top:g} keeps "
    f"{fmt(kept_away, 2)} of it"
    if top is not None
    else f"old-pair accuracy lost by new pairs {by_n_text}; no replay run"
  )
  return Score(verdict, measured, values)


def half_drop_step(run: dict) -> float:
  """The first evaluated fine-tuning step at which pre-training accuracy has lost half of its
  drop (before fine-tuning minus its lowest value); NaN without that series or without a drop."""
  s = run["summary"]
  before, low = s["pretrain_accuracy_before_finetune"], s["min_pretrain_accuracy"]
  steps, accuracy = R.series(run["records"], "pretrain/attribute_accuracy")
  reached = steps[accuracy <= before - 0.5 * (before - low)] if before > low else steps[:0]
  return float(reached[0]) if len(reached) else math.nan


def attribute_forgetting(run: dict, name: str) -> float:
  """One attribute's forgetting, measured as the summary's is for all of them: its pre-training
  accuracy at the first evaluation (before fine-tuning) minus its lowest; NaN without it."""
  _, accuracy = R.series(run["records"], f"pretrain/attribute_accuracy/{name}")
  if not len(accuracy):
    _, accuracy = R.series(run["records"], f"attribute_accuracy/{name}")
  return float(accuracy[0] - accuracy.min()) if len(accuracy) else math.nan


def finetune(runs: list[dict]) -> Score:
  """Claim 6. Forgetting = pre-training accuracy before fine-tuning minus its lowest value during
  it. Holds when (a) the mean forgetting without replay grows with every step up in the number of
  new people, by GROWTH_MARGIN from the fewest to the most (at least 3 sizes), (b) the most replayed
  run keeps at least KEPT_AWAY of the forgetting away (against no replay at the same size, every
  seed), (c) fine-tuning on rare, already-seen people forgets at most (1 - KEPT_AWAY) of what new
  people of the largest size do and (d) every run on new people without replay has lost half of
  its forgetting within FAST_STEPS fine-tuning steps (half_drop_step); weak when two or three of
  the four hold; does not hold otherwise. Beside the verdict, per attribute: the forgetting by
  size without replay (attribute_forgetting) and whether it grows as (a) asks."""
  runs = finished(runs, "finetune")
  if not runs:
    return Score(NO_RUNS, "no finished fine-tuning run", {})

  def forgetting(r: dict) -> float:
    s = r["summary"]
    return s["pretrain_accuracy_before_finetune"] - s["min_pretrain_accuracy"]

  new = [r for r in runs if (R.param(r, "n_finetune") or 0) > 0]
  drops, grows, top, kept_away, replay_helps = _forgetting_grid(new, "n_finetune", forgetting)
  means = [d["mean"] for d in drops.values()]
  rare = spread([forgetting(r) for r in runs if not R.param(r, "n_finetune")])
  rare_keeps = bool(rare["n"]) and bool(means) and rare["mean"] <= (1 - KEPT_AWAY) * means[-1]
  half_steps = [half_drop_step(r) for r in new if not R.param(r, "weight_replay")]
  fast = bool(half_steps) and all(step <= FAST_STEPS for step in half_steps)
  values = {
    "forgetting_by_n_new": {str(n): d for n, d in drops.items()},
    "replay_weight": top,
    "share_saved_by_replay": kept_away,
    "rare_seen_forgetting": rare,
    "half_forgotten_by_step": spread(half_steps),
  }
  by_attribute: dict[str, dict[str, dict]] = {}
  for n, group in _plain_by_size(new, "n_finetune").items():
    for a, v in A.view(group, attribute_forgetting).items():
      by_attribute.setdefault(a, {})[str(n)] = spread(v)
  grows_in = {a: _grows([d["mean"] for d in by.values()]) for a, by in by_attribute.items()}
  values |= {
    "forgetting_by_n_new_by_attribute": by_attribute,
    # most minus fewest new people: the size effect without (a)'s every-step-up condition
    "forgetting_most_minus_fewest_by_attribute": {
      a: list(by.values())[-1]["mean"] - list(by.values())[0]["mean"]
      for a, by in by_attribute.items()
    },
    "attribute_holds": grows_in,
  }
  n_true = sum((grows, replay_helps, rare_keeps, fast))
  verdict = HOLDS if n_true == 4 else WEAK if n_true >= 2 else NOT_SHOWN
  by_n_text = ", ".join(f"{n}: {fmt(d, 2)}" for n, d in drops.items())
  half = values["half_forgotten_by_step"]
  half_text = f"{half['mean']:.0f} ({half['min']:.0f}-{half['max']:.0f}, {half['n']} runs)"
  measured = (
    f"pre-training accuracy lost by new people {by_n_text}, half of it by step "
    f"{half_text if half['n'] else 'none'}; replay (weight {top}) keeps "
    f"{fmt(kept_away, 2)} of it away; rare seen people lose "
    f"{fmt(rare, 2)}; forgetting grows with new people {A.clause(grows_in)}"
  )
  return Score(verdict, measured, values)
