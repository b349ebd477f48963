"""Each operator of a prefill pass and of one decode step as a point under the device's
roofs (what ``llmsim roofline`` prints and draws), from the same bound table and kernel
that ``simulator.predict`` evaluates.

Per operator (all its layers, one device, one microbatch pass):
  flops, bytes    the table's FLOP row and moved-byte row (bind.Rates.moved_bytes: what
                  the stack moves) at the pass's features, x its repeat count
  intensity       flops / bytes, FLOP/B
  achieved        flops / predicted time (roofline.evaluate_point: the stack's fractions,
                  GEMM quantization and per-kernel overhead included), FLOP/s
  attainable      the datasheet roofline: flops / max(flops / peak of its unit,
                  bytes x seconds per byte of the levels serving them), FLOP/s
The decode step is the one at the mean decode position (the step predict's breakdown
reports bounds for). Roofs: the compute dtype's tensor peak, the vector (fp32) peak where
it differs, and one bandwidth per memory level.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.engine.kernels import roofline
from simulator.engine.bind import device_peaks, phase_repeat, unit_peaks
from simulator.engine.kernels.phases import decode_step_features, mean_decode_position, prefill_features
from simulator.engine.predict import Prepared, memory_report
from simulator.graph.ops import OpKind
from simulator.specs.base import Dtype
from simulator.specs.workload import Workload



@dataclasses.dataclass(frozen=True)
class Roof:
    name: str
    kind: str            # "compute" (value in FLOP/s) or "memory" (value in B/s)
    value: float


@dataclasses.dataclass(frozen=True)
class OperatorPoint:
    name: str
    kind: str
    phase: str           # "prefill" or "decode"
    time_s: float
    flops: float
    bytes: float
    attainable_flops_per_s: float    # 0 for an operator without FLOPs
    bound: str
    unit: str            # "host", or "memory" where it ran inside memory (PIM)

    @property
    def intensity(self) -> float:
        """FLOP/B (0 without FLOPs or bytes)."""
        return self.flops / self.bytes if self.bytes > 0 else 0.0

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops / self.time_s if self.time_s > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class RooflineData:
    model: str
    hardware: str
    stack: str
    workload: Workload
    decode_position: int | None      # None when there is no decode step (output 1)
    roofs: list[Roof]
    points: list[OperatorPoint]
    fits: bool


def _roofs(hw, compute_dtype: Dtype) -> list[Roof]:
    tensor, vector = device_peaks(hw, compute_dtype)
    roofs = [Roof(f"{compute_dtype.value} peak", "compute", tensor)]
    if vector != tensor:
        roofs.append(Roof("fp32 vector peak", "compute", vector))
    return roofs + [Roof(level.name, "memory", level.bandwidth_bytes_per_s) for level in hw.memory]


def _phase_points(prep, phase: str, feats: np.ndarray, peaks: np.ndarray) -> list[OperatorPoint]:
    """The operators that run in ``phase``, at the pass's feature vector."""
    rates, table = prep.rates, prep.table
    time_s, bounds, units = roofline.evaluate_point(*rates.pass_arrays(phase), feats)
    repeat = phase_repeat(table, phase)
    flops = table.flops @ feats * repeat
    moved = rates.moved_bytes @ feats * repeat
    memory_s = (rates.moved_bytes * rates.placement.seconds_per_byte()) @ feats * repeat
    points = []
    for i in np.flatnonzero(repeat > 0):
        ideal_s = max(flops[i] / peaks[i], memory_s[i])
        points.append(OperatorPoint(
            name=table.names[i], kind=OpKind(int(table.kind[i])).name.lower(), phase=phase,
            time_s=float(time_s[i]), flops=float(flops[i]), bytes=float(moved[i]),
            attainable_flops_per_s=float(flops[i] / ideal_s) if flops[i] > 0 and ideal_s > 0 else 0.0,
            bound=roofline.BOUND_NAMES[bounds[i]], unit=("host", "memory")[units[i]]))
    return points


def roofline_data(prep: Prepared, w: Workload) -> RooflineData:
    """The roofs of the prepared device and the points of its model's operators under
    workload ``w`` (see the module docstring)."""
    table, mb = prep.table, w.microbatch
    peaks = unit_peaks(table, prep.hardware, w.activation_dtype)
    pre_feats = prefill_features(mb, w.prompt, table.window, table.moe)
    points = _phase_points(prep, "prefill", pre_feats, peaks)
    position = mean_decode_position(w.prompt, w.output) if w.output > 1 else None
    if position is not None:
        feats = decode_step_features(mb, position, table.window, table.moe)
        points += _phase_points(prep, "decode", feats, peaks)
    fits = memory_report(table, prep.hardware, w, pre_feats).fits
    return RooflineData(prep.model_name, prep.hardware.name, prep.stack.name, w, position,
                        _roofs(prep.hardware, w.activation_dtype), points, fits)
