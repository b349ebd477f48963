"""The datasheet facts a fitted stack profile depends on, and how two specs differ in them.

A profile's fractions are fitted against one spec's numbers: achieved FLOP/s = fraction x
peak, achieved bandwidth = fraction x a memory level's bandwidth, tiles fill compute_units,
and placement depends on each level's capacity. A spec that shares a fitted device's name
but not these facts is not that device, so the fitted profile does not silently apply
(specs/stack.py, StackSpec.choose).
"""
from __future__ import annotations

import hashlib
import math

from simulator.units import format_si

REL_TOLERANCE = 1e-9       # the same quantity written in other units ("3.35 TB/s", "3350 GB/s")


def fit_facts(hardware) -> dict[str, tuple[float, str]]:
    """{fact: (value, unit)}: kind, every dense peak (FLOP/s), each memory level's bandwidth
    (B/s) and capacity (B), and the compute units."""
    facts: dict[str, tuple[float, str]] = {f"peak {d.value}": (v, "FLOP/s") for d, v in hardware.peak_flops().items()}
    for level in hardware.memory:
        facts[f"{level.name} bandwidth"] = (level.bandwidth_bytes_per_s, "B/s")
        facts[f"{level.name} capacity"] = (level.capacity_bytes, "B")
    facts["compute units"] = (float(hardware.compute_units or 0), "")
    return facts


def digest(hardware) -> str:
    """16 hex digits of the SHA-256 of the kind and the fit facts (9 significant digits each):
    what a calibrated entry records as ``fitted_for``, so it applies to that spec only."""
    text = ";".join([hardware.kind, *(f"{k}={v:.9g}" for k, (v, _) in sorted(fit_facts(hardware).items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _shown(fact: tuple[float, str] | None) -> str:
    if fact is None:
        return "none"
    value, unit = fact
    return format_si(value, unit) if unit else f"{value:g}"


def differences(spec, reference) -> list[str]:
    """Plain descriptions of the fit facts in which ``spec`` differs from ``reference``
    ("HBM3 bandwidth 4.00 TB/s, not 3.35 TB/s"); empty when they agree."""
    if spec.kind != reference.kind:
        return [f"kind {spec.kind}, not {reference.kind}"]
    mine, theirs = fit_facts(spec), fit_facts(reference)
    out = []
    for name in [*theirs, *(n for n in mine if n not in theirs)]:
        a, b = mine.get(name), theirs.get(name)
        if a is None or b is None or not math.isclose(a[0], b[0], rel_tol=REL_TOLERANCE):
            out.append(f"{name} {_shown(a)}, not {_shown(b)}")
    return out
