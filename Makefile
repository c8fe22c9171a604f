# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install test test-slow lint format demo demo-docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: here that takes a local CPU wheel; a bare `torch` pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[extract,tlens,s3,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow and not gpu" -q

test-slow: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "slow" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

demo: $(STAMP)
	$(VENV)/bin/actstore demo

# Run the demo (its cached model and extraction reused, every analysis stage re-run) and copy its
# result tables and figures into docs/demo-results.md and the README's block: no hand-copied numbers.
demo-docs: $(STAMP)
	$(PY) -m actstore.experiment._demo_results --run demo_out

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
