"""One hand-computed check per hardware-class feature of the engine."""
import pytest

import simulator
from simulator.api import fewest_devices
from simulator.specs.consistency import tp_problem
from simulator.engine.kernels.phases import prefill_features
from simulator.engine.predict import memory_report
from simulator.graph.lower import lower
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.workload import workload

BF16 = Dtype.bf16

SRAM_DEVICE = """
name: sram-test
kind: asic
vendor: test
product: 1 GB SRAM in front of 100 GB DRAM
peak: {bf16: 1000 TFLOP/s}
memory:
  - {name: SRAM, capacity: 1 GB, bandwidth: 100 TB/s, on_chip: true}
  - {name: DRAM, capacity: 100 GB, bandwidth: 1 TB/s}
provenance: {sources: [test], date: 2026-11-22}
"""


def _decode_bytes(model, weight=BF16, prompt=1024):
    """(weight bytes a batch-1 decode step reads, KV bytes it reads, other bytes)."""
    _, arch, _ = registry.model(model)
    t = lower(arch, weight, BF16, BF16, False)
    weights_read = t.weight_bytes - t.first_stage_weight_bytes * (not arch.tied_embeddings)   # the gathered table
    if arch.tied_embeddings:      # the tied table is read whole by the LM head, and gathered once
        weights_read = t.weight_bytes
    return weights_read, (prompt + 1) * t.kv_bytes_per_token


def test_on_chip_sram_holds_the_first_weights(write_spec):
    """llama-3.2-1b (2.47 GB bf16): the first 1 GB streams at 100 TB/s, the rest at 1 TB/s."""
    path = write_spec(SRAM_DEVICE)
    p = simulator.predict(model="llama-3.2-1b", hardware=str(path), stack="ideal", batch=1, prompt=1024, output=2)
    _, arch, _ = registry.model("llama-3.2-1b")
    total = lower(arch, BF16, BF16, BF16, False).weight_bytes
    s_per_weight_byte = (1e9 / total) / 100e12 + (1 - 1e9 / total) / 1e12
    weights_read, kv = _decode_bytes("llama-3.2-1b")
    expected = weights_read * s_per_weight_byte + kv / 1e12
    assert p.tpot_s == pytest.approx(expected, rel=0.01)
    all_dram = simulator.predict(model="llama-3.2-1b", hardware=str(write_spec(
        SRAM_DEVICE.replace("capacity: 1 GB", "capacity: 1 MB"), "small.yaml")), stack="ideal", batch=1, prompt=1024,
        output=2)
    assert all_dram.tpot_s > p.tpot_s * 1.5


def test_groq_needs_many_chips_and_links_cost_latency(write_spec):
    """A 1B model (2.5 GB bf16) on 230 MB chips: the fewest tp x pp that fits does fit, and
    no smaller device count does; the chip-to-chip link shows up in the latency."""
    w = workload(batch=1, prompt=512, output=64)
    multi = fewest_devices("llama-3.2-1b", "groq-lpu", "ideal", w)
    assert multi is not None and multi.devices >= 2.47e9 / 230e6
    _, arch, _ = registry.model("llama-3.2-1b")
    hw = registry.hardware("groq-lpu")
    for tp in (1, 2, 4, 8, 16, 32):
        for pp in range(1, arch.num_layers + 1):
            if tp * pp < multi.devices and tp_problem(arch, tp) is None:
                c = w.model_copy(update={"tp": tp, "pp": pp})
                t = lower(arch, BF16, BF16, BF16, False, tp)
                assert not memory_report(t, hw, c, prefill_features(1, 512, 0)).fits
    base = simulator.predict(model="llama-3.2-1b", hardware="groq-lpu", stack="ideal", batch=1, prompt=512, output=64,
                             tp=multi.tp, pp=multi.pp)
    text = (registry.data_root() / "hardware_specs/asic/groq-lpu.yaml").read_text()
    fast = write_spec(text.replace("bandwidth_per_direction: 240 GB/s", "bandwidth_per_direction: 2400 GB/s")
                      .replace("latency: 1 us", "latency: 0.1 us"), "fast-groq.yaml")
    faster_links = simulator.predict(model="llama-3.2-1b", hardware=str(fast), stack="ideal", batch=1, prompt=512,
                                     output=64, tp=multi.tp, pp=multi.pp)
    assert base.memory.fits and faster_links.tpot_s < base.tpot_s


