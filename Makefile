# One entry point for every routine task. Each target creates .venv when missing,
# so a fresh clone needs nothing but python3 (3.11+) and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Two stamps: `make run` installs only what running needs; the test tools (pytest, mypy, ruff,
# schemathesis, selenium, hypothesis: most of the first install's time) come with `make test`.
HASH   := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Unit-layer workers: twice the cores, because a third of a worker's time is spent waiting (a
# server's stop, a loop's tick): with one worker per core the cores sat half idle.
UNIT_WORKERS ?= 4
STAMP  := $(VENV)/.installed-run-$(HASH)
DEV    := $(VENV)/.installed-dev-$(HASH)

.PHONY: run crt test test-fast lint bench venv real-model-env bytecode clean

# Byte-compile in parallel: where PYTHONDONTWRITEBYTECODE is set (it is on the machine this
# project is developed on) Python never writes its caches on import, so every process, each
# service start and each `crt` command, compiled everything it imports again: 0.55 of a service
# start's 1.7 CPU seconds. compileall writes the caches whatever that variable says and skips
# what is current: the venv once at install, then src (make run) or src and tests (the test
# targets) each time.
COMPILE = $(PY) -m compileall -q -j0
bytecode: $(STAMP)
	@$(COMPILE) src tests >/dev/null

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "==> creating $(VENV) (first run only)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing CRT Loops and its runtime dependencies into $(VENV)"
	@# --no-compile: pip byte-compiles one file at a time (a fifth of the install's time);
	@# compileall does the same on every core.
	$(PY) -m pip install --progress-bar on --no-compile -e .
	@$(COMPILE) $(VENV)/lib src >/dev/null
	@rm -f $(VENV)/.installed-run-*
	@touch $(STAMP)

$(DEV): $(STAMP)
	@echo "==> installing the test and lint tools (the dev extra)"
	$(PY) -m pip install --progress-bar on --no-compile -e '.[dev]'
	@$(COMPILE) $(VENV)/lib >/dev/null
	@rm -f $(VENV)/.installed-dev-*
	@touch $(DEV)

venv: $(STAMP)

run: $(STAMP)
	@$(COMPILE) src >/dev/null
	$(VENV)/bin/crt serve --host $(HOST) --port $(PORT)

# `make crt ARGS="chat default"`: the command line without activating the venv (it is also
# .venv/bin/crt). PORT and HOST reach it like they reach `make run`.
crt: $(STAMP)
	@PORT=$(PORT) HOST=$(HOST) $(VENV)/bin/crt $(ARGS)


# llama.cpp's server and SmolLM2-135M for the real-model lane, in .cache/real-model (cached).
real-model-env:
	./scripts/real-model-env.sh

test: $(DEV) real-model-env bytecode
	./scripts/ensure-browser.sh
	./scripts/ensure-postgres.sh
	PYTHON=$(PYTHON) ./scripts/ensure-moltbook-clients.sh
	$(PY) -m pytest -q -n $(UNIT_WORKERS) --ignore=tests/system
	$(PY) -m pytest -q -n 2 --dist loadgroup tests/system

# The unit and in-process integration layer on SQLite: no subprocesses, no browser, no cluster.
# The edit-test loop. Left to `make test`: the PostgreSQL runs of the backend-neutral tests (they
# need a cluster) and the few `slow` ones (the API fuzzing, waits on SQLite's busy timeout).
test-fast: $(DEV) bytecode
	$(PY) -m pytest -q -n $(UNIT_WORKERS) --ignore=tests/system -m "not postgres and not slow"

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(DEV) real-model-env
	./scripts/ensure-postgres.sh
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache/real-model
