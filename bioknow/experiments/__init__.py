"""Layer 4: what a sweep point runs. Each experiment is a config dataclass that satisfies
common.Experiment (check, sources, check_sources, n_steps, key_metrics, train_cost, run) and
reads and writes its run directory through bioknow.rundir.RunDir."""
