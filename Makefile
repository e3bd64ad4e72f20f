# Two commands for a newcomer:
#   make suite      install into .venv and run the conformance cases against the embedded reference server
#   make selftest   run the self-tests (schemas, reference server, monitor, model, harness, kill matrix)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install suite selftest bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

suite: install
	$(BIN)/pytest cases $(PYTEST_ARGS)

selftest: install
	$(BIN)/pytest tests $(PYTEST_ARGS)

bench: install
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) reports/*/ .pytest_cache .hypothesis
