# One entry point for humans; each target is a thin wrapper over a README command.
.DEFAULT_GOAL := help
PY ?= python

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup:  ## install the package with dev tools (README step 1)
	$(PY) -m pip install -e ".[dev]"

repro:  ## run the whole pipeline (README step 2)
	dvc repro

test:  ## run the test suite, slow end-to-end tests included (README step 3)
	$(PY) -m pytest

test-fast:  ## the suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow"

lint:  ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:  ## apply ruff's formatting and safe fixes
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench:  ## run every benchmark under bench/ (each prints its ratio last)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

ui:  ## open the MLflow UI on the local tracking database (README step 4)
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

.PHONY: help setup repro test test-fast lint format bench ui
