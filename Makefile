# Nightjar — `make run` (install, simulate a shop if none, run everything), `make test`, `make ui`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
export NIGHTJAR_DATA_DIR ?= $(CURDIR)/data
# Everything make starts finds the venv's tools (dbt, dagster, nightjar) first, from any
# shell, with or without an activated venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
MANIFEST := dbt_project/target/manifest.json
# The same project parsed for the Spark target (NIGHTJAR_ENGINE=spark loads its assets from it).
SPARK_MANIFEST := dbt_project/target-spark/manifest.json
DBT_SOURCES := $(shell find dbt_project -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -not -path '*/target/*' -not -path '*/target-spark/*' -not -path '*/logs/*' 2>/dev/null)
PYTEST_ARGS ?=
# pytest-xdist workers: most tests wait on dbt, Dagster or DuckDB subprocesses, so two
# workers keep both cores busy.
PYTEST_WORKERS ?= 2

.PHONY: install run run-spark test test-fast ui bench clean manifest lock

# A venv with uv in it, then the pinned lock installed with uv (≈10 s warm). Re-runs only
# when the lock or pyproject change.
# Bytecode is compiled at install (a faster first start); UV_COMPILE_BYTECODE=0 in the
# environment skips that (tests/test_readme.py's throwaway clone: ~70 CPU-s less).
UV_COMPILE_BYTECODE ?= 1
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install -q "uv==$(UV_VERSION)"
	UV_COMPILE_BYTECODE=$(UV_COMPILE_BYTECODE) $(UV) pip sync --python $(PY) requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	touch $(STAMP)

# Dagster loads dbt assets from a prepared manifest (no `dbt parse` at import time).
$(MANIFEST): $(STAMP) $(DBT_SOURCES)
	cd dbt_project && ../$(VENV)/bin/dbt parse --quiet --profiles-dir . --target-path target
	touch $(MANIFEST)

# Parsing does not start Spark (no JVM): the target only selects dbt-spark's macros.
$(SPARK_MANIFEST): $(STAMP) $(DBT_SOURCES)
	cd dbt_project && NIGHTJAR_ENGINE=spark ../$(VENV)/bin/dbt parse --quiet --profiles-dir . --target spark --target-path target-spark
	touch $(SPARK_MANIFEST)

manifest: $(MANIFEST) $(SPARK_MANIFEST)

install: $(STAMP) $(if $(wildcard dbt_project/dbt_project.yml),$(MANIFEST) $(SPARK_MANIFEST))

# Refresh the lock after changing dependencies in pyproject.toml.
lock:
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

# Simulates only when there is neither a shop database nor a landing file: an events-only
# or orders-only shop is run as it is (`nightjar run` itself never simulates).
run: install
	@if [ -z "$$NIGHTJAR_SHOP_DB_URL" ] && [ ! -f "$(NIGHTJAR_DATA_DIR)/shop.sqlite" ] \
		&& [ -z "$$(find "$(NIGHTJAR_DATA_DIR)/landing" -type f 2>/dev/null | head -1)" ]; then \
		echo "No shop and no landing files in $(NIGHTJAR_DATA_DIR): simulating the default one (2 years ending yesterday)"; \
		$(VENV)/bin/nightjar simulate --out "$(NIGHTJAR_DATA_DIR)"; \
	fi
	$(VENV)/bin/nightjar run

# The whole pipeline on Spark on this machine (local[*], lake and Spark tables in the data
# dir); NIGHTJAR_SPARK_MASTER=spark://host:7077 points it at a cluster.
run-spark: export NIGHTJAR_ENGINE = spark
run-spark: run

test: install
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal -m "not slow" $(PYTEST_ARGS)

# The same Dagster instance as `make run` (DAGSTER_HOME, default <data dir>/dagster_home).
ui: install
	$(VENV)/bin/nightjar ui

bench: install
	$(VENV)/bin/nightjar bench

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/target-spark dbt_project/logs
