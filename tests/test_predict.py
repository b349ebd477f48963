import pathlib
import tempfile

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import simulator
from simulator.engine.kernels import roofline
from simulator.engine.bind import bind
from simulator.engine.kernels.phases import decode_segments
from simulator.errors import WorkloadError
from simulator.graph.lower import lower
from simulator.specs import registry
from simulator.specs.base import Dtype


def test_ideal_batch1_decode_is_bytes_over_bandwidth():
    """Issue acceptance: (weight bytes read + KV bytes read) / 3.35 TB/s within 1%. The
    untied embedding table (128256 x 4096) is gathered, one row per token, not read whole."""
    prompt = 1024
    p = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", stack="ideal", batch=1, prompt=prompt, output=2)
    weights = (8.030261248e9 - 128256 * 4096) * 2
    kv_read = (prompt + 1) * 32 * 2 * 8 * 128 * 2          # the step at position S attends over S + 1
    assert p.tpot_s == pytest.approx((weights + kv_read) / 3.35e12, rel=0.01)


def _step_time(model, hardware, stack, batch, position):
    _, arch, _ = registry.model(model)
    st_ = registry.stack(stack)
    t = lower(arch, Dtype.bf16, Dtype.bf16, Dtype.bf16, st_.attention == "unfused")
    b = bind(t, registry.hardware(hardware), st_, Dtype.bf16)
    f0, f1, _, _ = decode_segments(batch, position, position, t.window)[-1]
    return roofline.evaluate_point(*b.pass_arrays(), f0 + f1 * position)[0].sum() + b.step_overhead_s


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mistral-7b"])
def test_tpot_is_mean_of_steps_at_positions_s_to_s_plus_n_minus_2(model):
    S, N, B = 4000, 200, 4
    p = simulator.predict(model=model, hardware="h100-sxm", batch=B, prompt=S, output=N)
    steps = [_step_time(model, "h100-sxm", "pytorch-ref", B, c) for c in range(S, S + N - 1)]
    assert p.tpot_s == pytest.approx(np.mean(steps), rel=1e-9)
    assert p.e2e_s == pytest.approx(p.ttft_s + (N - 1) * p.tpot_s)
    assert p.output_tokens_per_s == pytest.approx(B * N / p.e2e_s)
    two = simulator.predict(model=model, hardware="h100-sxm", batch=B, prompt=S, output=2)
    assert two.tpot_s == pytest.approx(_step_time(model, "h100-sxm", "pytorch-ref", B, S), rel=1e-12)


def test_single_output_token_has_no_decode():
    p = simulator.predict(model="llama-3.2-1b", hardware="h100-sxm", batch=1, prompt=128, output=1)
    assert p.tpot_s is None and p.e2e_s == p.ttft_s and p.decode_step_energy_j is None


def test_sliding_window_caps_kv_reads():
    """Mistral-7B attends over at most 4096 positions: decode beyond the window costs the same."""
    a = simulator.predict(model="mistral-7b", hardware="h100-sxm", stack="ideal", batch=16, prompt=5000, output=2)
    b = simulator.predict(model="mistral-7b", hardware="h100-sxm", stack="ideal", batch=16, prompt=9000, output=2)
    assert a.tpot_s == pytest.approx(b.tpot_s, rel=1e-12)
    assert a.memory.kv_cache_bytes == b.memory.kv_cache_bytes


def test_energy_is_idle_plus_dynamic_and_below_tdp():
    p = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=32, prompt=2048, output=64)
    hw = registry.hardware("h100-sxm")
    assert p.energy_j == pytest.approx(p.prefill_energy_j + (p.output - 1) * p.decode_step_energy_j)
    assert hw.power.idle_w * p.e2e_s < p.energy_j <= hw.power.tdp_w * p.e2e_s * (1 + 1e-9)
    assert p.tokens_per_j == pytest.approx(32 * 64 / p.energy_j)


def test_does_not_fit_is_reported_not_predicted():
    p = simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", batch=1, prompt=1024, output=16)
    assert not p.memory.fits and p.ttft_s is None and p.tokens_per_j is None
    assert p.memory.weights_bytes > p.memory.capacity_bytes
    assert "does not fit" in p.note


