# Two commands for a newcomer:
#   make suite      install into .venv and run the conformance cases against the embedded reference server
#   make selftest   run the self-tests (schemas, reference server, monitor, model, harness, kill matrix)
#                   on 8 pytest-xdist workers (the suite runs they start mostly wait on sockets)
#   make selftest-heavy  the self-tests marked `heavy` (tens of seconds of CPU each), which selftest leaves out;
#                   CI runs them after selftest
#   make check      the inner loop: the self-tests that start no whole suite run (under a minute)
#   make bench      bench/bench_*.py (bench_endings.py: the five adversarial endings with default options,
#                   ~5 min), then the same endings as self-tests with a 1 s idle deadline (marker
#                   `endings`, ~2.5 min; kept out of selftest so that CI stays well under 15 minutes)
#   make client     client mode: the bundled example client (examples/sdk_client.py) through every client scenario
#                   (it claims lanes and steering, so their scenarios run too)
#   make schemas    regenerate schemas/ from schemas/tools/build.py, then check the committed files match
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
XDIST ?= -n 8

.PHONY: install suite client selftest selftest-heavy check bench schemas clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

suite: install
	$(BIN)/pytest cases $(PYTEST_ARGS)

client: install
	$(BIN)/pytest --client-command "python examples/sdk_client.py" --client-claims lanes,steering $(PYTEST_ARGS)

selftest: install
	$(BIN)/pytest tests -m "not endings and not heavy" $(XDIST) $(PYTEST_ARGS)

selftest-heavy: install
	$(BIN)/pytest tests -m heavy $(XDIST) $(PYTEST_ARGS)

check: install
	$(BIN)/pytest tests -m "not endings and not suite_run and not heavy" $(XDIST) -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	missed=0; for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || missed=1; done; \
	$(BIN)/pytest tests/test_endings.py -m endings -p no:cacheprovider && exit $$missed

# regenerate the generated part of schemas/ (per-event files, index.json, vectors); fail when that
# changed a file (review and commit it), then check every vector against the schemas
schemas: install
	$(BIN)/python schemas/tools/build.py --check || { $(BIN)/python schemas/tools/build.py; \
		echo "schemas/: regenerated the files above; review and commit them"; exit 1; }
	$(BIN)/pytest tests/test_schemas.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) reports/*/ .pytest_cache .hypothesis
