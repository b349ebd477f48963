"""CSV rows of a chunk of scenarios, formatted by numba kernels (Python's float formatting
costs about a microsecond a number, longer than evaluating the scenario).

Floats are written like C's ``%.12g`` (12 significant digits, trailing zeros dropped,
exponent form below 1e-4 and from 1e12; the last digit may differ from C's in rare
near-halfway cases: relative error <= 1e-11); integers in full; booleans as True/False;
NaN as ``nan``, infinities as ``inf``/``-inf``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, uint64

INT, FLOAT, BOOL = 0, 1, 2          # column kinds
DIGITS = 12
_POW10 = np.array([10.0 ** k for k in range(23)])       # exact doubles
_LOG10_2 = math.log10(2.0)
_POW10_INT = np.array([10 ** k for k in range(20)], dtype=np.uint64)
_MAX_FIELD = 24                                         # '-1.23456789012e+308' plus room
_ROWS_PER_BLOCK = 2048
_ONE_FLOAT = np.array([FLOAT], dtype=np.int64)


@njit(cache=True, error_model="numpy", inline="always")
def _write_fixed(buf, pos, value, n):
    """Exactly n decimal digits of value >= 0 (leading zeros kept); returns the new position."""
    u = uint64(value)
    for i in range(n - 1, -1, -1):
        q = u // uint64(10)       # unsigned by a literal: a multiply, not a division
        buf[pos + i] = 48 + (u - q * uint64(10))
        u = q
    return pos + n


@njit(cache=True, error_model="numpy", inline="always")
def _write_digits(buf, pos, m, n, dot):
    """The n decimal digits of m >= 0, with a '.' after the first ``dot`` of them when dot < n."""
    if dot >= n:
        return _write_fixed(buf, pos, m, n)
    scale = _POW10_INT[n - dot]
    pos = _write_fixed(buf, pos, uint64(m) // scale, dot)
    buf[pos] = 46
    return _write_fixed(buf, pos + 1, uint64(m) % scale, n - dot)


@njit(cache=True, error_model="numpy", inline="always")
def _write_uint(buf, pos, value):
    n = 1
    v = uint64(value)
    while v >= uint64(10):
        n += 1
        v //= uint64(10)
    return _write_fixed(buf, pos, value, n)


@njit(cache=True, inline="always")
def _write_chars(buf, pos, a, b, c, d, e, n):
    """Up to five ASCII codes (n of them)."""
    codes = (a, b, c, d, e)
    for i in range(n):
        buf[pos + i] = codes[i]
    return pos + n


@njit(cache=True, inline="always")
def _scaled(x, k):
    """x * 10**k: one correctly rounded operation when |k| <= 22, steps of 1e22 beyond."""
    while k > 22:
        x *= 1e22
        k -= 22
    while k < -22:
        x /= 1e22
        k += 22
    return x * _POW10[k] if k >= 0 else x / _POW10[-k]


@njit(cache=True, inline="always")
def _digits(x):
    """(m, e): x ~= m x 10**(e - DIGITS + 1) with m a DIGITS-digit integer, for finite x > 0."""
    lo = 100_000_000_000                 # 10**(DIGITS - 1)
    hi = 1_000_000_000_000
    e = int(math.floor((math.frexp(x)[1] - 1) * _LOG10_2))      # floor(log10 x), or one less
    if _scaled(x, -e - 1) >= 1.0:
        e += 1
    m = int(np.rint(_scaled(x, DIGITS - 1 - e)))
    if m >= hi:
        e += 1
        m = int(np.rint(_scaled(x, DIGITS - 1 - e)))
    elif m < lo:
        e -= 1
        m = int(np.rint(_scaled(x, DIGITS - 1 - e)))
    if m >= hi:                          # 9.99999999999951 rounds up to 10.0000000000
        m //= 10
        e += 1
    return m, e


@njit(cache=True, error_model="numpy", inline="always")
def write_float(buf, pos, x):
    """'%.12g' % x into buf at pos; returns the new position."""
    if x != x:
        return _write_chars(buf, pos, 110, 97, 110, 0, 0, 3)          # nan
    if x < 0 or (x == 0.0 and math.copysign(1.0, x) < 0):
        buf[pos] = 45
        pos += 1
        x = -x
    if x == math.inf:
        return _write_chars(buf, pos, 105, 110, 102, 0, 0, 3)         # inf
    if x == 0.0:
        buf[pos] = 48
        return pos + 1
    m, e = _digits(x)
    u = uint64(m)
    n = DIGITS
    while n > 1 and u % uint64(10) == 0:
        u //= uint64(10)
        n -= 1
    m = u
    if 0 <= e < DIGITS:
        if n <= e + 1:
            pos = _write_digits(buf, pos, m, n, n)
            for _ in range(e + 1 - n):
                buf[pos] = 48
                pos += 1
            return pos
        return _write_digits(buf, pos, m, n, e + 1)
    if -4 <= e < 0:
        pos = _write_chars(buf, pos, 48, 46, 0, 0, 0, 2)                # "0."
        for _ in range(-e - 1):
            buf[pos] = 48
            pos += 1
        return _write_digits(buf, pos, m, n, n)
    pos = _write_digits(buf, pos, m, n, 1)
    pos = _write_chars(buf, pos, 101, 43 if e >= 0 else 45, 48, 0, 0, 3 if abs(e) < 10 else 2)
    return _write_uint(buf, pos, abs(e))


@njit(cache=True, inline="always")
def _write_value(buf, pos, x, kind):
    if kind == FLOAT:
        return write_float(buf, pos, x)
    if kind == BOOL:
        if x != 0.0:
            return _write_chars(buf, pos, 84, 114, 117, 101, 0, 4)      # True
        return _write_chars(buf, pos, 70, 97, 108, 115, 101, 5)         # False
    if x < 0:
        buf[pos] = 45
        return _write_uint(buf, pos + 1, np.int64(-x))
    return _write_uint(buf, pos, np.int64(x))


@njit(cache=True)
def _format_block(buf, pos, prefix, values, kinds, start, stop):
    width = prefix.shape[0]
    for r in range(start, stop):
        buf[pos:pos + width] = prefix
        pos += width
        for c in range(values.shape[0]):
            if c:
                buf[pos] = 44
                pos += 1
            pos = _write_value(buf, pos, values[c, r], kinds[c])
        buf[pos] = 10
        pos += 1
    return pos


def row_bytes_max(prefix_bytes: int, columns: int) -> int:
    """The longest CSV line of ``columns`` values after a prefix of ``prefix_bytes``."""
    return prefix_bytes + columns * (_MAX_FIELD + 1) + 1


def scratch_bytes(prefix_bytes: int, columns: int, rows: int) -> int:
    """The scratch format_into needs for ``rows`` lines (whole blocks of them at their longest)."""
    blocks = (rows + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK
    return blocks * _ROWS_PER_BLOCK * row_bytes_max(prefix_bytes, columns)


@njit(cache=True, parallel=True)
def format_into(prefix, values, kinds, scratch, out, start):
    """values.shape[1] CSV lines into out[start:], returning where they end: ``prefix``
    (ending in a comma, or empty), then values[:, row] formatted by kind (INT, FLOAT, BOOL),
    comma separated. Blocks of rows are formatted in parallel into ``scratch``
    (scratch_bytes long), then put one after another. ``out`` has room for
    rows x row_bytes_max after ``start``."""
    n_cols, n_rows = values.shape
    row_max = prefix.shape[0] + n_cols * (_MAX_FIELD + 1) + 1
    blocks = (n_rows + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK
    ends = np.empty(blocks, dtype=np.int64)
    for blk in prange(blocks):
        begin = blk * _ROWS_PER_BLOCK * row_max
        ends[blk] = _format_block(scratch, begin, prefix, values, kinds, blk * _ROWS_PER_BLOCK,
                                  min(n_rows, (blk + 1) * _ROWS_PER_BLOCK)) - begin
    offsets = np.empty(blocks + 1, dtype=np.int64)
    offsets[0] = start
    for blk in range(blocks):
        offsets[blk + 1] = offsets[blk] + ends[blk]
    for blk in prange(blocks):
        begin = blk * _ROWS_PER_BLOCK * row_max
        out[offsets[blk]:offsets[blk + 1]] = scratch[begin:begin + ends[blk]]
    return offsets[blocks]


def rows_csv(prefix: str, values: np.ndarray, kinds, as_bytes: bool = True):
    """CSV text of a chunk: a constant ``prefix`` of leading fields on every row, then the
    columns of ``values`` [columns, rows] formatted by ``kinds``; bytes, or with
    ``as_bytes=False`` the uint8 array itself (what a file's write() takes, without a copy)."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    values = np.ascontiguousarray(values, dtype=np.float64)
    columns, rows = values.shape
    scratch = np.empty(scratch_bytes(len(head), columns, rows), dtype=np.uint8)
    out = np.empty(rows * row_bytes_max(len(head), columns), dtype=np.uint8)   # pages past the end: never touched
    text = out[:format_into(head, values, np.ascontiguousarray(kinds, dtype=np.int64), scratch, out, 0)]
    return text.tobytes() if as_bytes else text


def format_float(x: float) -> str:
    """One float as the row kernels write it (for constant fields and tests): a row of one
    field, so a CSV sweep runs no kernel but format_into (each kernel a process calls from
    Python is loaded from numba's cache apart, ~0.05-0.2 s here)."""
    return rows_csv("", np.array([[float(x)]]), _ONE_FLOAT)[:-1].decode()
