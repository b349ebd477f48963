"""simulator.configure and predict's kept configurations: the same Prediction as a fresh
evaluation, bad input still refused after good input of equal value was seen, a changed spec
file read again, and the breakdown computed when read."""
import json

import pytest

import simulator
from simulator.engine.predict import evaluate, prepare
from simulator.errors import WorkloadError
from simulator.specs import registry
from simulator.specs.workload import workload

SCENARIOS = [(1, 128, 1), (8, 1024, 128), (64, 4096, 512), (3, 100, 7), (512, 32768, 2048)]


def _fresh(model, hardware, **fields):
    """evaluate() of a freshly prepared configuration (no kept objects on the path)."""
    w = workload(**fields)
    name, arch, _ = registry.model(model)
    prep = prepare(name, arch, registry.hardware(hardware), registry.stack("pytorch-ref"), w.weight_format,
                   w.activation_dtype, w.kv_dtype, w.tp, w.ep)
    return evaluate(prep, w)


@pytest.mark.parametrize("b,s,n", SCENARIOS)
def test_configured_equals_predict_and_a_fresh_evaluation(b, s, n):
    c = simulator.configure("llama-3.1-8b", "h100-sxm", tp=2)
    p = c.predict(b, s, n)
    q = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=b, prompt=s, output=n, tp=2)
    fresh = _fresh("llama-3.1-8b", "h100-sxm", batch=b, prompt=s, output=n, tp=2)
    assert json.loads(p.model_dump_json()) == json.loads(q.model_dump_json())
    got, want = json.loads(p.model_dump_json()), json.loads(fresh.model_dump_json())
    got.pop("confidence"), want.pop("confidence")
    assert got == want


def test_the_same_values_of_another_type_are_still_validated():
    simulator.predict(model="llama-3.2-1b", hardware="h100-sxm", batch=1, tp=1)
    with pytest.raises(WorkloadError) as info:
        simulator.predict(model="llama-3.2-1b", hardware="h100-sxm", batch=True)
    assert info.value.field == "batch"
    with pytest.raises(WorkloadError) as info:
        simulator.predict(model="llama-3.2-1b", hardware="h100-sxm", batch=1.0)
    assert info.value.field == "batch"
    with pytest.raises(WorkloadError) as info:
        simulator.predict(model="llama-3.2-1b", hardware="h100-sxm", tp=True)
    assert info.value.field == "tp"
    c = simulator.configure("llama-3.2-1b", "h100-sxm", dp=2)
    with pytest.raises(WorkloadError) as info:
        c.predict(3, 128, 16)                              # 2 replicas do not split 3 sequences
    assert info.value.field == "dp"


def test_a_changed_spec_file_is_read_again(tmp_path):
    text = (registry.data_root() / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text()
    path = tmp_path / "device.yaml"
    path.write_text(text)
    slow = simulator.predict(model="llama-3.2-1b", hardware=str(path), batch=1, prompt=512, output=64)
    path.write_text(text.replace("bandwidth: 3.35 TB/s", "bandwidth: 6.7 TB/s").replace("name: h100-sxm", "name: fast"))
    fast = simulator.predict(model="llama-3.2-1b", hardware=str(path), batch=1, prompt=512, output=64)
    assert fast.hardware == "fast" and fast.tpot_s < 0.75 * slow.tpot_s


def test_breakdown_is_computed_when_read_and_kept():
    p = simulator.configure("llama-3.1-8b", "h100-sxm").predict(8, 1024, 128)
    assert "breakdown" not in vars(p)
    first = p.breakdown
    assert p.breakdown is first and len(first) > 10
    assert 0.95 < sum(o.share for o in first) <= 1.0
    assert json.loads(p.model_dump_json())["breakdown"][0]["name"] == first[0].name


def test_a_scenario_that_does_not_fit_has_no_times_nor_breakdown():
    p = simulator.configure("llama-3.1-70b", "rtx-4090").predict(8, 1024, 128)
    assert p.ttft_s is None and p.breakdown == [] and not p.memory.fits and "does not fit" in p.note


def test_configure_refuses_bad_options():
    with pytest.raises(WorkloadError):
        simulator.configure("llama-3.1-8b", "h100-sxm", kv_dtype="fp9")
