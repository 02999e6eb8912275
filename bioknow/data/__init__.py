"""Layer 1: synthetic biographies.

lists (value lists, baseline) -> population -> tokenizer -> biography (vectorised assembly)
-> dataset (DataConfig, build_dataset) -> schedules (who is sampled when) -> pipeline (Grain).
"""
