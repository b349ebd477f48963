"""Bind an operator table to a device and stack: the per-operator rates the kernels use.

For operator i:
  compute_peak[i]  FLOP/s: the device's dense peak for the op's dtype x the stack's fraction
                   (GEMMs: gemm.peak_fraction; attention: attention_compute_fraction;
                   elementwise ops run on the vector units: the fp32 peak when given)
  bandwidth[i]     B/s: the main memory level's bandwidth x the stack's fraction, divided by
                   the stack's traffic multiplier (extra passes of unfused elementwise work)
  overhead[i]      s: kernels_per_op x kernel_overhead
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.errors import SpecError
from simulator.graph.lower import OpTable
from simulator.graph.ops import OpKind
from simulator.specs.base import Dtype
from simulator.specs.stack import DeviceProfile, StackSpec


@dataclasses.dataclass(frozen=True)
class Bound:
    table: OpTable
    compute_peak: np.ndarray
    bandwidth: np.ndarray
    overhead: np.ndarray
    tile_m: np.ndarray
    tile_n: np.ndarray
    units: float
    step_overhead_s: float
    profile: DeviceProfile

    def kernel_args(self):
        t = self.table
        return (t.flops, t.bytes, t.repeat, t.gemm_n, t.m_feature, self.compute_peak, self.bandwidth,
                self.overhead, self.tile_m, self.tile_n, self.units)


def peak_for(peaks: dict[Dtype, float], dtype: Dtype, hardware_name: str) -> float:
    """Dense peak for a dtype; a narrower dtype the device lacks runs at the next wider one
    it has (e.g. fp8 on an A100 runs as bf16/fp16)."""
    order = [Dtype.fp4, Dtype.int4, Dtype.fp8, Dtype.int8, Dtype.fp16, Dtype.bf16, Dtype.tf32, Dtype.fp32]
    start = order.index(dtype)
    for candidate in order[start:]:
        if candidate in peaks:
            return peaks[candidate]
    raise SpecError(hardware_name, "peak", f"no dense peak for {dtype.value} or any wider dtype")


def bind(table: OpTable, hardware, stack: StackSpec, compute_dtype: Dtype) -> Bound:
    profile = stack.profile_for(hardware.name, hardware.kind)
    peaks = hardware.peak_flops()
    tensor_peak = peak_for(peaks, compute_dtype, hardware.name)
    vector_peak = peaks.get(Dtype.fp32, tensor_peak)
    bandwidth = hardware.main_memory.bandwidth_bytes_per_s
    n = len(table)
    compute_peak = np.empty(n)
    bw = np.empty(n)
    overhead = np.empty(n)
    tile_m = np.ones(n)
    tile_n = np.ones(n)
    for i, code in enumerate(table.kind):
        kind = OpKind(int(code))
        traffic = stack.traffic(kind.stack_name)
        if kind.is_gemm:
            compute_peak[i] = tensor_peak * profile.gemm.peak_fraction
            bw[i] = bandwidth * profile.gemm.memory_fraction
            tile_m[i], tile_n[i] = profile.gemm.tile_m, profile.gemm.tile_n
        elif kind.is_attention:
            compute_peak[i] = tensor_peak * profile.attention_compute_fraction
            bw[i] = bandwidth * profile.attention_memory_fraction
        else:
            compute_peak[i] = vector_peak
            bw[i] = bandwidth * profile.elementwise_memory_fraction
        bw[i] /= traffic
        overhead[i] = stack.kernels(kind.stack_name) * profile.kernel_overhead_s
    units = float(hardware.compute_units or 1)
    return Bound(table, compute_peak, bw, overhead, tile_m, tile_n, units, profile.step_overhead_s, profile)
