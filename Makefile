# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install test test-slow lint format demo demo-docs docs bench clean

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

# The documentation site from docs/ (mkdocs.yml): --strict fails on a broken link, a nav entry to a
# missing page or a docstring the API reference cannot render. Output in site/.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[extract,tlens,s3,dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

demo: $(STAMP)
	$(VENV)/bin/actstore demo

# Run the demo (its cached model and extraction reused, every analysis stage re-run) and copy its
# result tables and figures into docs/demo-results.md and the demo tutorial's block
# (docs/tutorial/demo.md): no hand-copied numbers.
demo-docs: $(STAMP)
	$(PY) -m actstore.experiment._demo_docs --run demo_out

clean:
	rm -rf $(VENV) .pytest_cache build site *.egg-info src/*.egg-info
