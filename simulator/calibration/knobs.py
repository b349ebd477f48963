"""The few interpretable parameters `calibrate --from-runs` fits on top of a base stack, and
how each changes a DeviceProfile (the engine then runs the changed profile unchanged).

Scales multiply efficiencies, a fraction capped at 1 (of the dense peak, of the bandwidth;
a base value already above 1 keeps its own cap): f' = min(max(1, f), f x scale).
Shifts add a host or launch cost in seconds, floored at 0: t' = max(0, t + shift).

  gemm_compute_scale          x gemm.peak_fraction: GEMM efficiency (tensor-core use)
  attention_compute_scale     x attention_compute_fraction: attention kernels' efficiency
  memory_scale                x every bandwidth fraction (weights, GEMV, KV reads, elementwise)
  kernel_overhead_s           + each kernel's fixed cost (launch gap, every kind)
  prefill_launch_overhead_s   + the host's eager launch cost per prefill kernel
  decode_step_overhead_s      + host cost per decode step (scheduler, sampling, graph replay)
  prefill_step_overhead_s     + host cost per prefill pass
  gemm_flops_per_unit_cycle   GEMMs at x FLOP per compute unit per clock cycle, whatever the
                              datasheet's tensor peak: gemm.peak_fraction = min(1, x units
                              clock / peak), per device (kernels built on instructions whose
                              rate per SM does not follow the tensor-core generation, e.g.
                              llama.cpp's MMQ on mma.sync); a device without units or clock
                              in its spec keeps its base fraction
  gemv_bytes_per_unit_s       batch-1 mat-vec kernels (GEMMs of at most gemv_max_m rows) stream
                              at most x bytes/s per compute unit: gemm.gemv_memory_fraction =
                              min(fraction, x units / bandwidth), per device. Little's law: a
                              kernel that keeps q bytes in flight per unit at memory latency L
                              streams q / L per unit, whatever the datasheet bandwidth (applied
                              after memory_scale); a device without units keeps its fraction

A per-layer host cost is not a separate parameter: a layer is a fixed number of kernels, so
it is kernel_overhead_s times that number (the two cannot be told apart from runs).
"""
from __future__ import annotations

import dataclasses

from simulator.calibration.profile import quantity, ratio
from simulator.errors import SpecError
from simulator.specs.base import Dtype
from simulator.specs.stack import DeviceProfile

MAX_SCALE = 20.0             # an efficiency at most 20x the base's (the cap at 1 binds first)
MIN_SCALE = 0.02
MAX_KERNEL_S = 1e-3          # a kernel's fixed cost: microseconds on a GPU, ~0.1 ms eager on a CPU
MAX_STEP_S = 1.0             # host cost of one pass
MIN_RATE = 1.0               # FLOP per unit per cycle: one scalar FMA lane would give 2
MAX_RATE = 1e5               # FLOP per unit per cycle: an H100 SM's dense fp8 peak is ~7,600
MIN_STREAM = 1e8             # B/s per compute unit: 0.1 GB/s, far below any GPU SM's share
MAX_STREAM = 1e12            # B/s per compute unit: 1 TB/s, above any one SM's or core's reach


@dataclasses.dataclass(frozen=True)
class Knob:
    """One fitted parameter: ``fields`` of the DeviceProfile it scales or shifts."""

    name: str
    kind: str                # "scale" (dimensionless), "shift" (seconds), "rate" (FLOP/cycle/unit) or
                             # "stream" (B/s per unit, a cap)
    fields: tuple[str, ...]  # "gemm.x" nested, "x" top level (a dict field: each entry)
    meaning: str
    upper: float = MAX_SCALE

    @property
    def unit(self) -> str:
        return {"scale": "", "shift": "s", "rate": "FLOP/cycle", "stream": "B/s"}[self.kind]

    @property
    def per_device(self) -> bool:
        """Its value depends on each device's spec (device_factor)."""
        return self.kind in ("rate", "stream")

    @property
    def start(self) -> float:
        return 0.0 if self.kind == "shift" else 1.0

    def change(self, value: float, x: float, factor: float | None = None) -> float:
        """The field's new value; ``factor``: the device's device_factor for a rate or stream."""
        if self.kind == "scale":
            return min(max(1.0, value), value * x)
        if self.kind == "rate":
            return value if factor is None else min(1.0, x * factor)
        if self.kind == "stream":
            return value if factor is None else min(value, x * factor)
        return max(0.0, value + x)


