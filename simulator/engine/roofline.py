"""Numba roofline kernels. Arrays in, arrays out; no Python objects inside.

Time of one operator instance (seconds):
    t = max(flops / (peak x eff), memory seconds) + overhead
where eff is 1 except for GEMMs, whose efficiency falls with tile and wave quantization
(see specs.stack.GemmEfficiency), and memory seconds = sum_j mem_s[i, j] x feature j:
bind.py turns each feature column's bytes into seconds at the bandwidth of the memory
level that serves it (weights may sit on chip, the KV cache off chip). Peaks and
bandwidths already carry the stack's achieved fractions. Times returned include the
operator's repeat count (layers).

Decode: a decode step at position c has features linear in c (f0 + f1 c), so the sum of
step times over an integer range of c is computed in closed form: each operator's
max(a0 + a1 c, b0 + b1 c) is split where the two lines cross.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

BOUND_COMPUTE, BOUND_MEMORY, BOUND_OVERHEAD = 0, 1, 2


@njit(cache=True)
def gemm_efficiency(m: float, n: float, tile_m: float, tile_n: float, units: float) -> float:
    """Fraction of the (already de-rated) peak a GEMM of m x n outputs reaches: useful
    outputs over padded tile outputs, times the filled fraction of the last wave."""
    if m <= 0.0 or n <= 0.0:
        return 1.0
    if tile_m <= 1.0 and tile_n <= 1.0:
        return 1.0
    tiles_m = math.ceil(m / tile_m)
    tiles_n = math.ceil(n / tile_n)
    padding = (m * n) / (tiles_m * tile_m * tiles_n * tile_n)
    tiles = tiles_m * tiles_n
    waves = math.ceil(tiles / units)
    return padding * tiles / (waves * units)


@njit(cache=True)
def _rates(i, feats, gemm_n, m_feature, compute_peak, tile_m, tile_n, units):
    """Achieved compute rate (FLOP/s) of operator i at a feature vector."""
    peak = compute_peak[i]
    if gemm_n[i] > 0:
        peak *= gemm_efficiency(feats[m_feature[i]], gemm_n[i], tile_m[i], tile_n[i], units)
    return peak


@njit(cache=True)
def evaluate_point(flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead,
                   tile_m, tile_n, units, feats):
    """Per-operator time (s, x repeat) and bound at one feature vector."""
    n_ops = flops.shape[0]
    time_s = np.empty(n_ops)
    bound = np.empty(n_ops, dtype=np.int64)
    for i in range(n_ops):
        f = 0.0
        tm = 0.0
        for j in range(feats.shape[0]):
            f += flops[i, j] * feats[j]
            tm += mem_s[i, j] * feats[j]
        tc = f / _rates(i, feats, gemm_n, m_feature, compute_peak, tile_m, tile_n, units)
        t = max(tc, tm)
        if overhead[i] > t:
            bound[i] = BOUND_OVERHEAD
        elif tc >= tm:
            bound[i] = BOUND_COMPUTE
        else:
            bound[i] = BOUND_MEMORY
        time_s[i] = (t + overhead[i]) * repeat[i]
    return time_s, bound


@njit(cache=True)
def _linear_sum(x0: float, x1: float, lo: float, hi: float) -> float:
    """Sum of x0 + x1 c over integers c in [lo, hi] (0 when hi < lo)."""
    if hi < lo:
        return 0.0
    count = hi - lo + 1.0
    return count * x0 + x1 * (lo + hi) * count / 2.0


@njit(cache=True)
def _max_linear_sum(a0, a1, b0, b1, lo, hi):
    """Sum over integers c in [lo, hi] of max(a0 + a1 c, b0 + b1 c)."""
    if hi < lo:
        return 0.0
    slope = a1 - b1
    if slope == 0.0:
        return _linear_sum(a0, a1, lo, hi) if a0 >= b0 else _linear_sum(b0, b1, lo, hi)
    cross = -(a0 - b0) / slope            # a >= b for c >= cross when slope > 0
    split = math.floor(cross)
    split = min(max(split, lo - 1.0), hi)
    if slope > 0.0:
        return _linear_sum(b0, b1, lo, split) + _linear_sum(a0, a1, split + 1.0, hi)
    return _linear_sum(a0, a1, lo, split) + _linear_sum(b0, b1, split + 1.0, hi)


@njit(cache=True)
def evaluate_range(flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead,
                   tile_m, tile_n, units, feats0, feats1, lo, hi):
    """Per-operator sums of time (s, x repeat) over integer c in [lo, hi], where the
    features at c are feats0 + feats1 c. GEMM rows (M) must not depend on c."""
    n_ops = flops.shape[0]
    time_s = np.zeros(n_ops)
    if hi < lo:
        return time_s
    count = hi - lo + 1.0
    for i in range(n_ops):
        f0 = 0.0
        f1 = 0.0
        m0 = 0.0
        m1 = 0.0
        for j in range(feats0.shape[0]):
            f0 += flops[i, j] * feats0[j]
            f1 += flops[i, j] * feats1[j]
            m0 += mem_s[i, j] * feats0[j]
            m1 += mem_s[i, j] * feats1[j]
        rate = _rates(i, feats0, gemm_n, m_feature, compute_peak, tile_m, tile_n, units)
        # overhead is added outside the max, matching evaluate_point
        t = _max_linear_sum(f0 / rate, f1 / rate, m0, m1, lo, hi)
        time_s[i] = (t + overhead[i] * count) * repeat[i]
    return time_s
