"""Decode steps launched eagerly (numba): each takes at least the host's launch time."""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.kernels.roofline import range_sums


@njit(cache=True, error_model="numpy")
def eager_range_s(op, case, lines, lo, hi, host, scratch):
    """sum over integer c in [lo, hi] of max(T(c), H): an eagerly launched step takes at least
    the host's launch time H, and the device's step time T (range_sums at one c) does not fall
    with c, so the steps below c* (the first with T >= H, found by bisection) take H each and
    the rest their T. scratch gets the per-operator device times over [lo, hi] (range_sums')."""
    if range_sums(op, case, lines, hi, hi, scratch) < host:
        first = hi + 1.0                                    # every step host-bound
    elif range_sums(op, case, lines, lo, lo, scratch) >= host:
        first = lo
    else:                                                   # T(a) < H <= T(b)
        a, b = lo, hi
        while b - a > 1.0:
            mid = np.floor((a + b) / 2.0)
            if range_sums(op, case, lines, mid, mid, scratch) >= host:
                b = mid
            else:
                a = mid
        first = b
    total = host * (first - lo)
    if first <= hi:
        total += range_sums(op, case, lines, first, hi, scratch)
    range_sums(op, case, lines, lo, hi, scratch)
    return total
