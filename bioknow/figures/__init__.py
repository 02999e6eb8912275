"""Figures of the paper drawn from run directories alone (no checkpoints; JAX is imported only
for train.evaluation's phase rules, never run).

runs.py loads runs and holds the shared rules (best learning rate, power-law fit); each other
module draws one family: pretrain (per-run curves, attention, hallucination, groups,
comparisons), attributes (each attribute type against its own baseline, used by pretrain),
population (plateau law), curricula (power laws, celebrities, warm-ups, growth), patching,
finetune, toy (the associative memory). Every family but attributes exposes
`draw(runs, out_dir) -> (paths, summary_lines)` and draws only what its runs allow.
"""

import matplotlib

matplotlib.use("Agg")  # files only, before any figure module imports pyplot
