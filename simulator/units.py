"""Quantities with units -> SI floats, and back.

Spec files write quantities as strings such as ``"3.35 TB/s"``, ``"80 GiB"``,
``"989 TFLOP/s"``, ``"700 W"``. Decimal prefixes (k, M, G, T, P) are powers of
10; binary prefixes (Ki, Mi, Gi, Ti, Pi) are powers of 2. A bare number where a
quantity is expected is an error, as is a unit of the wrong dimension.

Dimensions and their SI base unit:
  bytes              B                     (bytes)
  bandwidth          B/s, also bit/s       (bytes per second; 8 bit = 1 B)
  flops              FLOP/s, OP/s          (operations per second)
  power              W
  time               s
  energy             J
  energy_per_byte    J/B
  energy_per_op      J/FLOP, J/OP
  frequency          Hz
  transfer_rate      T/s                   (memory transfers per second, e.g. 4800 MT/s)
  usd                USD
  usd_per_hour       USD/h
"""
from __future__ import annotations

import math
import re

DECIMAL = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3,
           "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

# base unit -> (dimension, multiplier to SI)
_BASES: dict[str, tuple[str, float]] = {
    "B": ("bytes", 1.0),
    "B/s": ("bandwidth", 1.0),
    "bit/s": ("bandwidth", 1.0 / 8.0),
    "FLOP/s": ("flops", 1.0),
    "OP/s": ("flops", 1.0),
    "W": ("power", 1.0),
    "s": ("time", 1.0),
    "J": ("energy", 1.0),
    "J/B": ("energy_per_byte", 1.0),
    "J/FLOP": ("energy_per_op", 1.0),
    "J/OP": ("energy_per_op", 1.0),
    "Hz": ("frequency", 1.0),
    "T/s": ("transfer_rate", 1.0),
    "USD": ("usd", 1.0),
    "USD/h": ("usd_per_hour", 1.0),
}
# prefixes that make sense for each base (binary prefixes only for bytes)
_NO_PREFIX = {"USD", "USD/h"}

# number, then the unit (matched on the stripped text: linear time, no backtracking over spaces)
_QUANTITY = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d].*)?", re.DOTALL)
MAX_QUANTITY_CHARS = 64

# Common spellings mapped to canonical units.
_ALIASES = {"TOPS": "TOP/s", "GOPS": "GOP/s", "TFLOPS": "TFLOP/s", "GFLOPS": "GFLOP/s",
            "PFLOPS": "PFLOP/s"}


class UnitError(ValueError):
    """A quantity string that cannot be parsed as the expected dimension."""


def _split_unit(unit: str) -> tuple[float, str]:
    """Return (prefix multiplier, base unit) for a unit string such as 'GiB/s'."""
    unit = _ALIASES.get(unit, unit)
    if unit in _BASES:
        return 1.0, unit
    for prefix, mult in BINARY.items():
        if unit.startswith(prefix) and unit[len(prefix):] in ("B", "B/s"):
            return mult, unit[len(prefix):]
    for prefix, mult in DECIMAL.items():
        if prefix and unit.startswith(prefix):
            base = unit[len(prefix):]
            if base in _BASES and base not in _NO_PREFIX:
                return mult, base
    raise UnitError(f"unknown unit '{unit}'")


def parse(text: object, dimension: str) -> float:
    """Parse ``text`` (e.g. ``"3.35 TB/s"``) as ``dimension``; return the SI value.

    Raises UnitError naming what was expected when the string has no unit, an
    unknown unit, a unit of another dimension, or is not finite.
    """
    expected = f"a quantity in {example_unit(dimension)} (e.g. '{example(dimension)}')"
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(f"expected {expected}, got {type(text).__name__}")
    if isinstance(text, (int, float)):
        raise UnitError(f"expected {expected}, got the bare number {text!r} (units are required)")
    if len(text) > MAX_QUANTITY_CHARS:
        raise UnitError(f"expected {expected}, got a {len(text):,}-character string")
    match = _QUANTITY.fullmatch(text.strip())
    if not match:
        raise UnitError(f"expected {expected}, got '{text}'")
    number, unit = match.groups()
    if not unit:
        raise UnitError(f"expected {expected}, got '{text}' with no unit")
    try:
        mult, base = _split_unit(unit)
    except UnitError:
        raise UnitError(f"expected {expected}, got unknown unit '{unit}' in '{text}'") from None
    dim, to_si = _BASES[base]
    if dim != dimension:
        raise UnitError(f"expected {expected}, got '{text}' which is {dim.replace('_', ' ')}")
    value = float(number) * mult * to_si
    if not math.isfinite(value):
        raise UnitError(f"expected {expected}, got non-finite '{text}'")
    return value


_EXAMPLES = {
    "bytes": ("B", "80 GB"), "bandwidth": ("B/s", "3.35 TB/s"), "flops": ("FLOP/s", "989 TFLOP/s"),
    "power": ("W", "700 W"), "time": ("s", "2 us"), "energy": ("J", "1.5 J"),
    "energy_per_byte": ("J/B", "60 pJ/B"), "energy_per_op": ("J/FLOP", "0.7 pJ/FLOP"),
    "frequency": ("Hz", "1.98 GHz"), "transfer_rate": ("T/s", "4800 MT/s"), "usd": ("USD", "30000 USD"), "usd_per_hour": ("USD/h", "2.5 USD/h"),
}


def example_unit(dimension: str) -> str:
    return _EXAMPLES[dimension][0]


def example(dimension: str) -> str:
    return _EXAMPLES[dimension][1]


_FORMAT_PREFIXES = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
                    (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")]


def format_si(value: float, unit: str, digits: int = 3) -> str:
    """Format an SI value with a decimal prefix: ``format_si(3.35e12, 'B/s') == '3.35 TB/s'``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    magnitude = abs(value)
    for mult, prefix in _FORMAT_PREFIXES:
        if magnitude >= mult * 0.9995:
            return f"{value / mult:.{digits}g} {prefix}{unit}"
    mult, prefix = _FORMAT_PREFIXES[-1]
    return f"{value / mult:.{digits}g} {prefix}{unit}"
