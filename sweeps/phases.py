"""python -m bioknow.launch --sweep=sweeps/phases.py [--only='phases']
python -m bioknow.report --workdir=runs/phases
(6 runs: seed 0 at lr 4e-3, 8e-3 and 1.6e-2, then seeds 1 and 2 at 8e-3, and phases_n800,
the quick check's smaller run; the claims scorecard walks the same point's lr from x1, x2, x4
until seed 0's pick is bracketed and runs its other seeds at that pick)

The three phases with knowledge that emerges fully, over 3 seeds: 1,600 people (twice the
quickstart's) with a model twice as wide (2 layers, d 128, MLP 512) trained for 4,000 steps.

Why this exists next to the quickstart. On 2 cores the quickstart must end in 5 minutes, and
at 800 people its 64-wide model ends at 20-40% accuracy. Twice the width learns who is who
about twice as fast per step after the plateau, so knowledge emerges well above 90% accuracy:
held-out people's loss climbs far above the floor and the model's confidence tells seen from
unseen people (claim 5). Why 1,600 people: the plateau grows about linearly with the
population and the first phase does not (sweeps/population.py); at 800 people, at the lr the
paper's rule picks (4e-3), the plateau lasted 133-250 steps against a first phase of 150-200;
at 1,600 people, at the picked 1.6e-2, 900-1,100 against 550-600. 4,000 steps give each
person as many sightings as 2,000 did 800 people. Runtime: the README's table.
Reproduces Figure 2 (left) of the paper, like the quickstart.
"""

from bioknow import configs

SEEDS = 3
LR_FACTORS = (0.5, 2)


def base(scale: str):
  cfg = configs.pretrain(scale)
  if scale != "paper":
    cfg.data.n_individuals = 1_600
    cfg.model.d_model, cfg.model.d_mlp = 128, 512
    cfg.train.n_steps = 4_000
    # Every 50 steps through the plateau (it ends near step 1,000), 6 evaluations after.
    cfg.eval.every, cfg.eval.dense_until, cfg.eval.n_spaced = 50, 2_000, 6
  return cfg


def sweep(scale: str):
  """Names as the claims scorecard makes them (catalog.with_lrs, catalog.seeded), so that the
  two share runs: phases, phases_lrxF (seed 0), phases_seedK."""
  cfg = base(scale)
  yield "phases", cfg
  if scale == "paper":
    return
  # The paper's lr rule at seed 0: half and twice the lr (the claims scorecard keeps the lr
  # with the best final training loss, bioknow.claims.rules.best_lr).
  for factor in LR_FACTORS:
    twin = base(scale)
    twin.optimizer.lr *= factor
    yield f"phases_lrx{factor:g}", twin
  for seed in range(1, SEEDS):
    twin = base(scale)
    twin.data.seed = twin.train.seed = seed
    yield f"phases_seed{seed}", twin
  # The quick check's regime (three_phases and hallucination under `claims --quick`): the
  # quickstart's run, 800 people with the 64-wide model for 1,250 steps, the cheapest run
  # that shows the three phases (its knowledge stays partial, 20-40% accuracy), evaluated
  # every 25 steps through its plateau (it ended near step 540 in the quickstart). The run
  # above takes 4,000 steps of a model twice as wide: over 30 minutes on 2 busy cores.
  quick = configs.pretrain(scale)
  quick.eval.every, quick.eval.dense_until = 25, 1_000
  yield "phases_n800", quick
