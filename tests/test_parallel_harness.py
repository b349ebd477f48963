"""The harness's parallel modes (validation/harness/parallel_*.py) and the collective model's
calibration (simulator/calibration/collectives.py). The torch parts run on the CPU with gloo at
world size 2 (skipped without torch); the calibration reads a synthetic canned file
(tests/data/parallel/, labelled as such: nothing there was measured)."""
import argparse
import json
import pathlib

import pytest

from simulator.accuracy.measured import Point, predict_point
from simulator.calibration import collectives as CC
from simulator.errors import SpecError
from simulator.specs import registry
from simulator.specs.measurement import check, load_collectives, load_e2e
from validation.harness import parallel_collectives as PC
from validation.harness.parallel_model import stage_layers

DATA = pathlib.Path(__file__).resolve().parent / "data" / "parallel"
CANNED = DATA / "collectives-synthetic-w4.json"


# ---------------------------------------------------------------- without torch
def test_sizes_and_bus_factors_are_nccl_tests_definitions():
    sizes = PC.sizes_bytes()
    assert sizes[0] == 1024 and sizes[-1] == 1 << 30 and all(b == 4 * a for a, b in zip(sizes, sizes[1:]))
    for n in (2, 4, 8):
        assert PC.bus_factor("all_reduce", n) == pytest.approx(2 * (n - 1) / n)
        assert PC.bus_factor("all_gather", n) == PC.bus_factor("all_to_all", n) == pytest.approx((n - 1) / n)
        assert PC.bus_factor("send_recv", n) == 1.0
    assert PC.bus_factor("all_reduce", 1) == 0.0


def test_pipeline_stages_cover_the_layers_once():
    for layers, stages in ((32, 4), (30, 4), (5, 2), (80, 8)):
        got = [list(stage_layers(layers, stages, s)) for s in range(stages)]
        assert sum(got, []) == list(range(layers))
        assert max(map(len, got)) - min(map(len, got)) <= 1


def test_collective_fit_recovers_the_canned_files_parameters():
    """The synthetic file was generated from t = a + factor x bytes / W_bus with a 3 % ripple."""
    hw = registry.hardware("h200-sxm")
    doc = json.loads(CANNED.read_text())
    assert doc["run"]["synthetic"] is True
    fits = CC.fit_collectives([load_collectives(CANNED)], hw)
    assert len(fits) == 8
    for f in fits:
        truth = doc["run"]["parameters"][f"{f.op} {'graphed' if f.graphed else 'eager'}"]
        assert f.fixed_s == pytest.approx(truth["a_s"], rel=0.02)
        assert f.bus_bandwidth_bytes_per_s == pytest.approx(truth["bus_bandwidth_bytes_per_s"], rel=0.02)
        assert f.fit.summary()["max_abs_error"] < 0.04
        assert f.link_fraction == pytest.approx(f.bus_bandwidth_bytes_per_s / 450e9)
    ar = next(f for f in fits if f.op == "all_reduce" and f.graphed)
    assert ar.hops == 6 and ar.latency_per_hop_s == pytest.approx(ar.fixed_s / 6)      # ring over 4 devices


def test_collective_profile_fields_read_back_and_nothing_changes_without_files():
    hw = registry.hardware("h200-sxm")
    fields, fits = CC.with_collectives({"fitted_from": "micro"}, [], hw, [CANNED])
    a = json.loads(CANNED.read_text())["run"]["parameters"]["all_reduce graphed"]["a_s"]
    from simulator.units import parse
    got = parse(fields["kernel_overhead_by_kind"]["collective"], "time")
    assert got == pytest.approx(a - 6 * hw.interconnect[0].latency_s, rel=0.05)     # beyond the link's hops
    assert 15e-6 < parse(fields["prefill_launch_overhead_by_kind"]["collective"], "time") < 30e-6
    assert fields["fitted_from"].endswith("collectives-synthetic-w4.json") and len(fits) == 8
    truth = json.loads(CANNED.read_text())["run"]["parameters"]["all_reduce graphed"]["bus_bandwidth_bytes_per_s"]
    assert fields["collective_bandwidth_fraction"] == pytest.approx(min(1.0, truth / 450e9), rel=0.02)
    assert CC.device_files("h200-sxm") == []                 # no device has such files yet
    assert CC.with_collectives({"x": 1}, [], hw) == ({"x": 1}, [])


def test_calibrate_cli_reports_the_collective_fit():
    from simulator.cli.calibrate import _with_collectives

    hw = registry.hardware("h200-sxm")
    args = argparse.Namespace(collectives=[str(CANNED)], stack="pytorch-ref")
    fields, fits, text = _with_collectives({}, [], hw, args)
    assert "all_reduce n=4 graphed" in text and "bus GB/s" in text and "collective" in fields["kernel_overhead_by_kind"]
    none = argparse.Namespace(collectives=None, stack="pytorch-ref")
    assert _with_collectives({"a": 1}, [], hw, none) == ({"a": 1}, [], "")


def test_bad_collectives_file_names_the_field(tmp_path):
    doc = json.loads(CANNED.read_text())
    doc["collectives"][0]["latency_median_s"] = -1
    bad = tmp_path / "collectives-bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SpecError, match="latency_median_s"):
        load_collectives(bad)
    with pytest.raises(ValueError):
        check(doc)


def test_parallel_points_are_predicted_with_their_layout():
    base = dict(hardware="h200-sxm", model="llama-3.1-8b", phase="decode", batch=16, length=2048, metric="latency",
                measured=1.0, source="x")
    one, tp2 = Point(**base), Point(**base, tp=2)
    assert tp2.layout == {"tp": 2} and one.layout == {} and "tp=2" in tp2.label
    assert predict_point(tp2, "pytorch-ref") < predict_point(one, "pytorch-ref")
    pp = Point(**base, pp=2, microbatches=2)
    assert predict_point(pp, "pytorch-ref") != predict_point(one, "pytorch-ref")
    moe = dict(base, model="qwen3-30b-a3b")
    assert predict_point(Point(**moe, ep=2), "pytorch-ref") != predict_point(Point(**moe), "pytorch-ref")


