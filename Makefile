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
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest tests/test_roofline.py tests/test_batch.py tests/test_steptable.py

fuzz: $(STAMP)
	LLMSIM_FUZZ_CASES=10000 $(BIN)/python -m pytest tests/test_fuzz.py -q

PEER := .venv-bench/.installed

$(PEER):        # llm-analysis, the benchmarks' peer, in its own venv (its transformers pins stay out of .venv)
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet "llm-analysis==0.2.2"
	touch $(PEER)

bench: $(STAMP) $(PEER)
	$(BIN)/python -m pip install --quiet -e ".[test,parquet]"
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_sweep.py

readme: $(STAMP)
	$(BIN)/python -m tools.bands
	$(BIN)/python -m tools.serving_bands
	$(BIN)/python -m tools.readme_tables
	$(BIN)/python -m tools.readme_pictures

clean:
	rm -rf $(VENV) build *.egg-info

clean-cache:      # numba's compiled kernels (stale after a kernel module changes)
	find simulator -name '*.nbi' -delete -o -name '*.nbc' -delete
