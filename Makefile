# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8778
PYTEST_WORKERS ?= 2
# The oldest oslo.policy pyproject.toml allows: installed beside the newest, for
# tests/unit/test_oslo_floor.py (the differential test and oslo's suite on it).
OSLO_POLICY_FLOOR := $(shell sed -n 's/.*"oslo\.policy>=\([0-9.]*\)".*/\1/p' pyproject.toml)

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --upgrade --no-deps \
		--target $(VENV)/oslo-policy-floor/$(OSLO_POLICY_FLOOR) oslo.policy==$(OSLO_POLICY_FLOOR)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/guard serve --demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check guard tests
	$(BIN)/ruff format --check guard tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format guard tests
	$(BIN)/ruff check --fix guard tests

test: $(STAMP) lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/guard bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache
