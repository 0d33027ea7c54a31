# The two commands a new user needs are `make demo` and `make test`; each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: setup system-deps demo test lint typecheck unit contracts bench clean

setup: system-deps $(PIP_STAMP) $(NPM_STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(PIP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(VENV)/bin/visdm demo $(DEMO_ARGS)

test: setup lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(PIP_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(PIP_STAMP)
	$(VENV)/bin/mypy

unit: $(PIP_STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Compile contracts/src with the pinned solcjs and refresh the artifacts shipped in the package.
contracts: $(PIP_STAMP) $(NPM_STAMP)
	$(PY) -m visdm.chain.build

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