KNOBS = {k.name: k for k in (
    Knob("gemm_compute_scale", "scale", ("gemm.peak_fraction",), "GEMM efficiency relative to the base stack"),
    Knob("attention_compute_scale", "scale", ("attention_compute_fraction",),
         "attention kernels' compute efficiency relative to the base"),
    Knob("memory_scale", "scale", ("gemm.memory_fraction", "gemm.gemv_memory_fraction", "attention_memory_fraction",
                                   "elementwise_memory_fraction", "memory_fraction_by_kind"),
         "achieved fraction of memory bandwidth relative to the base"),
    Knob("kernel_overhead_s", "shift", ("kernel_overhead_s", "kernel_overhead_by_kind_s"),
         "added fixed cost per kernel (launch gap)", MAX_KERNEL_S),
    Knob("prefill_launch_overhead_s", "shift", ("prefill_launch_overhead_s", "prefill_launch_overhead_by_kind_s"),
         "added host launch cost per eager prefill kernel", MAX_KERNEL_S),
    Knob("decode_step_overhead_s", "shift", ("decode_step_overhead_s",), "added host cost per decode step",
         MAX_STEP_S),
    Knob("prefill_step_overhead_s", "shift", ("prefill_step_overhead_s",), "added host cost per prefill pass",
         MAX_STEP_S),
    Knob("gemm_flops_per_unit_cycle", "rate", ("gemm.peak_fraction",),
         "GEMM FLOP per compute unit per clock cycle (peak fraction = min(1, x units clock / peak))", MAX_RATE),
    Knob("gemv_bytes_per_unit_s", "stream", ("gemm.gemv_memory_fraction",),
         "bytes per second one compute unit streams in a mat-vec kernel (GEMV fraction = min(fraction, "
         "x units / bandwidth))", MAX_STREAM),
)}
ORDER = {"scale": 0, "shift": 0, "rate": 1, "stream": 2}   # caps apply to the scaled fractions


def knob(name: str) -> Knob:
    if name not in KNOBS:
        raise SpecError("<arguments>", "--params", f"unknown parameter {name!r} (expected some of {', '.join(KNOBS)})")
    return KNOBS[name]


def cycle_factor(hardware, dtype: Dtype) -> float | None:
    """units x clock / dense peak of ``dtype`` (peak fraction per FLOP/cycle/unit), or None
    when the spec gives no compute units or clock."""
    from simulator.engine.bind import peak_for

    if not getattr(hardware, "compute_units", None) or not getattr(hardware, "clock_hz", None):
        return None
    return hardware.compute_units * hardware.clock_hz / peak_for(hardware.peak_flops(), dtype, hardware.name)


def stream_factor(hardware) -> float | None:
    """units / bandwidth of the outermost memory level (GEMV fraction per B/s per unit), or
    None when the spec gives no compute units."""
    if not getattr(hardware, "compute_units", None) or not getattr(hardware, "memory", None):
        return None
    return hardware.compute_units / hardware.memory[-1].bandwidth_bytes_per_s


def device_factor(k: Knob, hardware, dtype: Dtype) -> float | None:
    """What a per-device knob multiplies on ``hardware``: cycle_factor for a rate,
    stream_factor for a stream; None for other knobs or a spec that lacks the facts."""
    if k.kind == "rate":
        return cycle_factor(hardware, dtype)
    return stream_factor(hardware) if k.kind == "stream" else None


