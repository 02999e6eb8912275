# `make demo` and `make test` work as the first command on a fresh machine:
# they create .venv when missing and install bioknow into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench device-check paper-check install clean tour

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The quickstart: one small pretraining run showing the three phases (minutes on 2 cores),
# then its summary and learning-curve figure.
demo: $(STAMP)
	$(PY) -m bioknow.launch --sweep=sweeps/quickstart.py --scale=small --workdir=runs/quickstart
	$(PY) -m bioknow.report --workdir=runs/quickstart

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy bioknow
	$(PY) -m pytest tests -n auto

bench: $(STAMP)
	$(PY) -m bioknow.bench data
	$(PY) -m bioknow.bench train
	$(PY) -m bioknow.bench eval

# The one prepared command for a machine with an accelerator: one JSON line per measurement
# (paper-shape training, the default run's first 1,000 steps and its projection, the same for
# the 163M model, peak memory); aimed at under 8 minutes on one H100 (382 s on an H200,
# README Benchmarks). On a CPU it runs a reduced form (tiny model, 4 steps) in 10-30 s.
device-check: $(STAMP)
	$(PY) -m bioknow.bench device

# The paper's default run (64k people, 16k steps, every evaluation) to the end in
# runs/paper_check/phases/phases, then one JSON line (time, speed, memory, phases, final
# numbers); on a CPU, its reduced form (tiny model, 300 steps). Score it with
# python -m bioknow.claims --score_only --scale=paper --only=three_phases,hallucination
# --workdir=runs/paper_check
paper-check: $(STAMP)
	$(PY) -m bioknow.bench paper

clean:
	rm -rf $(VENV) runs .pytest_cache

# The README's figures: every sweep at --scale=small, then its figures, then a copy of the ones
# the README shows in docs/tour/ (about 5.5 hours on 2 CPU cores; re-running resumes where it stopped).
TOUR_SWEEPS := quickstart phases toy_memory population templates ablations curricula patching finetune sequential
TOUR_FIGURES := quickstart/figures/learning_curves_quickstart.png phases/figures/learning_curves_phases.png \
	quickstart/figures/attribute_curves_quickstart.png \
	quickstart/figures/hallucination_quickstart.png quickstart/figures/attention_quickstart.png \
	toy_memory/figures/toy_memory_steps.png population/figures/plateau_vs_population.png \
	templates/figures/template_diversity.png ablations/figures/ablations.png \
	curricula/figures/strategies.png \
	curricula/figures/strategies_curves.png \
	curricula/figures/alpha_heatmaps.png patching/figures/patching_curves.png \
	patching/figures/patching_final.png \
	finetune/figures/finetune_steps.png finetune/figures/finetune_frame.png \
	finetune/figures/groups_celebrities_pretrain.png \
	sequential/figures/groups_groups4_repeats1.png sequential/figures/groups_groups2_repeats4.png
tour: $(STAMP)
	for s in $(TOUR_SWEEPS); do \
	  $(PY) -m bioknow.launch --sweep=sweeps/$$s.py --scale=small --workdir=runs/$$s && \
	  $(PY) -m bioknow.report --workdir=runs/$$s; done
	mkdir -p docs/tour
	for f in $(TOUR_FIGURES); do if [ -f runs/$$f ]; then cp runs/$$f docs/tour/; fi; done
