"""Energy model: E = idle power x time + dynamic energy per FLOP and per byte (joules).

Coefficients come, in order of preference, from the stack's measured profile, the
hardware spec's figures, else are derived from TDP (documented assumption):
  idle power       = 0.15 x TDP when neither gives it
  energy per FLOP  = (TDP - idle) / dense peak of the compute dtype
                     (a GEMM at full peak draws the whole TDP)
  energy per byte  = 0.6 x (TDP - idle) x seconds per byte of the level(s) holding the data
                     (streaming at full bandwidth draws 60% of the dynamic budget: memory and
                     on-chip data movement, not the math units)
A measured J per FLOP is a bf16 GEMM's (the harness's power loops) unless the profile has
one for the compute dtype (an FP8 loop beside a bf16 one: 0.55x on an H200); otherwise a GEMM
in another dtype pays it x peak(bf16) / peak(dtype): the tensor cores draw about the same
power at full rate in every dtype (the dense peaks double from bf16 to fp8 at one TDP).
A grouped expert GEMM may have its own measured J per byte (at decode sizes it streams its
weights at ~0.6 of a GEMV's rate while drawing the same power: 1.6x the J/B on an H200), and
so may a GEMM's weights in a narrow compute dtype (weight_energy_per_byte under the profile's
dtypes: an FP8 GEMV draws 1.6x a bf16 GEMV's J per byte on an H200, its bytes being elements).
A measured profile may add busy power: drawn above idle whenever the device runs any
kernel (clocks up, SMs awake), independent of the work done.
Average power never exceeds TDP: a device that would draw more lowers its clocks. That slows
compute-bound kernels (bind.py caps their rate at headroom / J per FLOP: engine/power.py; an
H100 GEMM loop: 697 W at 1410 MHz) but not memory-bound ones, whose energy is capped at the
limit instead (kernels/scenario.py energy_j).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.engine.bind import phase_repeat
from simulator.graph.ops import WEIGHT_COLUMNS, OpKind
from simulator.engine.power import gemm_energy_per_flop_j, headroom_w, idle_w

STREAMING_FRACTION_OF_DYNAMIC = 0.6


@dataclasses.dataclass(frozen=True)
class EnergyModel:
    """idle_w (idle plus busy power) is drawn all through a pass; the dynamic energy of a
    pass is joules_per_feature @ features (each operator's FLOPs and bytes at its class's
    coefficients, summed over operators), so a sweep prices any scenario with one dot product.
    The energy of a phase is kernels/scenario.py's energy_j (capped at the power limit)."""

    idle_w: float
    tdp_w: float
    prefill_joules_per_feature: np.ndarray
    decode_joules_per_feature: np.ndarray


def energy_model(hardware, profile, compute_dtype, tensor_peak_flops: float, rates) -> EnergyModel | None:
    """The device's energy model for a bound operator table, or None when the spec gives no
    power figures. Attention may have its own measured coefficients (a flash kernel spends
    more per FLOP and per byte than a GEMM or a copy)."""
    power = hardware.power
    if power is None:
        return None
    idle = idle_w(hardware, profile)
    dynamic_w = headroom_w(hardware, profile)
    per_flop = gemm_energy_per_flop_j(hardware, profile, compute_dtype, tensor_peak_flops)
    placement = rates.placement

    def per_byte(spec_j: float | None, s_per_byte: float) -> float:
        if profile.energy_per_byte_j is not None:
            return profile.energy_per_byte_j
        if spec_j is not None:
            return spec_j
        return STREAMING_FRACTION_OF_DYNAMIC * dynamic_w * s_per_byte

    column_j = np.full(rates.moved_bytes.shape[1], per_byte(placement.other_j_per_byte, placement.other_s_per_byte))
    column_j[WEIGHT_COLUMNS] = per_byte(placement.weight_j_per_byte, placement.weight_s_per_byte)
    table = rates.table
    per_op = np.empty_like(table.flops)
    for i, code in enumerate(table.kind):
        flop_j, byte_j = per_flop, column_j
        kind = OpKind(int(code))
        if kind.is_attention:
            flop_j = profile.attention_energy_per_flop_j or per_flop
            if profile.attention_energy_per_byte_j is not None:
                byte_j = np.full_like(column_j, profile.attention_energy_per_byte_j)
        elif kind == OpKind.EXPERT_MATMUL and profile.expert_energy_per_byte_j is not None:
            byte_j = np.full_like(column_j, profile.expert_energy_per_byte_j)
        elif kind == OpKind.MATMUL and profile.weight_energy_per_byte_j is not None:
            byte_j = column_j.copy()
            byte_j[WEIGHT_COLUMNS] = profile.weight_energy_per_byte_j
        per_op[i] = table.flops[i] * flop_j + rates.moved_bytes[i] * byte_j
    return EnergyModel(idle, power.tdp_w, phase_repeat(table, "prefill") @ per_op,
                       phase_repeat(table, "decode") @ per_op)
