# The two commands of the README: `make run` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test fuzz bench readme clean clean-cache

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/llmsim predict

test: $(STAMP)
	$(BIN)/python -m pytest
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest tests/test_roofline.py tests/test_batch.py

fuzz: $(STAMP)
	LLMSIM_FUZZ_CASES=10000 $(BIN)/python -m pytest tests/test_fuzz.py -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_sweep.py

readme: $(STAMP)
	$(BIN)/python -m tools.bands
	$(BIN)/python -m tools.readme_tables
	$(BIN)/python -m tools.readme_pictures

clean:
	rm -rf $(VENV) build *.egg-info

clean-cache:      # numba's compiled kernels (stale after a kernel module changes)
	find simulator -name '*.nbi' -delete -o -name '*.nbc' -delete
