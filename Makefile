# One command each for serve, test and bench. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test serve migrate test lint format bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

serve: install  ## run the API on http://127.0.0.1:8000 (SQLite file by default)
	$(BIN)/evalserve serve

migrate: install
	$(BIN)/evalserve migrate

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app

format: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint  ## lint, then the whole suite (PostgreSQL on 127.0.0.1:5432 for the integration tests)
	$(BIN)/pytest

bench: install-test  ## every benchmark, each side by side with its reference
	$(BIN)/python -m bench.binary_report
	$(BIN)/python -m bench.http_batches
	$(BIN)/python -m bench.calibration
	$(BIN)/python -m bench.thresholds
	$(BIN)/python -m bench.training_loop
	$(BIN)/python -m bench.detection
	$(BIN)/python -m bench.box_losses
	$(BIN)/python -m bench.inspection
	$(BIN)/python -m bench.segmentation
