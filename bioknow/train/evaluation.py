"""Evaluation at scheduled steps: the paper's metrics on the fixed evaluation sets.

`evaluate` turns per-sequence, per-attribute results of the jitted eval step into one flat
dict of metrics (the keys of metrics.jsonl) plus the per-individual attribute loss. The phase
rules (phase_ends and its constants) are bioknow.train.phases', which needs no jax; they are
importable from here too, where the loop and the experiments call them.
"""

import dataclasses
import math
from typing import Any

import numpy as np

from bioknow.data import pipeline
from bioknow.data.biography import ROLE_VALUE, Biographies
from bioknow.train import metrics
from bioknow.train import step as step_lib
from bioknow.train.phases import (  # noqa: F401 (evaluation.phase_ends: the loop's, the runs')
  CONFIRM,
  FIRST_PHASE_FACTOR,
  PLATEAU_FACTOR,
  phase_ends,
)
from bioknow.validate import check_int, is_int


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """When and on what to evaluate. Default schedule: every `every` steps up to `dense_until`,
  then `n_spaced` evenly spaced evaluations over the run (step 0 and the last step always)."""

  every: int = 125
  dense_until: int = 2_000
  n_spaced: int = 32
  steps: tuple[int, ...] | None = None  # explicit schedule, replaces the rule above
  n_sequences: int = 16_384  # per evaluation set
  batch_size: int = 512
  n_attention: int = 512  # sequences of the seen set used for attention statistics

  def check(self, n_steps: int, n_devices: int) -> None:
    """Validates the fields for a run of n_steps on n_devices (one sentence naming the
    field)."""
    for name in ("every", "dense_until", "n_spaced", "n_sequences", "batch_size", "n_attention"):
      value, low = getattr(self, name), 0 if name == "n_attention" else 1
      check_int(f"eval.{name}", value, low)
    if self.steps is not None and (
      not isinstance(self.steps, (tuple, list)) or not all(is_int(s) for s in self.steps)
    ):
      raise ValueError(
        f"eval.steps: got {self.steps!r}; give None (every, dense_until and n_spaced decide) "
        "or a tuple of integer steps."
      )
    if self.steps is not None and any(not 0 <= s <= n_steps for s in self.steps):
      raise ValueError(
        f"eval.steps: got {tuple(self.steps)}; every step must be in "
        f"[0, {n_steps}] (the run's steps)."
      )
    if self.n_sequences % self.batch_size or self.batch_size % n_devices:
      raise ValueError(
        f"eval.batch_size: {self.batch_size} must divide eval.n_sequences "
        f"{self.n_sequences} and be divisible by the {n_devices} devices."
      )
    if not 0 <= self.n_attention <= self.n_sequences:
      raise ValueError(f"eval.n_attention: got {self.n_attention}; allowed: 0..n_sequences.")

  def schedule(self, n_steps: int) -> list[int]:
    if self.steps is not None:
      return sorted(set(self.steps) | {n_steps})
    dense = range(0, min(self.dense_until, n_steps) + 1, self.every)
    spaced = (round(i * n_steps / self.n_spaced) for i in range(self.n_spaced + 1))
    return sorted(set(dense) | set(spaced))


def row_len(sets: dict[str, Biographies]) -> int:
  """The columns every evaluation batch of a run keeps: its sets' longest biography, rounded
  up as training rows are. Only padding goes (the small scale's evaluation gets 1.5x faster,
  129 -> 112 columns), and one length for all sets means one program per model, not one per
  set: each costs tens of seconds to compile on a GPU at the paper scale."""
  return min(
    max(pipeline.round_up(b.length_B.max()) for b in sets.values()),
    min(b.tokens_BxT.shape[1] for b in sets.values()),
  )


def n_scored(sets: dict[str, Biographies], batch_size: int) -> int:
  """The positions an evaluation batch of a run scores (eval_step's n_scored): the most value
  tokens in any batch of its sets, rounded up as rows are; one number for all sets, one
  program. Scoring value tokens only makes the paper scale's output layer, 32k wide, run on
  about a fifth of the positions."""
  counts = (
    (b.role_BxT[i : i + batch_size] >= ROLE_VALUE).sum()
    for b in sets.values()
    for i in range(0, len(b.role_BxT), batch_size)
  )
  return pipeline.round_up(max(counts))


