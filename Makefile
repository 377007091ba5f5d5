# Quick start: `make run` (the bot; terminal chat when no platform token is set) and `make test`.
# Both create the virtual environment and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/aisafety-bot run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: lint
	QDRANT_BIN=$$(./scripts/fetch-qdrant.sh) REQUIRE_QDRANT_SERVER=1 $(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	QDRANT_BIN=$$(./scripts/fetch-qdrant.sh) $(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
