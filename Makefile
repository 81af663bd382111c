# Two commands matter: `make demo` (set up + run the seed sentiment job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

COMPOSE ?= docker compose

.PHONY: install lint demo test test-unit bench clean compose-config compose-up compose-submit \
	compose-sql-client compose-down

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Run the seed sentiment example on the embedded mini-cluster (real provider if a key is set).
demo: install
	$(VENV)/bin/flink-ml-predict demo

## ruff over the repository, mypy over the package (its settings are in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## The whole test suite (lint, unit tests, real Flink jobs against a local HTTP server).
test: install lint
	$(PY) -m pytest -q --durations=15

test-unit: install
	$(PY) -m pytest -q tests/unit

## The benchmark suite (a few minutes; prints a table and writes bench/results/throughput.png,
## not part of the tests; installs the 'bench' extra: matplotlib). BENCH_ARGS=--full for the long
## sweep, BENCH_ARGS=--rss for the worker's RSS over 1,000,000 rows. Set BENCH_LOCK=/path/to/lock
## to run it under flock on a shared machine.
BENCH_ARGS ?=
BENCH_LOCK ?=
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: install $(VENV)/.bench-installed
	$(if $(BENCH_LOCK),flock $(BENCH_LOCK) )$(PY) bench/suite.py $(BENCH_ARGS)

## docker-compose: a Flink 2.3 cluster with the package (needs a Docker engine).
compose-config:
	$(COMPOSE) -f docker-compose.yml config --quiet

compose-up:
	$(COMPOSE) up -d --build

compose-submit:
	$(COMPOSE) exec jobmanager flink-ml-predict run \
		/opt/flink-ml-predict/sql/seed_002_bailian_sentiment.sql --jobmanager jobmanager:8081
	$(COMPOSE) logs taskmanager | grep -F '+I['

compose-sql-client:
	$(COMPOSE) run --rm sql-client

compose-down:
	$(COMPOSE) --profile client down --remove-orphans

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
