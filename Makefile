# Two commands: `make run` (everything up, then worker + API in the foreground) and
# `make test` (everything up, then the whole suite against the real services).

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STACK := bash stack/stack.sh
# Connection settings of the running stack, as `export NAME=value` lines.
WITH_ENV = eval "$$($(STACK) env)" &&

.PHONY: help setup up down status env run test test-chaos soak lint bench clean

help:
	@echo "make run | test | up | down | status | env | lint | test-chaos | soak | clean"

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.installed
	$(STACK) install

up: setup
	$(STACK) up

down:
	$(STACK) down

status:
	@$(STACK) status

env:
	@$(STACK) env

run: up
	$(WITH_ENV) $(BIN)/eventpipe topics create && $(BIN)/eventpipe schemas register \
	  && $(BIN)/eventpipe db migrate && exec $(BIN)/eventpipe run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/pylint --score=n api streams sinks workers eventpipe bench tests

# The soak (tests/test_soak.py, marked `soak`) runs in test-chaos only.
test: up lint
	STACK_TEST_TOOLS=1 $(STACK) install
	$(WITH_ENV) $(BIN)/pytest -m "not soak"

# Benchmarks on a stack of their own (bench/.stack, ports +300), never the one tests use:
# they reset its topics. Quix Streams goes in its own venv (it pins older libraries).
BENCH_STACK = STACK_DIR=$(CURDIR)/bench/.stack STACK_PORT_OFFSET=300 $(STACK)
bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	# vegeta, the compiled constant-rate load generator of the latency steps (bench/loadgen.py)
	test -x bench/.bin/vegeta || GOBIN=$(CURDIR)/bench/.bin go install github.com/tsenart/vegeta/v12@v12.13.0
	test -x bench/.venv-quix/bin/python || python3 -m venv bench/.venv-quix
	bench/.venv-quix/bin/pip install --quiet 'quixstreams>=3.28,<4' \
	  'psycopg[binary,pool]>=3.3,<3.4' 'redis[hiredis]>=8.1,<9' 'orjson>=3.10,<4' 'tenacity>=9.2,<10'
	$(BENCH_STACK) up
	eval "$$($(BENCH_STACK) env)" && STACK_DIR=$(CURDIR)/bench/.stack $(BIN)/eventpipe bench

# The fault tests, each crash kind followed by the oracle, and a 3-minute soak.
test-chaos: up
	$(WITH_ENV) SOAK_MINUTES=$${SOAK_MINUTES:-3} $(BIN)/pytest -m "chaos or soak"

# SOAK_MINUTES (10), SOAK_RATE (10 commands/s), SOAK_SEED (18): its own processes, the
# stack's services crashed on a seeded schedule, then the oracle; writes bench/SOAK.md.
soak: up
	$(WITH_ENV) $(BIN)/eventpipe soak

clean: down
	rm -rf .stack $(VENV)
