"""Layer 4: what a sweep point runs. Each experiment is a config dataclass with `check()`
(validation before any compute) and `run(workdir)`."""
