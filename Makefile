# One entry point for humans; each target is a thin wrapper over a command of the README or docs/.
.DEFAULT_GOAL := help
PY ?= python

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup:  ## install the locked dependencies and the package with dev tools (README step 1)
	$(PY) -m pip install -r requirements.lock -e ".[dev]"

# requirements.lock pins every transitive dependency for Python 3.10-3.12 (one universal
# resolution, markers where versions differ). pyproject.toml keeps the loose ranges.
lock:  ## refresh requirements.lock from pyproject.toml (uv pip compile, ~20 s)
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.10 \
		--no-emit-package svg-quality -o requirements.lock

# params.yaml is checked first: DVC deletes a stage's outputs before running it, so a
# typo caught by the stage itself would already have cost them.
repro:  ## check params.yaml, then run the whole pipeline (README step 2)
	$(PY) -m svg_quality.cli check-params --quiet && dvc repro

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

docs:  ## build the docs site strictly into site/ (broken links fail; as CI)
	$(PY) -m mkdocs build --strict --quiet

bench:  ## run every benchmark under bench/ (each prints its ratio last)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

ui:  ## open the MLflow UI on the local tracking database (docs/tracking.md)
	@echo "the runs: http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

.PHONY: help setup lock repro test test-fast lint format docs bench ui

# A team tracking server on this machine: SQLite backend and artifacts under
# .mlflow-server/ (absolute paths, so it works from any cwd), one worker and no job
# execution keep it near 0.5 GB. Users then only set
# MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT) (docs/tracking.md).
MLFLOW_PORT ?= 5001
MLFLOW_SERVER_DIR ?= $(CURDIR)/.mlflow-server
mlflow-server:  ## MLflow tracking server on 127.0.0.1:5001 (MLFLOW_PORT=...) (docs/tracking.md)
	@mkdir -p $(MLFLOW_SERVER_DIR)/artifacts
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--workers 1 --backend-store-uri sqlite:///$(MLFLOW_SERVER_DIR)/mlflow.db \
		--artifacts-destination $(MLFLOW_SERVER_DIR)/artifacts

.PHONY: mlflow-server
