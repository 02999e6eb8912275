"""Figures of the paper drawn from run directories alone (no checkpoints, no JAX).

Runs are read and judged by bioknow.analysis.runs (series, phase ends, the best learning rate,
the power-law fit); runs.py here holds only the drawing helpers every family shares (palette,
panels, log loss axis, baseline mark, saving). Each other module draws one family: pretrain
(per-run curves, attention, hallucination, groups, comparisons), attributes (each attribute
type against its own baseline, used by pretrain), population (plateau law), curricula (power
laws, celebrities, warm-ups, growth), patching, finetune, toy (the associative memory). Every
family but attributes exposes `draw(runs, out_dir) -> (paths, summary_lines)` and draws only
what its runs allow.
"""

import matplotlib

matplotlib.use("Agg")  # files only, before any figure module imports pyplot
