PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench docs validation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[plot]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-demo

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/python -m sknbmix demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check conftest.py sknbmix tests benchmarks examples validation
	$(BIN)/ruff format --check conftest.py sknbmix tests benchmarks examples validation
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check conftest.py sknbmix tests benchmarks examples validation
	$(BIN)/ruff format --check conftest.py sknbmix tests benchmarks examples validation

bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_bootstrap.py
	$(BIN)/python benchmarks/bench_screen.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_starts.py

# The statistical validity study (validation/README.md): bootstrap coverage,
# parameter recovery and public count data, about 65 minutes of processor time.
validation: $(VENV)/.installed-test
	$(BIN)/python validation/interval_coverage.py
	$(BIN)/python validation/recovery.py
	$(BIN)/python validation/public_data.py
	$(BIN)/python validation/size_factors.py
	$(BIN)/python validation/lrt_calibration.py

# Runs the tutorial scripts of examples/ (sphinx-gallery); warnings are errors.
docs: $(VENV)/.installed-docs
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
