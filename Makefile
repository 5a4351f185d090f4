# Prompt Optimizer: `make run` sets up and starts the app, `make test` runs the tests.
# Both need only Python >= 3.12; everything else is installed into .venv from the pinned requirements.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
VENV_PY := $(VENV)/bin/python
MANAGE := $(VENV_PY) manage.py

# The newest Python >= 3.12 on PATH (pyenv's shims resolve .python-version).
PYTHON ?= $(shell for candidate in python3.13 python3.12 python3 python; do \
	if command -v $$candidate >/dev/null 2>&1 && \
	   $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
		echo $$candidate; break; fi; done)

# Variables from .env (KEY=value lines), if present, reach every command below.
ifneq (,$(wildcard .env))
include .env
export $(shell sed -n 's/^[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*=.*/\1/p' .env)
endif

.PHONY: help run setup test lint format bench bench-check quality clean

help:
	@echo "make run    set everything up and start the app (web server + task worker)"
	@echo "make test   run the tests (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)"
	@echo "make lint   check code style with ruff"
	@echo "make bench  run the benchmarks in bench/ (ARGS=\"gateway --readme\": one, tables into bench/README.md)"
	@echo "make bench-check  a short gateway benchmark; fails when its overhead is over 3x the target"
	@echo "make quality  measure the rewrites over the real prompts (bench/quality.py; ARGS=--help)"
	@echo "make clean  remove .venv and collected static files (keeps your data/)"

$(VENV_PY):
	@if [ -z "$(PYTHON)" ]; then \
		echo "Prompt Optimizer needs Python 3.12 or newer, and none was found on PATH."; \
		echo "Install Python 3.13 (python.org, your package manager, or pyenv) and run make again."; \
		exit 1; fi
	@echo "Creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { \
		echo "Could not create a virtual environment. On Debian/Ubuntu install python3-venv"; \
		echo "(e.g. apt install python3.13-venv), then run make again."; rm -rf $(VENV); exit 1; }
	@$(VENV_PY) -m pip install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(VENV_PY)
	@echo "Installing requirements.txt"
	@$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(VENV_PY)
	@echo "Installing requirements-dev.txt"
	@$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime-installed

setup: $(VENV)/.runtime-installed
	@echo "Preparing the database and static files"
	@$(MANAGE) migrate --noinput --verbosity 0
	@$(MANAGE) createcachetable --verbosity 0
	@$(MANAGE) collectstatic --noinput --verbosity 0
	@$(MANAGE) ensure_superuser
	@$(MANAGE) seed_providers

run: setup
	@$(MANAGE) serve

test: $(VENV)/.dev-installed
	@SECRET_KEY="$${SECRET_KEY:-insecure-test-only-key-never-used-outside-tests}" $(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-installed
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

bench: $(VENV)/.dev-installed
	@SECRET_KEY="$${SECRET_KEY:-insecure-bench-only-key-never-used-in-production}" $(VENV_PY) bench/run.py $(ARGS)

bench-check: $(VENV)/.dev-installed
	@SECRET_KEY="$${SECRET_KEY:-insecure-bench-only-key-never-used-in-production}" $(VENV_PY) bench/bench_gateway.py --check

quality: $(VENV)/.dev-installed
	@$(VENV_PY) bench/quality.py $(ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