def _values(profile: DeviceProfile, field: str) -> list[float]:
    """The current values a knob field holds (a dict field: every entry)."""
    if field.startswith("gemm."):
        return [getattr(profile.gemm, field[5:])]
    value = getattr(profile, field)
    return list(value.values()) if isinstance(value, dict) else [value]


def lower_bound(k: Knob, profiles: list[DeviceProfile]) -> float:
    """A scale's floor; a shift's: minus the smallest cost it shifts, so none goes below 0."""
    if k.kind == "rate":
        return MIN_RATE
    if k.kind == "stream":
        return MIN_STREAM
    if k.kind == "scale":
        return MIN_SCALE
    return -min([v for p in profiles for f in k.fields for v in _values(p, f)], default=0.0)


def updates(profile: DeviceProfile, values: dict[Knob, float], factors: dict | None = None) -> dict:
    """{DeviceProfile field name: new value} (SI; gemm a GemmEfficiency) of ``values`` applied,
    scales and shifts first, then rates, then stream caps (``factors``: {knob kind:
    device_factor of the profile's device}, for the per-device knobs)."""
    out, gemm = {}, {}
    factors = factors or {}
    for k, x in sorted(values.items(), key=lambda kv: ORDER[kv[0].kind]):
        f = factors.get(k.kind)
        for field in k.fields:
            if field.startswith("gemm."):
                gemm[field[5:]] = k.change(gemm.get(field[5:], getattr(profile.gemm, field[5:])), x, f)
                continue
            value = out.get(field, getattr(profile, field))
            out[field] = ({kind: k.change(v, x, f) for kind, v in value.items()} if isinstance(value, dict)
                          else k.change(value, x, f))
    if gemm:
        out["gemm"] = profile.gemm.model_copy(update=gemm)
    return out


def raw_fields(changed: dict) -> dict:
    """updates() as the profile's YAML fields: aliases, times as unit strings, 4 digits."""
    raw = {}
    for name, value in changed.items():
        alias = DeviceProfile.model_fields[name].alias or name
        if name == "gemm":
            raw[alias] = {k: (ratio(v) if isinstance(v, float) else v) for k, v in value.model_dump().items()}
        elif isinstance(value, dict):
            raw[alias] = {k: quantity(v, "s") if name.endswith("_s") else ratio(v) for k, v in value.items()}
        else:
            raw[alias] = quantity(value, "s") if name.endswith("_s") else ratio(value)
    return raw


def _dtype_overrides(profile: DeviceProfile, values: dict[Knob, float], factors: dict | None = None) -> dict:
    """Each per-dtype override with the knobs applied to the fields it replaces."""
    out = {}
    for dtype, override in profile.dtypes.items():
        own = DeviceProfile.model_validate(override).model_fields_set
        changed = {k: v for k, v in updates(profile.for_dtype(Dtype(dtype)), values, factors).items() if k in own}
        out[dtype] = {**{k: v for k, v in override.items() if _name_of(k) not in changed}, **raw_fields(changed)}
    return out


def _name_of(alias: str) -> str:
    return next((n for n, f in DeviceProfile.model_fields.items() if f.alias == alias), alias)


def adjusted(profile: DeviceProfile, values: dict[Knob, float], factors: dict | None = None) -> DeviceProfile:
    """The profile with ``values`` applied (its dtype overrides too)."""
    change = updates(profile, values, factors)
    if profile.dtypes:
        change["dtypes"] = _dtype_overrides(profile, values, factors)
    return profile.model_copy(update=change)


def adjusted_raw(raw: dict, profile: DeviceProfile, values: dict[Knob, float], factors: dict | None = None) -> dict:
    """A profile's YAML mapping with ``values`` applied (other fields as written)."""
    changed = updates(profile, values, factors)
    out = {k: v for k, v in raw.items() if _name_of(k) not in changed and k != "dtypes"}
    out.update(raw_fields(changed))
    if profile.dtypes:
        out["dtypes"] = {getattr(d, "value", d): o for d, o in _dtype_overrides(profile, values, factors).items()}
    return out
