# The two commands a new user needs are `make demo` and `make test`; each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: setup system-deps demo test lint typecheck unit attack contracts bench bench-quick clean

setup: system-deps $(PIP_STAMP) $(NPM_STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(PIP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[bench]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(VENV)/bin/visdm demo $(DEMO_ARGS)

# The suite spends most of its time waiting on chains, nodes, sandboxes and browsers, so three
# worker processes share the two cores, and every benchmark runs at --quick beside it
# (scripts/test-and-bench.sh prints their figures after the suite, then its summary line again).
# A test file stays in one worker, with its module fixtures; files go out in collection order
# (end-to-end and integration first: the few long ones start early), not largest first, which
# would leave a long test for last.
# the slowest tests are listed after the run: where the 25-minute budget goes
PYTEST_WORKERS ?= -n 3 --dist loadfile --no-loadscope-reorder --durations=40
test: setup lint typecheck $(BENCH_STAMP)
	@PY=$(PY) BENCH_PY=$(BENCH_VENV)/bin/python PYTEST_WORKERS="$(PYTEST_WORKERS)" \
		PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test-and-bench.sh

# Every benchmark at its reduced size, so none can rot; the figures are printed, never asserted.
bench-quick: $(BENCH_STAMP) $(NPM_STAMP)
	@for b in benchmarks/[a-z]*.py; do echo "== $$b --quick"; $(BENCH_VENV)/bin/python $$b --quick || exit 1; done

bench: $(BENCH_STAMP) $(NPM_STAMP)
	@for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(BENCH_VENV)/bin/python $$b || exit 1; done

lint: $(PIP_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(PIP_STAMP)
	$(VENV)/bin/mypy

unit: $(PIP_STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Every known attack, performed against the real contracts, node and training code (SECURITY.md).
attack: $(PIP_STAMP) $(NPM_STAMP)
	$(PY) -m pytest -m attack $(PYTEST_ARGS)

# Compile contracts/src with the pinned solcjs and refresh the artifacts shipped in the package.
contracts: $(PIP_STAMP) $(NPM_STAMP)
	$(PY) -m visdm.chain.build

clean:
	rm -rf $(VENV) $(BENCH_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
