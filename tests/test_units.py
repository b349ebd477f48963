import math

import pytest
from hypothesis import given, strategies as st

from simulator import units
from simulator.units import UnitError, parse


@pytest.mark.parametrize("text,dim,expected", [
    ("3.35 TB/s", "bandwidth", 3.35e12),
    ("80 GB", "bytes", 80e9),
    ("80 GiB", "bytes", 80 * 2**30),
    ("16 KiB", "bytes", 16384),
    ("989 TFLOP/s", "flops", 989e12),
    ("393 TOP/s", "flops", 393e12),
    ("197 TFLOPS", "flops", 197e12),
    ("700 W", "power", 700.0),
    ("2 us", "time", 2e-6),
    ("1.98 GHz", "frequency", 1.98e9),
    ("60 pJ/B", "energy_per_byte", 60e-12),
    ("0.7 pJ/FLOP", "energy_per_op", 0.7e-12),
    ("200 Gbit/s", "bandwidth", 25e9),
    ("4800 MT/s", "transfer_rate", 4.8e9),
    ("1599 USD", "usd", 1599.0),
    ("1.2 USD/h", "usd_per_hour", 1.2),
    ("1e3 W", "power", 1000.0),
])
def test_parse_examples(text, dim, expected):
    assert parse(text, dim) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value,dim,fragment", [
    (3.35, "bandwidth", "bare number"),
    ("3.35", "bandwidth", "no unit"),
    ("3.35 TB", "bandwidth", "bytes"),
    ("80 GQ", "bytes", "unknown unit"),
    ("fast", "bandwidth", "expected"),
    (None, "power", "NoneType"),
    ("1 KiW", "power", "unknown unit"),
])
def test_parse_errors_say_what_was_expected(value, dim, fragment):
    with pytest.raises(UnitError) as info:
        parse(value, dim)
    assert fragment in str(info.value)
    assert units.example_unit(dim) in str(info.value)


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False),
       st.sampled_from(["", "k", "M", "G", "T", "P"]))
def test_decimal_prefixes_are_powers_of_ten(value, prefix):
    text = f"{value!r} {prefix}B/s"
    assert math.isclose(parse(text, "bandwidth"), value * units.DECIMAL[prefix], rel_tol=1e-12)


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False), st.sampled_from(["Ki", "Mi", "Gi", "Ti"]))
def test_binary_prefixes_are_powers_of_two(value, prefix):
    assert math.isclose(parse(f"{value!r} {prefix}B", "bytes"), value * units.BINARY[prefix], rel_tol=1e-12)


@given(st.floats(min_value=1e-9, max_value=1e17, allow_nan=False))
def test_format_then_parse_round_trips(value):
    assert math.isclose(parse(units.format_si(value, "B/s", digits=12), "bandwidth"), value, rel_tol=1e-9)
