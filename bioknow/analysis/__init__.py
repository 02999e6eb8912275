"""Layer 5: reading and judging finished runs; plain numpy over run directories, no jax, no
matplotlib, so scoring and reporting never start an accelerator or a plotting library.

runs: a run directory as a dict (load_run, find_runs), its config and series, phase ends (the
rule of bioknow.train.phases), the paper's best learning rate, power-law fits, regimes and
strategies, grouping and formatting. ends: phase ends placed between evaluations, each with
its resolution, and the tie rule the claims compare them with.
"""
