# The product's front door: `make run` runs it, `make test` tests it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench-ingest help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: $(VENV)/.installed .env  ## run everything: daphne :8000, Celery worker + beat, embedded Redis
	$(BIN)/python manage.py runsiem

test: $(VENV)/.installed  ## run the test suite (SQLite; DATABASE_URL=postgres://… for PostgreSQL)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-ingest: $(VENV)/.installed  ## REST ingestion benchmark (PostgreSQL at 127.0.0.1:5432)
	$(BIN)/python bench/ingest_bulk.py

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# A random SECRET_KEY and agent enrollment key for this machine, written once; DEBUG stays off.
# (runsiem adds the enrollment key to an older .env that lacks it.)
.env:
	@echo "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "AGENT_ENROLLMENT_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(24))')" >> .env
	@chmod 600 .env
	@echo "Wrote .env with a random SECRET_KEY and AGENT_ENROLLMENT_KEY"
