"""What-if hardware: scaled copies of specs, the facts recorded in sweep rows, and their
effect on predictions."""
import math

import pytest

from simulator.api import prepare
from simulator.engine.predict import evaluate
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.workload import Workload
from simulator.explore.whatif import Factors, facts, scaled_levels, scale


def _predict(spec, **w):
    prep = prepare("llama-3.1-8b", spec, "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16)
    return evaluate(prep, Workload(**w))


def test_identity_returns_the_spec_itself():
    h100 = registry.hardware("h100-sxm")
    assert scale(h100, Factors()) is h100


def test_bandwidth_and_capacity_scale_the_off_chip_levels_only():
    mi300x = registry.hardware("mi300x")           # Infinity Cache (on chip) + HBM3
    assert scaled_levels(mi300x.memory) == [1]
    s = scale(mi300x, Factors(bandwidth=2, capacity=0.5, sram=4))
    cache, hbm = s.memory
    assert hbm.bandwidth_bytes_per_s == 2 * mi300x.memory[1].bandwidth_bytes_per_s
    assert hbm.capacity_bytes == 0.5 * mi300x.memory[1].capacity_bytes
    assert cache.bandwidth_bytes_per_s == mi300x.memory[0].bandwidth_bytes_per_s
    assert cache.capacity_bytes == 4 * mi300x.memory[0].capacity_bytes
    f = facts(s, Dtype.bf16)
    assert f["sram_bytes"] == cache.capacity_bytes and f["memory_bandwidth_bytes_per_s"] == hbm.bandwidth_bytes_per_s
    assert mi300x.memory[1].bandwidth_bytes_per_s == registry.hardware("mi300x").memory[1].bandwidth_bytes_per_s


def test_on_chip_only_device_scales_its_sram_as_main_memory():
    groq = registry.hardware("groq-lpu")
    s = scale(groq, Factors(capacity=10, sram=3))
    assert s.memory[0].capacity_bytes == 10 * groq.memory[0].capacity_bytes
    assert facts(s, Dtype.bf16)["sram_bytes"] == 0.0


def test_peak_scales_derived_cpu_peaks_too():
    cpu = registry.hardware("epyc-9654")
    s = scale(cpu, Factors(peak=2))
    assert s.peak_flops() == {d: 2 * v for d, v in cpu.peak_flops().items()}


def test_power_scales_every_power_and_energy_figure():
    a100 = registry.hardware("a100-sxm-80gb")       # no fitted power figures in the stack profile
    s = scale(a100, Factors(power=1.5))
    assert s.power.tdp_w == 1.5 * a100.power.tdp_w
    base, hot = _predict(a100, batch=8), _predict(s, batch=8)
    assert hot.energy_j == pytest.approx(1.5 * base.energy_j, rel=0.02) and hot.ttft_s <= base.ttft_s
    assert math.isnan(facts(registry.hardware("tpu-v5e"), Dtype.bf16)["tdp_w"])


def test_more_bandwidth_speeds_up_decode_more_peak_speeds_up_prefill():
    h100 = registry.hardware("a100-sxm-80gb")
    base = _predict(h100, batch=4, prompt=4096, output=256)
    fast_memory = _predict(scale(h100, Factors(bandwidth=2)), batch=4, prompt=4096, output=256)
    fast_math = _predict(scale(h100, Factors(peak=2)), batch=4, prompt=4096, output=256)
    assert fast_memory.tpot_s < 0.75 * base.tpot_s and fast_memory.ttft_s > 0.8 * base.ttft_s
    assert fast_math.ttft_s < 0.8 * base.ttft_s and fast_math.tpot_s > 0.9 * base.tpot_s


def test_capacity_decides_fit():
    h100 = registry.hardware("h100-sxm")
    assert not _predict(scale(h100, Factors(capacity=0.15)), batch=8).memory.fits
    assert _predict(scale(h100, Factors(capacity=0.5)), batch=8).memory.fits


@pytest.mark.parametrize("name", ["h100-sxm", "u280", "cerebras-wse3", "hbm-pim", "xeon-8480p"])
def test_scaled_copies_still_predict(name):
    s = scale(registry.hardware(name), Factors(bandwidth=0.5, capacity=4, sram=2, peak=3, power=0.5))
    p = evaluate(prepare("llama-3.2-1b", s, "pytorch-ref", Dtype.bf16, Dtype.bf16, Dtype.bf16), Workload(batch=1))
    assert p.memory.fits and p.ttft_s > 0 and p.hardware == name
