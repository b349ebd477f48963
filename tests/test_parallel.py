"""Hand-computed multi-device cases: collectives, TP-2 decode, pipeline stages, data parallel."""
import numpy as np
import pytest

import simulator
from simulator.engine.collectives import collective_time_s
from simulator.errors import WorkloadError
from simulator.graph.lower import lower
from simulator.graph.ops import OpKind
from simulator.graph.transformer import build, parameter_count
from simulator.specs import registry
from simulator.specs.base import Dtype

BF16 = Dtype.bf16


def test_ring_allreduce_of_8():
    """1 GB over 8 devices at 450 GB/s per direction, 2 us a hop:
    2 x 7/8 x 1e9 / 450e9 + 14 x 2e-6 = 3.8889 ms + 28 us."""
    t = collective_time_s(OpKind.ALL_REDUCE, 1e9, 8, 450e9, 2e-6)
    assert t == pytest.approx(2 * 7 / 8 * 1e9 / 450e9 + 14 * 2e-6, rel=1e-12)
    tree = collective_time_s(OpKind.ALL_REDUCE, 1e9, 8, 450e9, 2e-6, "tree")
    assert tree == pytest.approx(2 * 7 / 8 * 1e9 / 450e9 + 6 * 2e-6, rel=1e-12)
    assert collective_time_s(OpKind.ALL_REDUCE, 1e9, 1, 450e9, 2e-6) == 0.0


def test_tp_shards_sum_to_the_model():
    _, arch, _ = registry.model("llama-3.1-70b")
    full = parameter_count(build(arch))
    shard = parameter_count(build(arch, tp=2))
    norms = (2 * arch.num_layers + 1) * arch.hidden_size
    # every weight is split in two (the embedding and head by vocabulary) except the norms
    assert 2 * shard - norms == pytest.approx(full, rel=1e-12)


def test_tp2_decode_step_hand_computed():
    """llama-3.1-70b, 2 x h100-sxm, ideal stack, batch 1, the step at position 1024:
    each device reads half the layer and head weights (the embedding is gathered, not read)
    and half the KV heads, and joins 2 all-reduces per layer of 8192 bf16 values, one for
    the vocabulary-parallel embedding, and one all-gather of the 128256 logits over NVLink
    (450 GB/s per direction, 2 us a hop)."""
    _, arch, _ = registry.model("llama-3.1-70b")
    S = 1024
    p = simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", stack="ideal", batch=1, prompt=S, output=2, tp=2)
    t = lower(arch, BF16, BF16, BF16, False, 2)
    embed = arch.vocab_size // 2 * arch.hidden_size * 2
    weights_read = t.weight_bytes - embed
    kv_read = (S + 1) * arch.num_layers * 2 * (arch.num_kv_heads // 2) * arch.head_dim * 2
    activations = 1.5e-3 * (weights_read + kv_read)        # bounded below: norms, adds, rotary
    memory_s = (weights_read + kv_read) / 3.35e12
    allreduce_s = (2 * arch.num_layers + 1) * (2 * 0.5 * 8192 * 2 / 450e9 + 2 * 2e-6)
    gather_s = 0.5 * 128256 * 2 / 450e9 + 2e-6
    expected = memory_s + allreduce_s + gather_s
    assert expected <= p.tpot_s <= expected + activations / 3.35e12 + 1e-6
    assert p.tpot_s == pytest.approx(expected, rel=0.01)
    assert p.devices == 2 and p.memory.fits


def test_tp_does_not_fit_alone_but_fits_on_two():
    one = simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", batch=1, prompt=128, output=2)
    two = simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", batch=1, prompt=128, output=2, tp=2)
    assert not one.memory.fits and two.memory.fits
    assert two.memory.weights_bytes == pytest.approx(one.memory.weights_bytes / 2, rel=1e-4)


def test_pipeline_without_microbatches_runs_stages_in_turn():
    """pp = 2, m = 1: the whole model's time at one device's rates plus one stage hand-off."""
    kw = dict(model="llama-3.1-8b", hardware="h100-sxm", stack="ideal", batch=4, prompt=512, output=2)
    one = simulator.predict(**kw)
    two = simulator.predict(**kw, pp=2)
    handoff = 4 * 4096 * 2 / 450e9 + 2e-6
    assert two.tpot_s == pytest.approx(one.tpot_s + handoff, rel=1e-9)
    assert two.memory.kv_cache_bytes == pytest.approx(one.memory.kv_cache_bytes / 2)


def test_pipeline_microbatches_bubble():
    """pp = 4, m = 4: (m + pp - 1) / pp = 7/4 model-times of a quarter batch."""
    kw = dict(model="llama-3.1-8b", hardware="h100-sxm", stack="ideal", prompt=512, output=2)
    quarter = simulator.predict(**kw, batch=2)
    piped = simulator.predict(**kw, batch=8, pp=4, microbatches=4)
    handoffs = (4 + 4 - 2) * (2 * 4096 * 2 / 450e9 + 2e-6)
    assert piped.tpot_s == pytest.approx(7 / 4 * quarter.tpot_s + handoffs, rel=1e-9)


def test_data_parallel_splits_the_batch():
    kw = dict(model="llama-3.1-8b", hardware="h100-sxm", prompt=512, output=64)
    half = simulator.predict(**kw, batch=8)
    dp = simulator.predict(**kw, batch=16, dp=2)
    assert dp.tpot_s == pytest.approx(half.tpot_s)
    assert dp.output_tokens_per_s == pytest.approx(2 * half.output_tokens_per_s)
    assert dp.energy_j == pytest.approx(2 * half.energy_j)


@pytest.mark.parametrize("kwargs,field", [({"tp": 3}, "tp"), ({"batch": 3, "dp": 2}, "dp"),
                                          ({"batch": 4, "pp": 2, "microbatches": 3}, "microbatches")])
def test_impossible_parallel_configurations(kwargs, field):
    with pytest.raises(WorkloadError) as info:
        simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", **{"batch": 8, **kwargs})
    assert info.value.field == field


def test_pipeline_of_one_microbatch_is_no_faster_and_keeps_the_power_cap():
    """pp = 2, m = 1: the stages run in turn, so each device is busy half the pass and the
    pass's power budget does not double (issue 13: pp 2 predicted a faster TTFT than pp 1).
    The power limit's sustained rate caps the GEMMs of both (engine/power.py)."""
    from simulator.api import prepare
    from simulator.engine import power
    from simulator.specs.base import Dtype

    one = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=8, prompt=1024, output=128)
    two = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=8, prompt=1024, output=128, pp=2)
    prep = prepare("llama-3.1-8b", "h100-sxm", "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    hw, profile = prep.hardware, prep.rates.profile
    cap = power.sustained_flops(hw, profile, power.gemm_energy_per_flop_j(hw, profile, Dtype.bf16, 989.4e12))
    gemm = [i for i, k in enumerate(prep.kinds) if k == "matmul"]
    assert cap < 989.4e12 * profile.gemm.peak_fraction and np.allclose(prep.rates.compute_peak[gemm], cap)
    assert two.ttft_s > one.ttft_s and two.tpot_s >= one.tpot_s
    assert two.energy_j > one.energy_j                   # the second device idles while the first works
