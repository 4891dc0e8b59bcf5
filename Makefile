# One-command entry points for a fresh machine (Python >= 3.10 with venv and pip).
# The pinned CPU torch wheel is installed first so nothing can pull a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/wavefast demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf demo_out .pytest_cache
