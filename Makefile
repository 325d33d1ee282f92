# Kring: the commands a user types. Each sets up what it needs (a virtual environment with the
# packages, once, again when pyproject.toml changes) and then does its job.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.installed

# The embedded run waits seconds, not months, for the follow-up, so `make demo` shows the whole
# flow: a schedule day lasts 0.2 s (the coordinator's call ~6 s after the plan, research ~18 s).
# Override: make run KRING_FOLLOWUP_SECONDS_PER_DAY=86400
KRING_FOLLOWUP_SECONDS_PER_DAY ?= 0.2
export KRING_FOLLOWUP_SECONDS_PER_DAY

.PHONY: run demo test lint unit install clean

$(READY): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Kring needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(READY)

run: $(READY)
	$(BIN)/kring run

demo: $(READY)
	$(BIN)/kring demo

lint: $(READY)
	$(BIN)/ruff check shared services kring tests
	$(BIN)/ruff format --check shared services kring tests
	$(BIN)/mypy shared services kring

test: lint
	$(BIN)/pytest

unit: $(READY)
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
