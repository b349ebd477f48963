"""Hugging Face transformers generate() on the H200 (validation/harness/hf_generate.py): the
committed runs read through the importer, the harness builds its configs from the model
specs, and the `hf-transformers` stack fitted from them holds its leave-one-model-out bound
and predicts what its record says."""
import json
import pathlib

import numpy as np
import pytest

import simulator
from simulator.accuracy.published import run_fitted
from simulator.calibration.importers import load_runs
from simulator.specs import registry
from validation.harness import hf_generate

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_FILES = sorted((ROOT / "validation" / "measurements" / "h200-sxm").glob("hf-generate-*/hf-generate-*.json"))
# median |error| on held-out models: issue 17's 0.10 (measured 6.0% and 9.9% with the eager decode
# steps bounded by the host's launches, eager.eager_range_s; 10.2% and 11.9% before)
LOMO_BOUND = {"ttft_s": 0.10, "tpot_s": 0.10}


def test_committed_runs_read_through_the_importer():
    """Every committed file is the importer's schema, on the H200, with TTFT and TPOT per run,
    five models, and the environment the harness recorded."""
    assert RUN_FILES
    for path in RUN_FILES:
        doc = json.loads(path.read_text())
        assert doc["schema"] == hf_generate.SCHEMA
        env = doc["environment"]
        assert env["gpu_name"] == "NVIDIA H200" and env["transformers_version"] and env["driver_version"]
        runs = load_runs(path)
        assert len({r.model for r in runs}) == 5 and all(r.hardware == "h200-sxm" for r in runs)
        assert all(r.ttft_s > 0 and r.tpot_s > 0 for r in runs)


def test_harness_configs_come_from_the_model_specs():
    """The harness builds each model from its spec's Hugging Face config (the same numbers
    the simulator predicts with); the prefill estimate skips only the heaviest points."""
    for name in hf_generate.MODELS:
        config = hf_generate.spec_config(name, ROOT)
        _, _, spec = registry.model(name)
        assert config["num_hidden_layers"] == spec.config["num_hidden_layers"]
    assert not hf_generate.too_slow(15e9, 16, 1024)
    assert hf_generate.too_slow(15e9, 64, 4096)


@pytest.fixture(scope="module")
def record():
    return registry.stack("hf-transformers").calibration


def test_leave_one_model_out_bound(record):
    """The stack file's cross-validation is leave one model out over the committed runs, each
    model predicted by a fit that never saw it, within the bound (TTFT and TPOT medians)."""
    cv = record["cross_validation"]
    assert cv["scheme"] == "model"
    assert set(record["fitted_on"]["models"]) == set(hf_generate.MODELS)
    assert all((ROOT / path).resolve() in RUN_FILES for path in record["runs_from"])
    errors = {e["metric"]: e for e in cv["errors"]}
    for metric, bound in LOMO_BOUND.items():
        assert errors[metric]["median_abs_error"] <= bound, (metric, errors[metric])
    assert "hf-transformers" in run_fitted()
    assert registry.stack("hf-transformers").decode_graphs is False     # generate() launches decode eagerly


def test_stack_predicts_what_its_record_says(record):
    """The committed stack, through the public predict path, gives each run the in-sample
    error its record reports (the file is the fit, not a copy that drifted)."""
    runs = [r for path in record["runs_from"] for r in load_runs(ROOT / path)]
    errors = []
    for run in runs[::5]:
        p = simulator.predict(model=run.model, hardware=run.hardware, stack="hf-transformers", batch=run.batch,
                              prompt=run.prompt, output=run.output)
        errors.append(p.tpot_s / run.tpot_s - 1)
    in_sample = {e["metric"]: e for e in record["in_sample"]}["tpot_s"]
    assert np.median(np.abs(errors)) == pytest.approx(in_sample["median_abs_error"], abs=0.08)
    assert all(abs(e) <= in_sample["max_abs_error"] + 1e-3 for e in errors)
