PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/python -m sknbmix demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check sknbmix tests benchmarks
	$(BIN)/ruff format --check sknbmix tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check sknbmix tests benchmarks
	$(BIN)/ruff format --check sknbmix tests benchmarks

bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_bootstrap.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
