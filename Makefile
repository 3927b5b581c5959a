# Two commands on a fresh machine:
#   make run   - the whole app (web, worker, beat) on the embedded defaults with demo data
#   make test  - lint, type checks and the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: run test install lint typecheck migrations-check pytest demo clean

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned, so that nothing later pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# llama.cpp built for any x86-64 with AVX2, not for this CPU alone (-march=native): on CPUs with
	# AMX its native build crashes in the first decode inside a VM. --no-cache-dir so that a wheel built
	# earlier with the native flags is not reused.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	$(BIN)/pip install --quiet -e '.[dev]' -e './client[datasets,progress]'
	touch $(STAMP)

install: $(STAMP)

# The embedded defaults are a local, development setup: DEBUG on (a local secret key and hosts,
# plain HTTP), unless the environment says otherwise. Everything else runs with DEBUG off.
demo run: export DEBUG ?= true

demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo

# bin/run.py runs honcho as the terminal's foreground job, so that Ctrl-C stops the app and make
# alike exits 0 (see there).
run: demo
	PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/python bin/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy config annotation rewards bench bin client/rlhf_client

migrations-check: install
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

# The whole run is capped too, for a hang that even pytest-timeout's thread cannot see (a thread
# holding the GIL while it waits in C): the run fails instead of freezing.
# (coreutils' timeout; where there is none, e.g. a stock macOS, the run goes uncapped.)
PYTEST_WALL_SECONDS ?= 3000
WALL_CAP := $(shell command -v timeout >/dev/null 2>&1 && echo timeout --kill-after=30 $(PYTEST_WALL_SECONDS))

pytest: install
	$(WALL_CAP) $(BIN)/python -m pytest

test: lint typecheck migrations-check pytest

clean:
	rm -rf var/broker var/celerybeat-schedule* test-artifacts