# ---------------------------------------------------------------- torch, gloo, world size 2
@pytest.fixture(scope="module")
def e2e_files(tmp_path_factory):
    pytest.importorskip("torch")
    from validation.harness import parallel_e2e as E

    out = tmp_path_factory.mktemp("parallel")
    grid = [("prefill", 2, 16), ("decode", 4, 32)]
    return {mode: E.run(mode, 2, out, [str(DATA / model)], microbatches=2, backend="gloo", grid=grid, budget_s=120)
            for mode, model in (("tp", "tiny-dense.yaml"), ("pp", "tiny-dense.yaml"), ("ep", "tiny-moe.yaml"))}


@pytest.mark.parametrize("mode", ["tp", "pp", "ep"])
def test_parallel_logits_equal_the_single_process_decoders(e2e_files, mode):
    check = load_e2e(e2e_files[mode]).self_check
    assert check["mode"] == mode and check["world_size"] == 2 and check["backend"] == "gloo"
    bound = 2e-2 if check["dtype"] == "bfloat16" else 1e-5          # MoE runs in bf16 only
    for run in ("prefill", "decode"):
        assert check[f"{run}_logits_rel_err"] < bound
        assert check[f"{run}_argmax_equal"] and check[f"{run}_finite"]
    if mode == "ep":
        assert check["dropped_slots"] == 0


@pytest.mark.parametrize("mode", ["tp", "pp", "ep"])
def test_parallel_e2e_points_carry_their_layout(e2e_files, mode):
    data = load_e2e(e2e_files[mode])
    assert data.run["status"] == "complete" and not data.errors
    points = {p.phase: p for p in data.points}
    assert set(points) == {"prefill", "decode"}
    for p in points.values():
        assert (p.tp, p.pp, p.ep) == tuple(2 if m == mode else 1 for m in ("tp", "pp", "ep"))
        assert p.suite == mode and p.latency_median_s > 0
    assert points["decode"].microbatches == (2 if mode == "pp" else 1)
    assert Point.of("h200-sxm", points["decode"], "latency", 1.0, "x").layout[mode] == 2


def _moe_checks(ctx):
    """A TP self-check of the MoE model, and EP at capacity 0.5 (slots dropped: the logits
    move, so the all-to-all really carries the tokens)."""
    from validation.harness import parallel_model as PM

    tp_moe = PM.self_check(ctx, "tp", "moe")
    cfg = PM.tiny_config("moe")
    full = PM.RefDecoder(cfg, device="cpu", max_positions=40, seed=1)
    toks = full.random_tokens(4, 14)
    ref = full.prefill(toks, *full.new_cache(4, 40), return_logits=True)[1]
    m = PM.build("ep", cfg, ctx, 40, capacity_factor=0.5, full=full)
    mine = toks[2 * ctx.rank:2 * ctx.rank + 2].contiguous()
    out = m.prefill(mine, *m.new_cache(2, 40), return_logits=True)[1]
    return tp_moe, PM._rel(out, ref[2 * ctx.rank:2 * ctx.rank + 2]), int(m.dropped)


def test_tp_moe_matches_and_ep_drops_show(tmp_path):
    pytest.importorskip("torch")
    from validation.harness import parallel_dist as D

    tp_moe, dropped_err, dropped = D.launch(2, _moe_checks, backend="gloo")
    assert tp_moe["prefill_logits_rel_err"] < 2e-2 and tp_moe["decode_argmax_equal"]
    assert dropped > 0 and dropped_err > 1e-2


def test_collective_microbenchmarks_write_a_valid_file(tmp_path):
    pytest.importorskip("torch")
    path = PC.run(2, tmp_path, sizes=[1024, 16384], repeats=2, backend="gloo")
    data = load_collectives(path)
    assert {(r.op, r.bytes) for r in data.collectives} == {(op, s) for op in PC.OPS for s in (1024, 16384)}
    for r in data.collectives:
        assert r.world_size == 2 and not r.graphed                  # no graphs on the CPU
        assert r.busbw_bytes_per_s == pytest.approx(r.bytes / r.latency_median_s * PC.bus_factor(r.op, 2))
    env = data.environment.model_dump()
    assert env["backend"] == "gloo" and env["env_vars"]["NCCL_NVLS_ENABLE"] == "0"


def test_the_achieved_collective_bandwidth_slows_only_the_collectives():
    """A profile's collective_bandwidth_fraction divides the link's bandwidth for collectives
    (bind._bind_collectives): at tp 2 the all-reduce's link time doubles at 0.5, the rest stays."""
    import numpy as np

    from simulator.api import prepare
    from simulator.graph.ops import OpKind
    from simulator.specs.base import Dtype

    bf = Dtype.bf16
    stack = registry.stack("pytorch-ref")
    profile = stack.devices["h200-sxm"]
    half = stack.model_copy(update={"devices": {**stack.devices, "h200-sxm": profile.model_copy(
        update={"collective_bandwidth_fraction": 0.5})}})
    full_r, half_r = (prepare("llama-3.1-8b", "h200-sxm", s, bf, bf, bf, tp=2).rates for s in (stack, half))
    coll = np.array([OpKind(int(k)).is_collective for k in full_r.table.kind])
    assert coll.any()
    assert np.allclose(half_r.mem_s[coll], 2 * full_r.mem_s[coll])
    assert np.array_equal(half_r.mem_s[~coll], full_r.mem_s[~coll])
