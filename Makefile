# `make run`: set up and run the gateway on embedded defaults.  `make test`: set up and run every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-sqlite test-postgresql bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(PY) -m gateway.launcher

test: setup
	$(PY) -m ruff check --select F,E9 --line-length 120 gateway workers admin tests bench
	$(MAKE) test-sqlite
	$(MAKE) test-postgresql

test-sqlite:
	TEST_DATABASE=sqlite $(PY) -m pytest

test-postgresql:
	TEST_DATABASE=postgresql $(PY) -m pytest

bench: setup
	$(PY) bench/upload_bench.py

clean:
	rm -rf $(VENV) node_modules instance test-output bench/out
