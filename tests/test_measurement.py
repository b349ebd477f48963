"""The harness's file schema (simulator/specs/measurement.py): every committed file loads
unchanged, and a malformed one is refused naming its field."""
import json
import statistics

import pytest

from simulator.calibration.beyond import is_supplement

from simulator.errors import SpecError
from simulator.specs.measurement import (CpuLaunch, E2EFile, GpuLaunch, MicroFile, check, load_e2e, load_micro,
                                         measurement_root)

FILES = sorted(f for f in measurement_root().rglob("*.json") if f.name not in ("bands.json", "bands-serving.json"))  # derived


OWN_READERS = ("serving-", "hf-generate-", "pass-profile-", "mixed-iterations-", "host-modes-", "llama-bench-")
SCHEMA_FILES = [f for f in FILES if not f.name.startswith(OWN_READERS)]
# serving runs: accuracy/serving.py; hf-generate runs: calibration/importers/hf_generate.py; pass
# profiles: calibration/beyond.py (routed tiles); mixed iterations: calibration/serving_host.py;
# host modes: nothing is fitted from them (test_host_modes_show_the_host_spread below);
# llama-bench runs: calibration/importers/llama_bench.py (tests/test_llama_bench_h200.py)


def test_every_committed_measurement_file_is_a_micro_e2e_or_serving_file():
    assert len(SCHEMA_FILES) >= 21
    assert all(f.name.startswith(("micro-", "e2e-", *OWN_READERS)) for f in FILES)


def _quantile(values, q):
    return sorted(values)[int(q * (len(values) - 1))]


@pytest.mark.parametrize("path", [f for f in FILES if f.name.startswith("host-modes-")],
                         ids=lambda p: str(p.relative_to(measurement_root())))
def test_host_modes_show_the_host_spread(path):
    """What the README says of host-modes runs: a host-bound pass (event time within 10% of its
    host launch time) spreads >= 1.3x p10-p90 under every condition pooled, while a GPU-bound one
    (host time under half the event time) repeats within 6% p10-p90."""
    doc = json.loads(path.read_text())
    assert doc["harness"] == "host_modes" and doc["environment"]["gpu_name"]
    host_bound, gpu_bound = [], []
    for p in doc["points"]:
        ev = [t for c in doc["conditions"] for t in p[c]["event_s"]]
        host = [t for c in doc["conditions"] for t in p[c]["host_s"]]
        assert len(ev) == len(host) == doc["reps"] * len(doc["conditions"]) and min(ev) > 0
        ratio = _quantile(ev, 0.9) / _quantile(ev, 0.1)
        if statistics.median(host) > 0.9 * statistics.median(ev):
            host_bound.append(ratio)
        elif statistics.median(host) < 0.5 * statistics.median(ev):
            gpu_bound.append(ratio)
    assert len(host_bound) >= 3 and len(gpu_bound) >= 3
    assert statistics.median(host_bound) >= 1.3 and max(gpu_bound) <= 1.06


def test_pass_profiles_carry_their_schema_and_the_routing_rows_the_fit_reads():
    from simulator.calibration.beyond import PASS_PROFILE_SCHEMA, pass_profile_paths, pass_profiles

    assert len(pass_profiles("h200-sxm")) == len(pass_profile_paths("h200-sxm")) >= 1
    for doc in pass_profiles("h200-sxm"):
        rows = [x for r in doc["results"] for x in r.get("routing", [])]
        assert doc["schema"] == PASS_PROFILE_SCHEMA and doc["environment"]["gpu_name"] and rows
        assert all(x["gate_up_routed_s"] > 0 and x["down_uniform_s"] > 0 and x["mean"] > 0 for x in rows)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(measurement_root())))
def test_committed_file_loads_unchanged(path):
    """The schema accepts the file as written, keeps every field the harness recorded, and
    the typed sections hold what the simulator reads (a micro_beyond supplement: its own
    sections, read by calibration/beyond.py)."""
    raw = json.loads(path.read_text())
    doc = (load_micro if path.name.startswith("micro-") else load_e2e)(path)
    assert doc.model_dump(by_alias=True, exclude_unset=True) == raw
    if isinstance(doc, MicroFile) and is_supplement(doc):
        assert doc.launch is None and not doc.matmul
    elif isinstance(doc, MicroFile):
        assert doc.matmul and doc.attention and doc.elementwise
        assert isinstance(doc.launch, CpuLaunch if doc.environment.device == "cpu" else GpuLaunch)
        assert doc.dtype in ("bf16", "fp32")
    else:
        assert isinstance(doc, E2EFile) and doc.points
        assert all(p.length is not None and p.latency_median_s > 0 for p in doc.points)


def _micro() -> dict:
    return json.loads(next(f for f in FILES if f.name.startswith("micro-")).read_text())


def test_a_file_of_another_schema_is_refused(tmp_path):
    bad = tmp_path / "micro-bad.json"
    bad.write_text(json.dumps({**_micro(), "schema": "llmsim-harness-e2e/1"}))
    with pytest.raises(SpecError) as info:
        load_micro(bad)
    assert info.value.field == "schema"


def test_a_malformed_row_names_its_field(tmp_path):
    data = _micro()
    del data["matmul"][3]["latency_s"]
    bad = tmp_path / "micro-bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(SpecError) as info:
        load_micro(bad)
    assert info.value.field == "matmul.3.latency_s"


def test_unreadable_json_is_one_clear_error(tmp_path):
    bad = tmp_path / "e2e-bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="cannot read end-to-end JSON"):
        load_e2e(bad)


def test_a_decode_point_needs_its_context_length():
    doc = {"schema": "llmsim-harness-e2e/1", "environment": {"harness_version": "t", "date_utc": "2026-01-01"},
           "points": [{"model": "m", "phase": "decode", "batch": 1, "latency_median_s": 0.01}]}
    with pytest.raises(ValueError, match="context_len"):
        check(doc)
    doc["points"][0]["context_len"] = 128
    check(doc)
