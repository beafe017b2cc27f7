# canarywatch — developer entry points.  `make demo` and `make test` are the two
# commands the README promises; everything else is a building block of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit bench-codec clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## setup: create .venv and install canarywatch with its dev extras
setup: $(STAMP)

## demo: run the embedded end-to-end demo (reference relay with a reproduced leak)
demo: setup
	$(BIN)/canarywatch demo

## lint: ruff, mypy --strict and the import-layer contracts
lint: setup
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: everything CI runs — lint, then every test tier
test: lint
	$(BIN)/pytest -q

unit: setup
	$(BIN)/pytest -q tests/unit

## bench-codec: codec cost ratios vs cv2.imdecode and the robustness table
bench-codec: setup
	$(BIN)/canarywatch bench codec

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
