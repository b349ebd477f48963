"""Bind an operator table to a device and stack: the per-operator rates the kernels use.

For operator i:
  compute_peak[i]  FLOP/s: the device's dense peak for the op's dtype x the stack's fraction
                   (GEMMs: gemm.peak_fraction; attention: attention_compute_fraction;
                   elementwise ops run on the vector units: the fp32 peak when given)
  mem_s[i, j]      seconds per unit of feature j: bytes[i, j] x the stack's traffic
                   multiplier / (bandwidth of the level serving that column x the stack's
                   fraction). The weight columns (ONE, EXP) hold weights; the rest KV and activations.
  overhead[i]      s: kernels_per_op x kernel_overhead
Attention also pays, per sequence and KV head, a block's fixed cost spread over the
compute units (attention_block_overhead / units): short contexts at large batch do not
stream at full bandwidth.
Collectives (tensor parallelism) run over the device's first interconnect (its scale-up
link): mem_s is the payload's bandwidth term and overhead adds the hops' latency
(engine/collectives.py).
Processing in memory: on a device whose memory level carries a ``pim`` block, the
operators that block lists (gemv: matmuls and the LM head; attention) get an alternative
unit: alt_peak (the PIM compute) and alt_mem_s (weights and KV cache at the internal
bandwidth, the activation vectors in and out over the external bus). The kernels run
each such operator where it is faster (in decode GEMVs go to memory; prefill GEMMs stay
on the host).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.engine import power
from simulator.engine.collectives import cost_terms
from simulator.engine.kernels import roofline
from simulator.engine.placement import Placement, place
from simulator.errors import SpecError
from simulator.graph.lower import DECODE, PREFILL, OpTable
from simulator.graph.ops import KV_COLUMNS, SEQ, WEIGHT_COLUMNS, OpKind
from simulator.specs.base import Dtype
from simulator.specs.consistency import fallback_dtype
from simulator.specs.stack import DeviceProfile, StackSpec


@dataclasses.dataclass(frozen=True)
class Rates:
    """Per-operator rates of an operator table on one device and stack (arrays [ops] unless
    noted), independent of batch and lengths."""

    table: OpTable
    compute_peak: np.ndarray     # FLOP/s
    mem_s: np.ndarray            # [ops, features]: seconds per unit of each feature
    moved_bytes: np.ndarray      # [ops, features]: bytes actually moved (fewest x traffic)
    overhead: np.ndarray         # s per instance
    tile_m: np.ndarray
    tile_n: np.ndarray
    units: float                 # compute units a wave of GEMM tiles fills
    alt_peak: np.ndarray         # FLOP/s of the alternative (PIM) unit, 0 where none
    alt_mem_s: np.ndarray
    alt_overhead: np.ndarray
    overlap: np.ndarray          # p-norm exponent combining compute and memory time (0: max)
    host_launch_s: float         # s: host time to launch one eager pass (every kernel, all layers)
    half_length: np.ndarray      # tokens: prefill attention efficiency L / (L + L0) (0: off)
    gemv_max_m: np.ndarray       # GEMMs of at most this many rows run as a GEMV (0: never)
    gemv_scale: np.ndarray       # their memory time x this (memory_fraction / gemv_memory_fraction)
    occupancy: np.ndarray        # [ops, 4]: decode attention's blocks per sequence, split below, split and
                                 # oversubscribed memory-time scales (roofline.occupancy_scale; 0, 0, 1, 1 elsewhere)
    routing: np.ndarray          # [ops, 3]: a routed expert GEMM's k / E and its kernel's M tile range
                                 # (grouped.routed_tile_scale; zeros elsewhere)
    profile: DeviceProfile
    placement: Placement
    _op: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)   # phase -> op_params

    def op_params(self, phase: str) -> np.ndarray:
        """The kernels' per-operator parameter matrix (roofline.OP_FIELDS) of a prefill pass or
        a decode step (decode runs no attention length ramp: half_length 0), built once."""
        if phase not in self._op:
            self._op[phase] = self._op_params(phase)
        return self._op[phase]

    def _op_params(self, phase: str) -> np.ndarray:
        t = self.table
        op = roofline.op_params(len(t))
        op[:, roofline.OP_REPEAT] = phase_repeat(t, phase)
        op[:, roofline.OP_GEMM_N] = t.gemm_n
        op[:, roofline.OP_M_FEATURE] = t.m_feature
        op[:, roofline.OP_PEAK] = self.compute_peak
        op[:, roofline.OP_OVERHEAD] = self.overhead
        op[:, roofline.OP_TILE_M] = self.tile_m
        op[:, roofline.OP_TILE_N] = self.tile_n
        op[:, roofline.OP_UNITS] = self.units
        op[:, roofline.OP_ALT_PEAK] = self.alt_peak
        op[:, roofline.OP_ALT_OVERHEAD] = self.alt_overhead
        op[:, roofline.OP_OVERLAP] = self.overlap
        op[:, roofline.OP_HALF_LENGTH] = self.half_length if phase == "prefill" else 0.0
        op[:, roofline.OP_GEMV_MAX_M] = self.gemv_max_m
        op[:, roofline.OP_GEMV_SCALE] = self.gemv_scale
        op[:, roofline.OP_LOCAL] = t.local
        op[:, [roofline.OP_ROUTE_P, roofline.OP_GROUP_TILE_MIN, roofline.OP_GROUP_TILE_MAX]] = self.routing
        if phase == "decode":
            op[:, [roofline.OP_BLOCKS_PER_SEQ, roofline.OP_SPLIT_BLOCKS, roofline.OP_SPLIT_SCALE,
                   roofline.OP_OVER_SCALE]] = self.occupancy
        return op

    def pass_arrays(self, phase: str = "decode") -> tuple:
        """(flops, mem_s, alt_mem_s, op): what the roofline kernels take for a pass."""
        return self.table.flops, self.mem_s, self.alt_mem_s, self.op_params(phase)

    @property
    def step_overhead_s(self) -> float:
        return self.profile.decode_step_overhead_s


def attention_block_s(kv_heads: float, block_overhead_s: float, units: float) -> float:
    """Seconds per sequence of attention's per-block fixed cost: one block per (sequence, KV
    head), spread over the compute units."""
    return kv_heads * block_overhead_s / units


def phase_repeat(table: OpTable, phase: str) -> np.ndarray:
    """Instances per pass of each operator in a prefill or a decode step (0 for operators
    the other phase runs alone, e.g. MLA's latent expansion in prefill)."""
    return table.repeat * ((table.phase & (PREFILL if phase == "prefill" else DECODE)) > 0)


def peak_for(peaks: dict[Dtype, float], dtype: Dtype, hardware_name: str) -> float:
    """Dense peak for a dtype: its own, else the fallback's (specs.consistency.fallback_dtype:
    bf16 <-> fp16, else the next wider dtype the device has; fp8 on an A100 runs as bf16)."""
    used = fallback_dtype(peaks, dtype)
    if used is None:
        have = ", ".join(sorted(d.value for d in peaks))
        raise SpecError(hardware_name, "peak", f"no dense peak for {dtype.value} or a wider dtype (has: {have}); "
                                               f"choose a dtype it has with --activation-dtype")
    return peaks[used]


def device_peaks(hardware, compute_dtype: Dtype) -> tuple[float, float]:
    """(tensor, vector) datasheet FLOP/s: ``compute_dtype``'s peak (peak_for), and the fp32
    peak the vector units reach (the tensor peak when the datasheet gives no fp32)."""
    peaks = hardware.peak_flops()
    tensor = peak_for(peaks, compute_dtype, hardware.name)
    return tensor, peaks.get(Dtype.fp32, tensor)


def attention_dtype(activation: Dtype, kv: Dtype) -> Dtype:
    """The dtype attention computes in: the wider of the activations' and the KV cache's (FP8
    W8A8 linear layers with a bf16 cache attend in bf16; a bf16 model with an FP8 cache
    dequantizes it to bf16; FP8 both ways attends in FP8)."""
    return activation if activation.bits >= kv.bits else kv


def unit_peaks(table: OpTable, hardware, compute_dtype: Dtype, attention: Dtype | None = None) -> np.ndarray:
    """Datasheet FLOP/s of the unit each operator runs on: matmuls the tensor peak of the
    compute dtype, attention that of ``attention`` (default: the compute dtype), the other
    operators the vector peak (device_peaks)."""
    tensor, vector = device_peaks(hardware, compute_dtype)
    attn = tensor if attention is None else device_peaks(hardware, attention)[0]
    kinds = [OpKind(int(code)) for code in table.kind]
    return np.array([tensor if k.is_gemm else attn if k.is_attention else vector for k in kinds], dtype=np.float64)


def gemm_profile(kind: OpKind, profile: DeviceProfile):
    """The GemmEfficiency of a GEMM kind: grouped expert GEMMs have their own where fitted."""
    return profile.expert_gemm if kind == OpKind.EXPERT_MATMUL and profile.expert_gemm is not None else profile.gemm


def occupancy_row(kind: OpKind, kv_heads: float, profile: DeviceProfile, units: float) -> tuple:
    """(blocks per sequence, split below, split scale, oversubscribed scale) of an operator: a
    fused decode attention launches one thread block per (sequence, KV head); its memory time
    scales by resident / split (or oversubscribed) memory fraction in those regimes."""
    if kind != OpKind.ATTENTION:
        return 0.0, 0.0, 1.0, 1.0
    base = profile.attention_memory_fraction
    split = profile.attention_split_memory_fraction or base
    over = profile.attention_oversubscribed_memory_fraction or base
    return float(kv_heads), profile.attention_split_below * units, base / split, base / over


def _op_fractions(kind: OpKind, profile: DeviceProfile) -> tuple[float, float]:
    """(fraction of peak compute, fraction of bandwidth) the stack reaches on this operator."""
    if kind.is_gemm:
        g = gemm_profile(kind, profile)
        return g.peak_fraction, g.memory_fraction
    if kind.is_attention:
        return profile.attention_compute_fraction, profile.attention_memory_fraction
    return 1.0, profile.memory_fraction_by_kind.get(kind.stack_name, profile.elementwise_memory_fraction)


def _bind_collectives(table: OpTable, hardware, stack: StackSpec, profile: DeviceProfile, moved, mem_s,
                      overhead) -> None:
    """Replace the memory terms of collective operators by their link time, in place: factor x
    P / (W x the profile's achieved fraction of it) + hops x L."""
    rows = [i for i, code in enumerate(table.kind) if OpKind(int(code)).is_collective]
    if not rows:
        return
    if not hardware.interconnect:
        raise SpecError(hardware.name, "interconnect", "a link is needed for a multi-device configuration")
    link = hardware.interconnect[0]
    algorithm = stack.collective_algorithm
    if algorithm == "auto":
        algorithm = "ring" if link.topology in ("switch", "ring") else "tree"
    for i in rows:
        factor, hops = cost_terms(OpKind(int(table.kind[i])), int(table.group[i]), algorithm)
        mem_s[i] = moved[i] * factor / (link.bandwidth_per_direction_bytes_per_s * profile.collective_bandwidth_fraction)
        overhead[i] += hops * link.latency_s


def bind(table: OpTable, hardware, stack: StackSpec, compute_dtype: Dtype, profile: DeviceProfile | None = None,
         attention: Dtype | None = None) -> Rates:
    """Per-operator rates for this device and stack (independent of batch and lengths).
    Matmuls and attention run at ``compute_dtype``'s peak: the activation dtype (weight-only
    quantization dequantizes to it; W8A8 and FP8 run on the low-precision peak). ``profile``:
    the stack's entry chosen for the device (StackSpec.choose), else the entry of its name."""
    profile = (profile or stack.profile_for(hardware.name, hardware.kind)).for_dtype(compute_dtype)
    peaks = unit_peaks(table, hardware, compute_dtype, attention)
    placement = place(hardware.memory, table.weight_bytes)
    column_s_per_byte = placement.seconds_per_byte()
    n = len(table)
    compute_peak = np.empty(n)
    mem_s = np.empty_like(table.bytes)
    moved = np.empty_like(table.bytes)
    units = float(hardware.compute_units or 1)
    overhead = np.empty(n)
    host_launch_s = 0.0
    half_length = np.zeros(n)
    overlap = np.zeros(n)
    tile_m = np.ones(n)
    tile_n = np.ones(n)
    gemv_max_m = np.zeros(n)
    gemv_scale = np.ones(n)
    occupancy = np.zeros((n, 4))
    routing = np.zeros((n, 3))
    gemm_cap, attention_cap = _sustained_caps(hardware, profile, compute_dtype)
    for i, code in enumerate(table.kind):
        kind = OpKind(int(code))
        compute_fraction, memory_fraction = _op_fractions(kind, profile)
        compute_peak[i] = peaks[i] * compute_fraction
        if kind.is_gemm or kind.is_attention:      # the power limit's sustained rate (engine/power.py)
            compute_peak[i] = min(compute_peak[i], gemm_cap if kind.is_gemm else attention_cap)
        moved[i] = table.bytes[i] * stack.traffic(kind.stack_name)
        mem_s[i] = moved[i] * column_s_per_byte / memory_fraction
        occupancy[i] = occupancy_row(kind, table.kv_heads[i], profile, units)
        if kind.is_gemm:
            g = gemm_profile(kind, profile)
            tile_m[i], tile_n[i] = g.tile_m, g.tile_n
            overlap[i] = g.overlap_exponent
            gemv_max_m[i] = g.gemv_max_m
            gemv_scale[i] = g.memory_fraction / g.gemv_memory_fraction
            if kind == OpKind.EXPERT_MATMUL and table.moe is not None:
                routing[i] = (table.moe[1] / table.moe[0], g.group_tile_min, g.group_tile_max)
        if kind.is_attention:
            half_length[i] = profile.attention_half_length
            mem_s[i, SEQ] += attention_block_s(table.kv_heads[i], profile.attention_block_overhead_s, units)
        kernels = stack.kernels(kind.stack_name)
        overhead[i] = kernels * profile.kernel_overhead_by_kind_s.get(kind.stack_name, profile.kernel_overhead_s)
        host_launch_s += table.repeat[i] * kernels * profile.prefill_launch_overhead_by_kind_s.get(
            kind.stack_name, profile.prefill_launch_overhead_s)
    _bind_collectives(table, hardware, stack, profile, moved, mem_s, overhead)
    alt_peak, alt_mem_s = _bind_pim(table, hardware, profile, compute_dtype, moved, column_s_per_byte)
    return Rates(table, compute_peak, np.ascontiguousarray(mem_s), moved, overhead, tile_m, tile_n, units,
                 alt_peak, alt_mem_s, overhead.copy(), overlap, host_launch_s, half_length, gemv_max_m, gemv_scale,
                 occupancy, routing, profile, placement)


def _sustained_caps(hardware, profile: DeviceProfile, compute_dtype: Dtype):
    """(GEMM, attention) FLOP/s the power limit sustains (power.sustained_flops; inf without
    measured energy)."""
    per_flop = power.gemm_energy_per_flop_j(hardware, profile, compute_dtype, device_peaks(hardware, compute_dtype)[0])
    attention_j = profile.attention_energy_per_flop_j or per_flop
    return power.sustained_flops(hardware, profile, per_flop), power.sustained_flops(hardware, profile, attention_j)


def _bind_pim(table: OpTable, hardware, profile: DeviceProfile, compute_dtype: Dtype, moved, column_s_per_byte):
    """(alt_peak, alt_mem_s): the PIM unit's rates for the operators it can run (zeros elsewhere)."""
    n = len(table)
    alt_peak = np.zeros(n)
    alt_mem_s = np.zeros_like(moved)
    level = next((lv for lv in hardware.memory if lv.pim), None)
    if level is None:
        return alt_peak, alt_mem_s
    pim_peak = peak_for(level.pim.peak, compute_dtype, hardware.name)
    inside = np.array(column_s_per_byte)
    inside[WEIGHT_COLUMNS + KV_COLUMNS] = 1.0 / level.pim.internal_bandwidth_bytes_per_s
    for i, code in enumerate(table.kind):
        kind = OpKind(int(code))
        runs_in_memory = ("gemv" in level.pim.ops and kind.is_gemm) or ("attention" in level.pim.ops and kind.is_attention)
        if runs_in_memory:
            compute_fraction, memory_fraction = _op_fractions(kind, profile)
            alt_peak[i] = pim_peak * compute_fraction
            alt_mem_s[i] = moved[i] * inside / memory_fraction
    return alt_peak, alt_mem_s
