"""The paper's claims as a scorecard: `python -m bioknow.claims` (see __main__.py).

catalog: which sweep points each claim needs (globs, regime, lr copies, seeds); rules and
rules_curricula: how each claim is measured and judged; figures: one figure per claim.
"""
