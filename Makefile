# Two commands matter: `make demo` (set up + run the seed sentiment job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-unit bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Run the seed sentiment example on the embedded mini-cluster (real provider if a key is set).
demo: install
	$(VENV)/bin/flink-ml-predict demo

## The whole test suite (unit + real Flink jobs against a local HTTP server).
test: install
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

## Throughput benchmark (prints figures; not part of the tests).
bench: install
	$(PY) bench/chat_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
