"""Grouped GEMMs over routed experts: tiles over uneven groups (grouped.routed_tile_scale),
its use in the engine, and the fit of the tile range from a pass profile (calibration/beyond.py)."""
import math

import pytest

from simulator.calibration.beyond import pass_profiles, routed_tile_fields
from simulator.calibration.launch import chain_floors
from simulator.engine.kernels.grouped import routed_tile_scale


def _by_hand(mean, sd, lo, hi):
    q = lo
    while q < mean and q < hi:
        q *= 2
    tiles = 1.0 + sum(0.5 * math.erfc((j * q - mean) / (sd * math.sqrt(2))) for j in range(1, 200))
    return tiles / math.ceil(mean / q)


@pytest.mark.parametrize("mean,sd", [(128, 12.0), (512, 40.0), (2048, 94.0), (32, 6.0), (100, 30.0), (1, 1.0)])
def test_routed_tile_scale_is_the_expected_tiles_over_the_even_ones(mean, sd):
    assert routed_tile_scale(mean, sd, 128, 256) == pytest.approx(_by_hand(mean, sd, 128, 256), rel=1e-9)


def test_a_mean_on_a_tile_boundary_costs_half_a_tile_more():
    """Half the groups spill past q = mean into a second tile: x1.5 however small the spread."""
    assert routed_tile_scale(128, 5.0, 128, 256) == pytest.approx(1.5, abs=1e-6)
    assert routed_tile_scale(256, 8.0, 128, 256) == pytest.approx(1.5, abs=1e-6)


def test_no_term_without_a_tile_range_or_spread():
    assert routed_tile_scale(128, 12.0, 0, 0) == 1.0
    assert routed_tile_scale(128, 0.0, 128, 256) == 1.0
    assert routed_tile_scale(8, 2.8, 128, 256) == pytest.approx(1.0)        # far below one tile


def _ttft(model, prompt, stack):
    from simulator.accuracy.measured import Point, predict_point

    return predict_point(Point("h200-sxm", model, "prefill", 1, prompt, "latency", 1.0, "test"), stack)


def test_mixtral_prefill_pays_for_uneven_experts_and_dense_models_do_not():
    from simulator.specs import registry

    stack = registry.stack("pytorch-ref")
    profile = stack.devices["h200-sxm"]
    assert (profile.expert_gemm.group_tile_min, profile.expert_gemm.group_tile_max) == (128, 256)
    even = profile.model_copy(update={"expert_gemm": profile.expert_gemm.model_copy(update={"group_tile_max": 0})})
    flat = stack.model_copy(update={"devices": {**stack.devices, "h200-sxm": even}})
    # 512 tokens x top-2 over 8 experts: 128 rows a group, on the tile boundary (the expert
    # GEMMs are most of the pass); 8 rows a group for qwen3-30b-a3b at 128 tokens: no change
    assert 1.25 < _ttft("mixtral-8x7b", 512, stack) / _ttft("mixtral-8x7b", 512, flat) < 1.5
    assert _ttft("qwen3-30b-a3b", 128, stack) == pytest.approx(_ttft("qwen3-30b-a3b", 128, flat), rel=1e-3)
    assert _ttft("llama-3.1-8b", 512, stack) == _ttft("llama-3.1-8b", 512, flat)


def test_the_tile_range_is_fitted_from_the_committed_pass_profile():
    fields, fits = routed_tile_fields(pass_profiles("h200-sxm"))
    assert fields == {"expert_gemm": {"group_tile_min": 128, "group_tile_max": 256}}
    assert fits[0].summary()["median_abs_error"] < 0.06


def test_chain_floors_scale_the_dense_floors_by_the_measured_ratio():
    class Micro:
        model_extra = {"eager_chains": {
            "matmul": {"eager_per_call_s": 20e-6, "kernels": 1}, "rms_norm": {"eager_per_call_s": 20e-6, "kernels": 1},
            "add": {"eager_per_call_s": 20e-6, "kernels": 1}, "moe_route": {"eager_per_call_s": 16 * 30e-6, "kernels": 16}}}
    floors = {"matmul": "10 us", "norm": "10 us", "residual_add": "10 us"}
    out = chain_floors(floors, {"a": Micro()})
    assert set(out) == {"moe_route"}
    assert float(out["moe_route"].split()[0]) == pytest.approx(15e-6)
    assert chain_floors({"matmul": "10 us"}, {"a": Micro()}) == {}
