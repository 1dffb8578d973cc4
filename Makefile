# The two commands of the README, and the rest of the developer loop.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) manage.py runportal

# The suite keeps its own VAR_DIR so it never touches the running portal's data.
test: $(STAMP)
	VAR_DIR=$(CURDIR)/var/test $(PY) -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	VAR_DIR=$(CURDIR)/var/bench $(PY) -m benchmarks $(ARGS)