def test_memory_footprint_hand_computed():
    p = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=8, prompt=1024, output=128)
    assert p.memory.weights_bytes == 8.030261248e9 * 2
    assert p.memory.kv_cache_bytes == 8 * (1024 + 128) * 32 * 2 * 1024 * 2
    assert p.memory.total_bytes == pytest.approx(p.memory.weights_bytes + p.memory.kv_cache_bytes
                                                 + p.memory.activation_bytes)


def test_breakdown_shares_sum_to_one():
    p = simulator.predict(model="llama-2-7b", hardware="h100-sxm", batch=8, prompt=512, output=64)
    total = sum(o.share for o in p.breakdown)
    overhead_share = 1 - total   # the per-pass step overhead is not an operator
    assert 0 <= overhead_share < 0.05
    assert {o.prefill_bound for o in p.breakdown} <= {"compute", "memory", "overhead"}


@pytest.mark.parametrize("kwargs,field", [({"batch": 0}, "batch"), ({"prompt": -1}, "prompt"),
                                          ({"output": 0}, "output"), ({"kv_dtype": "fp9"}, "kv_dtype")])
def test_impossible_workloads(kwargs, field):
    with pytest.raises(WorkloadError) as info:
        simulator.predict(model="llama-3.2-1b", hardware="h100-sxm", **kwargs)
    assert info.value.field == field


MODELS = st.sampled_from(["llama-3.2-1b", "llama-2-7b", "qwen2.5-7b", "mistral-7b"])


@settings(max_examples=60, deadline=None)
@given(MODELS, st.integers(1, 128), st.integers(1, 8192), st.integers(1, 64), st.sampled_from(["ideal", "pytorch-ref"]))
@example("qwen2.5-7b", 26, 1, 1, "pytorch-ref")     # 104 -> 108 blocks: across the split threshold (105.6)
def test_more_batch_or_context_never_takes_less_time(model, batch, prompt, extra, stack):
    base = simulator.predict(model=model, hardware="h100-sxm", stack=stack, batch=batch, prompt=prompt, output=2)
    bigger_b = simulator.predict(model=model, hardware="h100-sxm", stack=stack, batch=batch + extra, prompt=prompt, output=2)
    longer = simulator.predict(model=model, hardware="h100-sxm", stack=stack, batch=batch, prompt=prompt + extra, output=2)
    for other in (bigger_b, longer):
        if other.memory.fits and base.memory.fits:
            assert other.ttft_s >= base.ttft_s * (1 - 1e-12)
            floor = base.tpot_s
            if other is bigger_b and _crosses_split(model, stack, batch, batch + extra):
                floor = base.tpot_s / _split_scale(stack)    # the kernel stops splitting: at most that faster
            assert other.tpot_s >= floor * (1 - 1e-12)


def _profile(stack):
    from simulator.specs import registry

    return registry.stack(stack).profile_for("h100-sxm", "gpu")


def _split_scale(stack) -> float:
    p = _profile(stack)
    return p.attention_memory_fraction / (p.attention_split_memory_fraction or p.attention_memory_fraction)


def _crosses_split(model, stack, b0, b1) -> bool:
    """Whether decode attention's thread blocks (B x KV heads) cross the split threshold
    (attention_split_below x SMs) between b0 and b1: below it the measured kernel splits the
    sequence and streams slower (bind.occupancy_row), so one more sequence can make a decode
    step faster, as it does on the GPU; everywhere else more batch never takes less time."""
    from simulator.specs import registry

    kv = registry.model(model)[1].num_kv_heads
    threshold = _profile(stack).attention_split_below * registry.hardware("h100-sxm").compute_units
    return b0 * kv < threshold <= b1 * kv


@settings(max_examples=40, deadline=None)
@given(MODELS, st.integers(1, 256), st.integers(1, 4096), st.floats(1.0, 4.0))
def test_more_bandwidth_never_takes_more_time(model, batch, prompt, factor):
    text = (registry.data_root() / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text()
    faster = text.replace("bandwidth: 3.35 TB/s", f"bandwidth: {3.35 * factor!r} TB/s")
    path = pathlib.Path(tempfile.mkdtemp()) / "fast.yaml"
    path.write_text(faster)
    a = simulator.predict(model=model, hardware="h100-sxm", batch=batch, prompt=prompt, output=3)
    b = simulator.predict(model=model, hardware=str(path), batch=batch, prompt=prompt, output=3)
    if a.memory.fits:
        assert b.ttft_s <= a.ttft_s * (1 + 1e-12) and b.tpot_s <= a.tpot_s * (1 + 1e-12)
