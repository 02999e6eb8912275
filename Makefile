# `make demo` and `make test` work as the first command on a fresh machine:
# they create .venv when missing and install bioknow into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

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
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) -m bioknow.bench data
	$(PY) -m bioknow.bench train

clean:
	rm -rf $(VENV) runs .pytest_cache
