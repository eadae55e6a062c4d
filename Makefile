# One entry point for every routine task. Each target creates .venv when missing,
# so a fresh clone needs nothing but python3 (3.11+) and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-fast lint bench venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m uvicorn crt_api:app --host $(HOST) --port $(PORT)

test: $(STAMP)
	./scripts/ensure-browser.sh
	PYTHON=$(PYTHON) ./scripts/ensure-moltbook-clients.sh
	$(PY) -m pytest -q

# The unit and in-process integration layer: no subprocesses, no browser.
test-fast: $(STAMP)
	$(PY) -m pytest -q --ignore=tests/system

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
