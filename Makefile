# Every target builds its own virtual environment first, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo run sandbox test bench clean

$(BIN)/anomaly-desk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

demo: $(BIN)/anomaly-desk  ## the main job: sandbox + receiver + replay + dashboard
	$(BIN)/anomaly-desk demo

run: $(BIN)/anomaly-desk  ## the receiver alone
	$(BIN)/anomaly-desk serve

sandbox: $(BIN)/anomaly-desk  ## Jira + ServiceNow emulators
	$(BIN)/anomaly-desk sandbox

test: $(BIN)/anomaly-desk  ## the whole test suite, lint included
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(BIN)/anomaly-desk  ## benchmarks (not part of `make test`)
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
