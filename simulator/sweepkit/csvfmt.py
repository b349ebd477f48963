"""CSV rows of a chunk of scenarios, formatted by a numba kernel (Python's float formatting
costs about a microsecond a number, longer than evaluating the scenario).

Floats are written like C's ``%.12g`` (12 significant digits, trailing zeros dropped,
exponent form below 1e-4 and from 1e12: relative rounding error <= 5e-12); integers in
full; booleans as True/False; NaN as ``nan``, infinities as ``inf``/``-inf``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

INT, FLOAT, BOOL = 0, 1, 2          # column kinds
DIGITS = 12
_POW10 = np.array([10.0 ** k for k in range(23)])       # exact doubles
_MAX_FIELD = 24                                         # '-1.23456789012e+308' plus room
_TRUE = np.frombuffer(b"True", dtype=np.uint8)
_FALSE = np.frombuffer(b"False", dtype=np.uint8)
_NAN = np.frombuffer(b"nan", dtype=np.uint8)
_INF = np.frombuffer(b"inf", dtype=np.uint8)


@njit(cache=True)
def _copy(buf, pos, text):
    for i in range(text.shape[0]):
        buf[pos + i] = text[i]
    return pos + text.shape[0]


@njit(cache=True)
def _write_uint(buf, pos, value):
    """Decimal digits of a non-negative integer."""
    if value == 0:
        buf[pos] = 48
        return pos + 1
    n = 0
    v = value
    while v > 0:
        n += 1
        v //= 10
    v = value
    for i in range(n - 1, -1, -1):
        buf[pos + i] = 48 + v % 10
        v //= 10
    return pos + n


@njit(cache=True)
def _scaled(x, k):
    """x * 10**k: one correctly rounded operation when |k| <= 22, steps of 1e22 beyond."""
    while k > 22:
        x *= 1e22
        k -= 22
    while k < -22:
        x /= 1e22
        k += 22
    return x * _POW10[k] if k >= 0 else x / _POW10[-k]


@njit(cache=True)
def _digits(x):
    """(m, e) with DIGITS-digit integer m and x ~= m x 10**(e - DIGITS + 1), for x > 0."""
    lo = 10 ** (DIGITS - 1)
    hi = 10 ** DIGITS
    e = int(math.floor(math.log10(x)))
    m = int(round(_scaled(x, DIGITS - 1 - e)))
    if m >= hi:
        e += 1
        m = int(round(_scaled(x, DIGITS - 1 - e)))
    elif m < lo:
        e -= 1
        m = int(round(_scaled(x, DIGITS - 1 - e)))
    if m >= hi:                       # 9.99999999999951 -> 10.0000000000
        m //= 10
        e += 1
    return m, e


@njit(cache=True)
def write_float(buf, pos, x, digits):
    """'%.12g' % x into buf at pos (digits: DIGITS bytes of scratch); returns the new position."""
    if x != x:
        return _copy(buf, pos, _NAN)
    if x < 0 or (x == 0.0 and math.copysign(1.0, x) < 0):
        buf[pos] = 45                                   # '-'
        pos += 1
        x = -x
    if x == math.inf:
        return _copy(buf, pos, _INF)
    if x == 0.0:
        buf[pos] = 48
        return pos + 1
    m, e = _digits(x)
    for i in range(DIGITS - 1, -1, -1):
        digits[i] = 48 + m % 10
        m //= 10
    n = DIGITS
    while n > 1 and digits[n - 1] == 48:
        n -= 1
    if -4 <= e < DIGITS:
        if e >= 0:
            for i in range(e + 1):
                buf[pos] = digits[i] if i < n else 48
                pos += 1
            first_fraction = e + 1
        else:
            buf[pos] = 48
            pos += 1
            first_fraction = 0
        if n > first_fraction or e < 0:
            buf[pos] = 46                               # '.'
            pos += 1
            for _ in range(-e - 1):
                buf[pos] = 48
                pos += 1
            for i in range(first_fraction, n):
                buf[pos] = digits[i]
                pos += 1
        return pos
    buf[pos] = digits[0]
    pos += 1
    if n > 1:
        buf[pos] = 46
        pos += 1
        for i in range(1, n):
            buf[pos] = digits[i]
            pos += 1
    buf[pos] = 101                                      # 'e'
    buf[pos + 1] = 43 if e >= 0 else 45                 # '+' / '-'
    pos += 2
    ae = abs(e)
    if ae < 10:
        buf[pos] = 48
        pos += 1
    return _write_uint(buf, pos, ae)


@njit(cache=True)
def _write_value(buf, pos, x, kind, digits):
    if kind == FLOAT:
        return write_float(buf, pos, x, digits)
    if kind == BOOL:
        return _copy(buf, pos, _TRUE if x != 0.0 else _FALSE)
    if x < 0:
        buf[pos] = 45
        return _write_uint(buf, pos + 1, np.int64(-x))
    return _write_uint(buf, pos, np.int64(x))


@njit(cache=True)
def format_rows(prefix, values, kinds):
    """Bytes of len(values[0]) CSV lines: ``prefix`` (already ending in a comma, or empty),
    then values[:, row] formatted by kind (INT, FLOAT, BOOL), comma separated."""
    n_cols, n_rows = values.shape
    buf = np.empty(n_rows * (prefix.shape[0] + n_cols * (_MAX_FIELD + 1) + 1), dtype=np.uint8)
    digits = np.empty(DIGITS, dtype=np.uint8)
    pos = 0
    for r in range(n_rows):
        pos = _copy(buf, pos, prefix)
        for c in range(n_cols):
            if c:
                buf[pos] = 44                           # ','
                pos += 1
            pos = _write_value(buf, pos, values[c, r], kinds[c], digits)
        buf[pos] = 10                                   # '\n'
        pos += 1
    return buf[:pos]


def rows_csv(prefix: str, values: np.ndarray, kinds: np.ndarray) -> bytes:
    """CSV text (bytes) of a chunk: a constant ``prefix`` of leading fields per row, then
    the columns of ``values`` [columns, rows]."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    return format_rows(head, np.ascontiguousarray(values, dtype=np.float64),
                       np.ascontiguousarray(kinds, dtype=np.int64)).tobytes()


def format_float(x: float) -> str:
    """One float as write_float writes it (for headers of constants and tests)."""
    buf = np.empty(_MAX_FIELD + 8, dtype=np.uint8)
    return buf[:write_float(buf, 0, float(x), np.empty(DIGITS, dtype=np.uint8))].tobytes().decode()
