# Every target installs what it needs into .venv first; the stamp file makes a
# second run with an unchanged pyproject.toml install nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo dev bench install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m completions_assets.local.demo

dev: $(STAMP)
	$(BIN)/python -m completions_assets.local.dev

bench: $(STAMP)
	$(BIN)/python -m completions_assets_bench

clean:
	rm -rf $(VENV) data .dagster_home
