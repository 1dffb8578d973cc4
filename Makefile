# The two commands of the README, and the rest of the developer loop.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
# The tool that writes the lock, pinned like everything else; it lives outside .venv.
UV_VERSION := 0.13.9
TOOLS := var/tools

.PHONY: run test lint bench lock

# .venv holds exactly the lock: made anew whenever the lock changes, every package pinned and
# checked against its hash, nothing resolved on this machine. The project runs from this
# folder and is not installed into it.
$(STAMP): $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip check
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

# Writes the lock from pyproject.toml's ranges, keeping every pin the ranges still allow.
# Upgrade one package: make lock ARGS="--upgrade-package redis"; everything: ARGS=--upgrade.
lock:
	test -x $(TOOLS)/bin/uv || { $(PYTHON) -m venv $(TOOLS) && \
		$(TOOLS)/bin/pip install -q uv==$(UV_VERSION); }
	$(TOOLS)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes \
		--python-version 3.11 --quiet --output-file $(LOCK) $(ARGS)
