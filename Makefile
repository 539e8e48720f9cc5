# graphfuse: `make serve` starts the server on the UMLS demo graph; `make test` runs the test suite.
# Both create the virtual environment in .venv/ first (torch pinned and installed before the rest).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup serve test test-all proto lint bench bench-encoder flink-env clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python proto/generate.py --check
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/graphfuse serve --train-demo $(ARGS)

test: $(STAMP)
	$(BIN)/pytest -q $(ARGS)

test-all: $(STAMP)
	GRAPHFUSE_SLOW=1 $(BIN)/pytest -q $(ARGS)

flink-env:  # the Flink job's environment (.flink-venv/, flink/lib/); its test skips without it
	PYTHON=$(PYTHON) flink/setup.sh

proto: $(STAMP)
	$(BIN)/python proto/generate.py

lint: $(STAMP)
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench.umls_qa $(ARGS)

bench-encoder: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.encoder_throughput
	$(BIN)/python -m bench.encoder_backends

clean:
	rm -rf $(VENV) .flink-venv flink/lib .graphfuse .pytest_cache