def _run_set(
  model,
  bios: Biographies,
  cfg: EvalConfig,
  mesh,
  dtype,
  n_attention: int,
  patterns_fn=None,
  t: int | None = None,
  scored: int | None = None,
):
  """Runs the eval step over a set in chunks of t columns (default: row_len of this set
  alone), scoring `scored` positions (default: n_scored of this set alone; on several
  devices every position, as finding value tokens would gather the batch); returns host
  arrays [N, A] and attention sums."""
  n_attributes = bios.attribute_BxS.shape[1]
  t = t or row_len({"set": bios})
  if mesh.size > 1:
    scored = None
  elif scored is None:
    scored = n_scored({"set": bios}, cfg.batch_size)
  outs, attention = [], []
  for start in range(0, len(bios.tokens_BxT), cfg.batch_size):
    chunk = slice(start, start + cfg.batch_size)
    batch = step_lib.shard_batch(
      {
        "tokens": bios.tokens_BxT[chunk, :t],
        "role": bios.role_BxT[chunk, :t],
        "attribute": bios.attribute_BxT[chunk, :t],
        "sentence": bios.sentence_BxT[chunk, :t],
      },
      mesh,
    )
    with_attention = start < n_attention
    patterns = patterns_fn(batch) if patterns_fn else None
    out = step_lib.eval_step(
      model,
      batch["tokens"],
      batch["role"],
      batch["attribute"],
      batch["sentence"],
      n_attributes,
      dtype,
      with_attention,
      patterns,
      scored,
    )
    if "attention" in out:
      attention.append(out.pop("attention"))
    outs.append(out)
  result: dict[str, Any] = {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
  if attention:
    result["attention"] = {
      k: np.mean([np.asarray(a[k]) for a in attention], axis=0) for k in attention[0]
    }
  return result


def _summarise(prefix: str, r: dict, attributes: tuple[str, ...]) -> dict:
  loss_B = r["loss"].mean(axis=1)
  out = {
    f"{prefix}attribute_loss": float(loss_B.mean()),
    # The evaluation set's sampling noise: the standard error of that mean.
    f"{prefix}attribute_loss_sem": float(loss_B.std(ddof=1) / np.sqrt(len(loss_B)))
    if len(loss_B) > 1
    else math.nan,
    f"{prefix}attribute_accuracy": float(r["correct"].mean()),
  }
  for a, name in enumerate(attributes):
    out[f"{prefix}attribute_loss/{name}"] = float(r["loss"][:, a].mean())
    out[f"{prefix}attribute_accuracy/{name}"] = float(r["correct"][:, a].mean())
  return out


def evaluate(
  model,
  sets: dict[str, Biographies],
  cfg: EvalConfig,
  mesh,
  dtype,
  attributes: tuple[str, ...],
  population_size: int,
  patterns_fn=None,
) -> tuple[dict, np.ndarray]:
  """All metrics of one evaluation, and the attribute loss per individual (NaN where the
  seen set has no sequence of that individual).

  patterns_fn(batch) -> patterns [B, L, H, T, T] or None: the attention patterns the model
  uses on an evaluation batch (a dict with 'tokens' [B, T]) in place of its own (patching);
  the attention statistics are then those of the patterns used.
  """
  t, scored = row_len(sets), n_scored(sets, cfg.batch_size)
  run_set = lambda bios, n_attention: _run_set(
    model, bios, cfg, mesh, dtype, n_attention, patterns_fn, t, scored
  )
  m, seen = {}, run_set(sets["seen"], cfg.n_attention)
  m.update(_summarise("", seen, attributes))
  m["seen_max_prob"] = float(seen["max_prob"].mean())
  m["seen_entropy"] = float(seen["entropy"].mean())
  for k, v in seen.get("attention", {}).items():
    m[k] = [float(x) for x in v]
  if "seen_train_templates" in sets:
    train = run_set(sets["seen_train_templates"], 0)
    m.update(_summarise("train_templates_", train, attributes))
  if "heldout" in sets:
    unseen = run_set(sets["heldout"], 0)
    m["unseen_attribute_loss"] = float(unseen["loss"].mean())
    m["unseen_attribute_accuracy"] = float(unseen["correct"].mean())
    for a, name in enumerate(attributes):  # each type against its own baseline (claims)
      m[f"unseen_attribute_loss/{name}"] = float(unseen["loss"][:, a].mean())
      m[f"unseen_attribute_accuracy/{name}"] = float(unseen["correct"][:, a].mean())
    m["unseen_max_prob"] = float(unseen["max_prob"].mean())
    m["unseen_entropy"] = float(unseen["entropy"].mean())
    # Hallucination detection: does max-probability tell seen from held-out individuals?
    m["hallucination_auroc"] = metrics.auroc(seen["max_prob"].ravel(), unseen["max_prob"].ravel())
  for name, bios in sets.items():
    if name not in pipeline.STANDARD_SETS:
      m.update(_summarise(f"{name}/", run_set(bios, 0), attributes))

  ids = sets["seen"].individual_B
  total = np.bincount(ids, weights=seen["loss"].mean(axis=1), minlength=population_size)
  count = np.bincount(ids, minlength=population_size)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_individual = np.where(count > 0, total / count, np.nan).astype(np.float32)
  return m, per_individual
