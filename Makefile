# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8778
PYTEST_WORKERS ?= 2
SYSTEMD_PYTHON_VERSION := 235
# The oldest oslo.policy pyproject.toml allows: installed beside the newest, for
# tests/unit/test_oslo_floor.py (the differential test and oslo's suite on it).
OSLO_POLICY_FLOOR := $(shell sed -n 's/.*"oslo\.policy>=\([0-9.]*\)".*/\1/p' pyproject.toml)

# OpenStack Placement, the baseline of `make bench-placement`: in a virtualenv of
# its own (never guard's), with the gunicorn version guard's .venv has.
PLACEMENT_VERSION := 16.0.0
PLACEMENT_VENV := .venv-placement
PLACEMENT_STAMP := $(PLACEMENT_VENV)/.installed-$(PLACEMENT_VERSION)
BENCH_PLACEMENT_ARGS ?=

.PHONY: install run test lint format bench bench-placement clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --upgrade --no-deps \
		--target $(VENV)/oslo-policy-floor/$(OSLO_POLICY_FLOOR) oslo.policy==$(OSLO_POLICY_FLOOR)
	# oslo.log's journal handler ([DEFAULT] use_journal) needs systemd's bindings, built
	# against libsystemd: installed where they can be (.ci/run makes sure they can).
	if pkg-config --exists libsystemd 2>/dev/null; then \
		$(BIN)/pip install --quiet systemd-python==$(SYSTEMD_PYTHON_VERSION); fi
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

$(PLACEMENT_STAMP): $(STAMP)
	$(PYTHON) -m venv $(PLACEMENT_VENV)
	$(PLACEMENT_VENV)/bin/pip install --quiet --upgrade pip
	$(PLACEMENT_VENV)/bin/pip install --quiet openstack-placement==$(PLACEMENT_VERSION) \
		psycopg2-binary "gunicorn==$$($(BIN)/python -c 'import gunicorn; print(gunicorn.__version__)')"
	touch $(PLACEMENT_STAMP)

# guard vs Placement's GET /allocations/{uuid} (guard/tools/bench/placement.py);
# e.g. BENCH_PLACEMENT_ARGS="--quick" or "--sqlite --connections 8".
bench-placement: $(STAMP) $(PLACEMENT_STAMP)
	$(BIN)/python -m guard.tools.bench.placement --placement-venv $(PLACEMENT_VENV) $(BENCH_PLACEMENT_ARGS)

clean:
	rm -rf $(VENV) $(PLACEMENT_VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache
