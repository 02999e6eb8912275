"""The paper's claims as a scorecard: `python -m bioknow.claims` (see __main__.py).

catalog: which sweep points each claim needs (globs, regime, lr copies, seeds); rules,
rules_patching, rules_curricula and rules_templates: how each claim is measured and judged;
attributes: a claim's measure attribute by attribute; figures: one figure per claim.
"""
