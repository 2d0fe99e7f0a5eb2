# Sendwise: `make demo` runs the whole pipeline on the embedded warehouse; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
UV_VERSION ?= 0.13.9

.PHONY: install demo test dev docs lint bench clean-state

# uv (from PyPI, pinned) installs the same pins about 4x faster than pip (README: measured times);
# when uv cannot be installed or fails, pip does the install.
$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing Sendwise and its pinned stack into $(VENV) (first time: about 3 minutes with uv)"
	@if $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) \
		&& $(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'; then :; else \
		echo "==> uv unavailable or failed: installing with pip (first time: about 10 minutes)"; \
		$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip \
		&& $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'; fi
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
