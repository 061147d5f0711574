# Every target installs what it needs into .venv first; the stamp file makes a
# second run with an unchanged pyproject.toml install nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint demo dev env bench install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The unit and integration tiers: no Dagster run, a couple of minutes.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "unit or integration"

# ruff and mypy read their settings from pyproject.toml (mypy's `files` is the
# whole tree). dg finds the project by its [tool.dg] table in ./pyproject.toml
# and loads completions_assets.definitions in a subprocess of this venv;
# VIRTUAL_ENV names that venv (dg warns otherwise) and DAGSTER_HOME is unset so
# the check uses an ephemeral instance: no server, no database, no network.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	VIRTUAL_ENV=$(CURDIR)/$(VENV) env -u DAGSTER_HOME $(BIN)/dg check defs

demo: $(STAMP)
	$(BIN)/python -m completions_assets.local.demo

dev: $(STAMP)
	$(BIN)/python -m completions_assets.local.dev

# While `make dev` runs: `eval "$$(make -s env)"` in a second shell points it at the same sandbox and instance.
env: $(STAMP)
	@$(BIN)/python -m completions_assets.local.shell_env

bench: $(STAMP)
	$(BIN)/python -m completions_assets_bench

clean:
	rm -rf $(VENV) data .dagster_home
