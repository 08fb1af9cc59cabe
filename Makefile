# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench crash chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/arrears demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -n 2 -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python -m arrears.bench --accounts $${ACCOUNTS:-100000} $${BENCH_ARGS:-} --json

# Workers killed with SIGKILL while delivering a few thousand notices (PostgreSQL).
# `make test` runs the same test with fewer accounts.
crash: $(STAMP)
	ARREARS_CRASH_ACCOUNTS=$${ACCOUNTS:-2500} ARREARS_REQUIRE_POSTGRES=1 \
		$(BIN)/python -m pytest -q -s tests/integration/test_delivery_crash.py

# Several workers killed with SIGKILL while they suspend and restore thousands of
# services through a webhook that fails a third of its calls (PostgreSQL).
chaos: $(STAMP)
	ARREARS_CHAOS_ACCOUNTS=$${ACCOUNTS:-1500} ARREARS_REQUIRE_POSTGRES=1 \
		$(BIN)/python -m pytest -q -s tests/integration/test_chaos.py

clean:
	rm -rf $(VENV) arrears.db arrears-demo.db* .pytest_cache .mypy_cache .ruff_cache
