"""engine/roofline_points.py and `llmsim roofline` without a picture: the points come from
the engine predict uses, sit under the datasheet roofs, and the table lists them all."""
import json

import pytest

import simulator
from simulator.cli.main import main
from simulator.api import roofline_data
from simulator.specs.workload import workload


@pytest.fixture(scope="module")
def h100():
    return roofline_data("llama-3.1-8b", "h100-sxm", "pytorch-ref", workload(batch=8, prompt=1024, output=128))


def test_points_are_predicts_operators(h100):
    p = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=8, prompt=1024, output=128)
    prefill = {q.name: q for q in h100.points if q.phase == "prefill"}
    decode = {q.name: q for q in h100.points if q.phase == "decode"}
    assert set(prefill) == set(decode) == {o.name for o in p.breakdown}
    for o in p.breakdown:
        assert prefill[o.name].time_s == pytest.approx(o.prefill_time_s, rel=1e-12)
        assert prefill[o.name].bound == o.prefill_bound and decode[o.name].bound == o.decode_bound
    assert h100.decode_position == 1024 + (128 - 2) // 2 and h100.fits


def test_roofs_are_the_datasheet(h100):
    assert [(r.name, r.kind, r.value) for r in h100.roofs] == [
        ("bf16 peak", "compute", 989.4e12), ("fp32 vector peak", "compute", 67e12), ("HBM3", "memory", 3.35e12)]
    mi300x = roofline_data("llama-3.2-1b", "mi300x", "pytorch-ref", workload())
    assert [r.name for r in mi300x.roofs if r.kind == "memory"] == ["Infinity Cache (MALL)", "HBM3"]


@pytest.mark.parametrize("hardware", ["h100-sxm", "mi300x"])
def test_achieved_is_under_the_roofline_and_reaches_it_on_the_ideal_stack(hardware):
    for stack, exact in (("pytorch-ref", False), ("ideal", True)):
        d = roofline_data("llama-3.2-1b", hardware, stack, workload())
        top = max(r.value for r in d.roofs if r.kind == "compute")
        bandwidth = max(r.value for r in d.roofs if r.kind == "memory")
        for q in (q for q in d.points if q.flops > 0):
            assert q.attainable_flops_per_s <= min(top, q.intensity * bandwidth) * (1 + 1e-9)
            if exact:
                assert q.achieved_flops_per_s == pytest.approx(q.attainable_flops_per_s, rel=1e-9), q
            else:
                assert q.achieved_flops_per_s <= q.attainable_flops_per_s * (1 + 1e-9), q


def test_matmuls_are_compute_bound_in_prefill_and_memory_bound_in_decode(h100):
    matmuls = [q for q in h100.points if q.kind == "matmul"]
    assert all(q.bound == "compute" and q.intensity > 295 for q in matmuls if q.phase == "prefill")
    assert all(q.bound == "memory" and q.intensity < 295 for q in matmuls if q.phase == "decode")


def test_one_output_token_has_no_decode_step():
    d = roofline_data("llama-3.2-1b", "h100-sxm", "pytorch-ref", workload(output=1))
    assert d.decode_position is None and {q.phase for q in d.points} == {"prefill"}


def test_cli_table_and_json(capsys, h100):
    assert main(["roofline"]) == 0
    out = capsys.readouterr().out
    assert "roofs (datasheet): bf16 peak 989 TFLOP/s, fp32 vector peak 67 TFLOP/s, HBM3 3.35 TB/s" in out
    assert "ridge points: HBM3 295 FLOP/B" in out
    header = next(line for line in out.splitlines() if line.startswith("operator"))
    assert header.split() == ["operator", "phase", "time", "FLOPs", "bytes", "FLOP/B", "attainable", "achieved",
                              "bound"]
    rows = out.split(header)[1].strip().splitlines()[1:]
    assert len(rows) == len(h100.points) and rows[0].split()[:2] == ["embed_tokens", "prefill"]
    assert main(["roofline", "--model", "llama-3.2-1b", "--format", "json", "--output", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decode_position"] is None and {p["phase"] for p in data["points"]} == {"prefill"}
    fields = {"intensity_flop_per_byte", "achieved_flops_per_s", "attainable_flops_per_s", "bound"}
    assert fields <= set(data["points"][0])


def test_cli_refuses_a_draft_model(capsys):
    assert main(["roofline", "--draft-model", "llama-3.2-1b"]) == 2
    assert "draft-model" in capsys.readouterr().err
