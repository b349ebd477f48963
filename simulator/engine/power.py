"""The power facts a device and stack profile give, shared by the energy model and the
rates: idle power, dynamic headroom and J per FLOP (formulas in engine/energy.py's docstring).

A sustained compute-bound kernel can run no faster than headroom / (J per FLOP): the device
lowers its clocks to hold its power limit (an H200's 8192^3 bf16 GEMM loop: 665 TFLOP/s at
696 W and 1485 MHz, against 790 TFLOP/s in the short bursts of the microbenchmarks; its FP8
loop 1,186 TFLOP/s at 685 W). bind.py caps each GEMM's and attention's compute rate there.
"""
from __future__ import annotations

from simulator.specs.base import Dtype

IDLE_FRACTION_OF_TDP = 0.15


def idle_w(hardware, profile) -> float | None:
    """Idle plus busy power (W): the profile's measured idle, else the spec's, else 0.15 TDP."""
    power = hardware.power
    if power is None:
        return None
    idle = profile.idle_power_w
    if idle is None:
        idle = power.idle_w if power.idle_w is not None else IDLE_FRACTION_OF_TDP * power.tdp_w
    return idle + profile.busy_power_w


def headroom_w(hardware, profile) -> float | None:
    """TDP - idle - busy (W): what work may draw on top of an awake device."""
    idle = idle_w(hardware, profile)
    return None if idle is None else max(hardware.power.tdp_w - idle, 0.0)


def gemm_energy_per_flop_j(hardware, profile, compute_dtype: Dtype, tensor_peak_flops: float) -> float | None:
    """J per GEMM FLOP in ``compute_dtype``: the profile's own for that dtype, else its (bf16)
    one x peak(bf16) / peak(dtype), else the spec's, else headroom / peak (None: no power facts)."""
    if hardware.power is None:
        return None
    per_flop = profile.energy_per_flop_j
    if per_flop is not None and "energy_per_flop" not in profile.dtypes.get(compute_dtype, {}):
        bf16_peak = hardware.peak_flops().get(Dtype.bf16)
        per_flop *= bf16_peak / tensor_peak_flops if bf16_peak else 1.0
    if per_flop is None and hardware.power.energy_per_flop_j:
        per_flop = hardware.power.energy_per_flop_j.get(compute_dtype)
    if per_flop is None:
        per_flop = headroom_w(hardware, profile) / tensor_peak_flops
    return per_flop


def sustained_flops(hardware, profile, energy_per_flop_j: float | None) -> float:
    """The compute rate (FLOP/s) the power limit allows: headroom / J per FLOP (inf without
    power facts or measured energy)."""
    head = headroom_w(hardware, profile)
    if head is None or not energy_per_flop_j or profile.energy_per_flop_j is None:
        return float("inf")
    return head / energy_per_flop_j
