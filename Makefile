# ganrun — the whole set-up is `make train` or `make test`: each creates the virtual
# environment (.venv) and installs the package with its dependencies when they are missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=
# Test processes: one per core, at most 4 (each holds its own TensorFlow, ~1 GB).
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

.PHONY: help install train test test-fast lint tb dashboard bench bench-quality clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# A .venv made before the Optuna 5 sweeper still holds hydra-optuna-sweeper (optuna<3).
	$(BIN)/python -m pip uninstall --quiet --yes hydra-optuna-sweeper 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install ganrun with its dependencies

train: $(STAMP)  ## train the default experiment (extra overrides: make train ARGS="train.steps=100")
	$(BIN)/ganrun train $(ARGS)

test: $(STAMP)  ## run the whole test suite, the slow end-to-end tests included
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the test suite without the slow end-to-end tests
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff over the package, tests and scripts
	$(BIN)/ruff check src tests scripts

bench: $(STAMP)  ## speed benchmark, ~11 min: tables on the console, JSON in scripts/bench_results.json (ARGS="--parts default": the default experiment alone, ~2 min)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/bench.py $(ARGS)

bench-quality: $(STAMP)  ## quality at a budget, ~50 min: every MNIST preset for train.max_time=9m (scripts/quality.py; ARGS="--seeds 0 1 2")
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/quality.py $(ARGS)

tb: $(STAMP)  ## TensorBoard on http://127.0.0.1:6006 over outputs/ and multirun/ (LOGDIR=...)
	$(BIN)/tensorboard --logdir $(or $(LOGDIR),outputs) --host 127.0.0.1 --port 6006

dashboard: $(STAMP)  ## optuna-dashboard on http://127.0.0.1:8080 for a study (DIR=<sweep dir>, PORT=...)
	$(BIN)/ganrun dashboard $(or $(DIR),$(error DIR=<sweep dir> is required)) --port $(or $(PORT),8080)

clean:  ## remove caches (keeps .venv and run directories)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
