# Sendwise: `make demo` runs the whole pipeline on the embedded warehouse; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo test dev docs lint bench clean-state

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing Sendwise and its pinned stack into $(VENV) (first time: about 1-2 minutes)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(INSTALLED)

install: $(INSTALLED)

demo: install
	@$(VENV)/bin/sendwise demo

test: install
	@$(PY) -m pytest

dev: install
	@$(VENV)/bin/sendwise dev

docs: install
	@$(VENV)/bin/sendwise docs

lint: install
	@$(VENV)/bin/ruff check .

bench: install
	@$(PY) bench/run_all.py $(BENCH)

clean-state:
	@$(VENV)/bin/sendwise warehouse stop || true
	rm -rf .sendwise
