"""python -m bioknow.launch --sweep=sweeps/templates.py [--scale=small|paper]
python -m bioknow.report --workdir=runs/templates

Textual diversity: number of training templates x shuffled or fixed sentence order.

Runtime: small, 10 runs, ~25 minutes on 2 CPU cores; paper, 10 runs of 16k steps, under an
hour on one H100.
Reproduces Figure A of the paper: with one template and a fixed order the model memorises
sentences rather than facts (evaluation templates stay near the baseline); diversity and
shuffling are needed for knowledge that transfers to unseen sentences.
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
