# Two commands for a newcomer (see README): `make demo` and `make test`.
# Both create .venv and install the project with its dev tools on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench bench-smoke bench-sandbox bench-webhooks bench-sweep clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/booking-worker demo $(ARGS)

test: $(STAMP)
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check worker tasks tests bench
	$(BIN)/mypy

# Every figure with its same-run baseline (python -m bench --help); ARGS="--only sweep_scale".
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke $(ARGS)

bench-sandbox: $(STAMP)
	$(BIN)/python bench/sandbox_rate.py $(ARGS)

bench-webhooks: $(STAMP)
	$(BIN)/python bench/webhook_rate.py $(ARGS)

bench-sweep: $(STAMP)
	$(BIN)/python bench/sweep_cost.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
