# refold: `make demo` runs the pipeline on a local Kafka, `make test` runs the tests.
# Both install everything they need first (a virtualenv in .venv, Kafka jars via Maven).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
REFOLD := $(BIN)/refold
DATA   ?= ../shared/datasets/ml-100k
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: help install broker broker-stop topics demo test test-unit lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed ## create .venv and install refold with its dev tools

broker: install ## start the local single-node Kafka (no-op if REFOLD_BOOTSTRAP_SERVERS is set)
	$(REFOLD) broker start

broker-stop: ## stop the local Kafka
	@if [ -x $(REFOLD) ]; then $(REFOLD) broker stop; fi

topics: broker ## create the topics (idempotent)
	$(REFOLD) topics create

demo: topics ## the main job: run the pipeline on the local broker (ml-100k if DATA exists)
	$(REFOLD) demo $(if $(wildcard $(DATA)),--path $(DATA),)

# The suite waits more than it computes (brokers, processes, restores): TEST_WORKERS processes
# (pytest-xdist) share it out by file, so a module's fixtures are built once; 0 runs it in one.
test: broker ## run the whole test suite (unit, integration against the real broker)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-unit: install ## the fast tier: unit tests and docstring examples not marked slow, no broker
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile \
		tests/unit models consumers producers refold $(PYTEST_ARGS)

lint: install ## ruff
	$(BIN)/ruff check .

clean: ## remove the virtualenv and caches (the broker's data stays in ~/.cache/refold)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
