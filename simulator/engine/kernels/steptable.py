"""A decode step's total time as a piecewise-linear function of its position c, for sweeps.

roofline.range_sums sums each operator's step time over a range of positions in closed
form: per operator, the max (or min of maxes) of lines in c, split where two of its lines
cross. Between two consecutive crossings of any operator's lines every operator follows one
line, so the total over operators is linear there too:

    T(c) = t0[k] + slope[k] (c - x0[k])   for c in piece k = [x0[k], x0[k + 1] - 1]

(the last piece unbounded). ``build`` finds the pieces of one batch size's lines and takes
t0 and slope from T evaluated by range_sums itself at two positions of each piece; ``total``
then sums T over any range [lo, hi] from the pieces it overlaps (usually one), instead of
over every operator: what a sweep of many (S, N) at one batch needs.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.kernels.roofline import MAX, MIN_OF_MAX, range_sums

FAR = 2.0 ** 30            # the last piece's slope is taken over this many positions
LAST_POSITION = 2.0 ** 63  # crossings at or past it are no positions


def max_pieces(n_ops: int) -> int:
    """The most pieces ``build`` makes: one more than the crossings of four lines (six) per operator."""
    return 6 * n_ops + 1


@njit(cache=True, error_model="numpy")
def _cuts(case, lines, cuts):
    """The last position before each crossing of two lines of one operator (sorted, unique)
    into cuts; returns their count."""
    n = 0
    for i in range(case.shape[0]):
        if case[i] == MAX:
            used = 2
        elif case[i] == MIN_OF_MAX:
            used = 4
        else:
            continue
        L = lines[i]
        for p in range(used):
            for q in range(p + 1, used):
                slope = L[p, 1] - L[q, 1]
                if slope != 0.0:
                    x = np.floor(-(L[p, 0] - L[q, 0]) / slope)
                    if 0.0 <= x < LAST_POSITION:
                        cuts[n] = x
                        n += 1
    cuts[:n] = np.sort(cuts[:n])
    unique = 0
    for k in range(n):
        if unique == 0 or cuts[k] != cuts[unique - 1]:
            cuts[unique] = cuts[k]
            unique += 1
    return unique


@njit(cache=True, error_model="numpy")
def build(op, case, lines, scratch, cuts, x0, t0, slope):
    """The pieces of T for one segment's range_lines output (case, lines) into x0, t0 and
    slope (each at least max_pieces long); returns the piece count. ``scratch`` [ops] and
    ``cuts`` [max_pieces] are work space."""
    n_cuts = _cuts(case, lines, cuts)
    pieces = n_cuts + 1
    for k in range(pieces):
        start = 0.0 if k == 0 else cuts[k - 1] + 1.0
        end = cuts[k] if k < n_cuts else start + FAR
        x0[k] = start
        t0[k] = range_sums(op, case, lines, start, start, scratch)
        slope[k] = 0.0
        if end > start:
            slope[k] = (range_sums(op, case, lines, end, end, scratch) - t0[k]) / (end - start)
    return pieces


@njit(cache=True, error_model="numpy", inline="always")
def total(tables, seg, pieces, lo, hi):
    """sum over integers c in [lo, hi] (lo >= 0; 0 when hi < lo) of T from build's pieces in
    tables[seg] ([3, pieces]: x0, t0, slope). Indexes the table in place: a slice or view per
    call costs more than the sum; inlined (once per sweep scenario), so that its caller keeps
    no reference counts (roofline.py's speed note)."""
    if hi < lo:
        return 0.0
    first, last = 0, pieces - 1                 # binary search: the last piece with x0 <= lo
    while first < last:
        mid = (first + last + 1) // 2
        if tables[seg, 0, mid] <= lo:
            first = mid
        else:
            last = mid - 1
    k = first
    result = 0.0
    while lo <= hi:
        end = hi if k + 1 >= pieces else min(hi, tables[seg, 0, k + 1] - 1.0)
        count = end - lo + 1.0
        result += count * (tables[seg, 1, k] + tables[seg, 2, k] * ((lo + end) / 2.0 - tables[seg, 0, k]))
        lo = end + 1.0
        k += 1
    return result
