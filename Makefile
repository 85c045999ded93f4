# The README's two commands. Each creates .venv when missing and installs with constraints.txt, which pins the
# CPU build of torch (see environment.md's install traps: otherwise timm pulls a multi-GB CUDA torch).
PYTHON ?= python3
VENV   ?= .venv
PIP    := $(VENV)/bin/python -m pip
PROFILE ?= default

.PHONY: book test install install-dev clean-runs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make book: run the notebook chain on PROFILE (default: the synthetic world on CPU)
book: $(VENV)/.installed
	$(VENV)/bin/bonevlp book run --profile $(PROFILE)

## make test: unit tests and the smoke book end to end
test: $(VENV)/.installed-dev
	$(VENV)/bin/python -m pytest -q

clean-runs:
	rm -rf runs
