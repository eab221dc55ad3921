# Two commands: `make run` (everything up, then worker + API in the foreground) and
# `make test` (everything up, then the whole suite against the real services).

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STACK := bash stack/stack.sh
# Connection settings of the running stack, as `export NAME=value` lines.
WITH_ENV = eval "$$($(STACK) env)" &&

.PHONY: help setup up down status env run test test-chaos lint bench clean

help:
	@echo "make run | test | up | down | status | env | lint | test-chaos | clean"

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

test: up lint
	$(WITH_ENV) $(BIN)/pytest

test-chaos: up
	$(WITH_ENV) $(BIN)/pytest -m chaos

clean: down
	rm -rf .stack $(VENV)
