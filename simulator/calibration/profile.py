"""Fitted numbers -> a stack's device entry: the YAML fields (quantities as unit strings the
spec parser reads back), per-dtype merging, and the DeviceProfile they validate to."""
from __future__ import annotations

from simulator.specs.base import Dtype
from simulator.specs.stack import DeviceProfile
from simulator.units import parse as parse_quantity

# profile fields that follow the compute dtype (the rest are the machine's own)
DTYPE_FIELDS = ("gemm", "attention_compute_fraction", "attention_memory_fraction", "attention_half_length",
                "attention_block_overhead", "elementwise_memory_fraction", "memory_fraction_by_kind",
                "kernel_overhead", "kernel_overhead_by_kind")


def ratio(x: float) -> float:
    """A dimensionless fitted number, 4 significant digits."""
    return float(f"{x:.4g}")


def quantity(x: float, unit: str) -> str:
    """A quantity string the spec parser reads back: 4 significant digits, SI base unit."""
    return f"{x:.4g} {unit}"


def shift_times(quantities: dict, add_s: float = 0.0, scale: float = 1.0) -> dict:
    """Each time quantity string t of ``quantities`` as t x scale + add_s."""
    return {k: quantity(parse_quantity(v, "time") * scale + add_s, "s") for k, v in quantities.items()}


def merge_fields(fields: dict, more: dict) -> dict:
    """``fields`` updated by ``more`` one level deep: a mapping field (e.g. a by-kind table)
    gains ``more``'s keys, any other field is replaced. Updates and returns ``fields``."""
    for key, value in more.items():
        fields[key] = {**fields.get(key, {}), **value} if isinstance(value, dict) else value
    return fields


def profile_from_fields(fields: dict) -> DeviceProfile:
    return DeviceProfile.model_validate(fields)


def merge_dtype_fields(per_dtype: dict[Dtype, dict]) -> dict:
    """One device entry from per-dtype fits: bf16's (else the first) is the base; each other
    dtype keeps, under ``dtypes``, the dtype-dependent fields where it differs."""
    base_dtype = Dtype.bf16 if Dtype.bf16 in per_dtype else next(iter(per_dtype))
    base = dict(per_dtype[base_dtype])
    overrides = {}
    for dtype, fields in per_dtype.items():
        diff = {k: fields[k] for k in DTYPE_FIELDS if k in fields and fields[k] != base.get(k)}
        if dtype != base_dtype and diff:
            overrides[dtype.value] = diff
    if overrides:
        base["dtypes"] = overrides
    base["fitted_from"] = "; ".join(f["fitted_from"] for f in per_dtype.values())
    return base