def test_pim_runs_decode_gemvs_in_memory_and_prefill_gemms_on_the_host():
    """hbm-pim, ideal stack, batch 1: a qkv GEMV (N = 3072, K = 2048) takes
    max(2NK / 4.8 TFLOP/s, 2NK bytes / 4.92 TB/s + (N + K) x 2 B / 1.2288 TB/s) per layer."""
    p = simulator.predict(model="llama-3.2-1b", hardware="hbm-pim", stack="ideal", batch=1, prompt=512, output=2)
    qkv = next(o for o in p.breakdown if o.name == "qkv_proj")
    assert qkv.decode_unit == "memory" and qkv.prefill_unit == "host"
    n, k = 2048 + 2 * 512, 2048
    per_layer = max(2 * n * k / 4.8e12, 2 * n * k / 4.92e12 + (n + k) * 2 / 1.2288e12)
    assert qkv.decode_step_time_s == pytest.approx(16 * per_layer, rel=1e-9)
    attention = next(o for o in p.breakdown if o.name == "attention")
    assert attention.decode_unit == "host"                 # Aquabolt-XL lists only gemv
    assert next(o for o in simulator.predict(model="llama-3.2-1b", hardware="attacc", stack="ideal", batch=8,
                                             prompt=4096, output=2).breakdown
                if o.name == "attention").decode_unit == "memory"


def test_cpu_peak_from_cores_and_memory_from_channels():
    """EPYC 9654: 96 cores x 2.4 GHz x 2 FMA pipes x 2 x (256 / 32) lanes = 7.37 TFLOP/s fp32;
    12 channels x 4800 MT/s x 8 B = 460.8 GB/s; an ideal batch-1 decode streams at that."""
    hw = registry.hardware("epyc-9654")
    assert hw.peak_flops()[Dtype.fp32] == pytest.approx(96 * 2.4e9 * 2 * 2 * 8)
    assert hw.memory_channels.bandwidth_bytes_per_s == pytest.approx(460.8e9)
    assert hw.main_memory.bandwidth_bytes_per_s == pytest.approx(hw.memory_channels.bandwidth_bytes_per_s)
    p = simulator.predict(model="llama-3.1-8b", hardware="epyc-9654", stack="ideal", batch=1, prompt=1024, output=2)
    weights_read, kv = _decode_bytes("llama-3.1-8b")
    assert p.tpot_s == pytest.approx((weights_read + kv) / 460.8e9, rel=0.01)


def test_xeon_amx_is_its_own_dtype_peak():
    """Xeon 8480+: AMX bf16 = 56 cores x 2.0 GHz x 1024 ops/cycle = 114.7 TFLOP/s, far above
    its AVX-512 fp32 rate."""
    peaks = registry.hardware("xeon-8480p").peak_flops()
    assert peaks[Dtype.bf16] == pytest.approx(56 * 2.0e9 * 1024, rel=0.01)
    assert peaks[Dtype.bf16] > 10 * peaks[Dtype.fp32]


def test_fpga_peak_from_dsps_and_int4_weights_in_hbm():
    """U280: 9,024 DSPs x 4 int8 ops x 679 MHz = 24.5 TOP/s. Llama-2-7B at int4-g128 (3.5 GB)
    sits in BRAM/URAM (44.7 MB at 24 TB/s) and HBM (460 GB/s), not the 38 GB/s DDR."""
    hw = registry.hardware("u280")
    assert hw.peak_flops()[Dtype.int8] == pytest.approx(9024 * 4 * 679e6, rel=1e-6)
    p = simulator.predict(model="llama-2-7b", hardware="u280", stack="ideal", batch=1, prompt=128, output=2,
                          weight_dtype="int4-g128")
    fmt = workload(weight_dtype="int4-g128").weight_format
    weights_read, kv = _decode_bytes("llama-2-7b", fmt, prompt=128)
    _, arch, _ = registry.model("llama-2-7b")
    total = lower(arch, fmt, BF16, BF16, False).weight_bytes
    on_chip = 44.7e6 / total
    expected = weights_read * (on_chip / 24e12 + (1 - on_chip) / 460e9) + kv / 460e9
    assert p.tpot_s == pytest.approx(expected, rel=0.01)


def test_tpu_ici_carries_tensor_parallel_collectives():
    """TPU v5e x 2 (llama-3.1-8b does not fit one 16 GB chip): each all-reduce of a decode
    step moves 2 x 1/2 x 4096 x 2 B at 200 GB/s per direction plus 2 hops of 1 us."""
    one = simulator.predict(model="llama-3.1-8b", hardware="tpu-v5e", stack="ideal", batch=1, prompt=128, output=2)
    two = simulator.predict(model="llama-3.1-8b", hardware="tpu-v5e", stack="ideal", batch=1, prompt=128, output=2, tp=2)
    assert not one.memory.fits and two.memory.fits
    allreduce = next(o for o in two.breakdown if o.name == "allreduce_attn")
    assert allreduce.decode_step_time_s == pytest.approx(32 * (4096 * 2 / 200e9 + 2 * 1e-6), rel=1e-9)
