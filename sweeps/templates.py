"""python -m bioknow.launch --sweep=sweeps/templates.py [--scale=small|paper]
python -m bioknow.report --workdir=runs/templates

Textual diversity: number of training templates x shuffled or fixed sentence order.

Grid: small, 10 runs of 1.25k steps; paper, 10 runs of 16k steps. Runtime: see the table in
README.md.
Reproduces Figure A of the paper: with one template per attribute the model memorises
sentences rather than facts (on evaluation templates the loss stays far above the baseline
while on training templates it goes to zero); more templates close the gap. The paper also
finds shuffled sentence order necessary; at small scale (300 people) fixed order is learned
faster instead (docs/notes.md).
"""

from bioknow import configs

TEMPLATES_TRAIN = (1, 2, 4, 8, 16)


def base(scale: str):
  return configs.pretrain(scale)


def sweep(scale: str):
  for n_train in TEMPLATES_TRAIN:
    for shuffle in (True, False):
      cfg = base(scale)
      cfg.data.n_templates_train = n_train
      cfg.data.shuffle_sentences = shuffle
      yield f"templates{n_train}_{'shuffled' if shuffle else 'fixed'}", cfg
