# Every target builds its own virtual environment first, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TYPED := build/typed

.PHONY: demo run sandbox test typed-tree bench clean

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

test: $(BIN)/anomaly-desk typed-tree  ## the whole test suite (in parallel), lint, layering and types included
	$(BIN)/ruff check .
	cd $(TYPED) && $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml
	$(BIN)/pytest
	$(BIN)/mypy

# lint-imports and mypy find modules on disk, and on disk anomaly_desk/ does not hold core/,
# receiver/, tui/ and sandbox/ (the install maps them under anomaly_desk.* with an import hook
# neither tool follows). This link tree is the package as it is installed; rebuilt every run, so
# new modules are always in it.
typed-tree:
	@rm -rf $(TYPED) && mkdir -p $(TYPED)/anomaly_desk
	@for f in anomaly_desk/*.py; do ln -s "$(CURDIR)/$$f" $(TYPED)/anomaly_desk/; done
	@for d in core receiver tui sandbox fixtures; do ln -s "$(CURDIR)/$$d" $(TYPED)/anomaly_desk/$$d; done

bench: $(BIN)/anomaly-desk  ## benchmarks (not part of `make test`)
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(TYPED) build/mypy_cache
