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
def gemm_efficiency(m: float, n: float, tile_m: float, tile_n: float, units: float, groups: float = 1.0) -> float:
    """Fraction of the (already de-rated) peak a GEMM of m x n outputs reaches: useful
    outputs over padded tile outputs, times the filled fraction of the last wave. A grouped
    GEMM (``groups`` experts, each m x n) fills the waves with the tiles of every group."""
    if m <= 0.0 or n <= 0.0:
        return 1.0
    if tile_m <= 1.0 and tile_n <= 1.0:
        return 1.0
    tiles_m = math.ceil(m / tile_m)
    tiles_n = math.ceil(n / tile_n)
    padding = (m * n) / (tiles_m * tile_m * tiles_n * tile_n)
    tiles = tiles_m * tiles_n * max(groups, 1.0)
    waves = math.ceil(tiles / units)
    return padding * tiles / (waves * units)


@njit(cache=True)
def _is_gemv(i, feats, gemm_n, m_feature, gemv_max_m) -> bool:
    """Operator i is a GEMM of few enough rows to run as a GEMV kernel."""
    return gemm_n[i] > 0 and feats[m_feature[i]] <= gemv_max_m[i]


@njit(cache=True)
def _rates(i, feats, gemm_n, m_feature, compute_peak, tile_m, tile_n, units, half_length, gemv_max_m):
    """Achieved compute rate (FLOP/s) of operator i at a feature vector. A GEMM loses to
    tile and wave quantization (not when it runs as a GEMV); an attention operator with
    half_length[i] = L0 > 0 reaches L / (L + L0) of its rate at an attended length of
    L = pairs / tokens."""
    peak = compute_peak[i]
    if gemm_n[i] > 0 and not _is_gemv(i, feats, gemm_n, m_feature, gemv_max_m):
        groups = feats[5] if m_feature[i] == 6 else 1.0     # EXP groups of ETOK rows: a grouped GEMM
        peak *= gemm_efficiency(feats[m_feature[i]], gemm_n[i], tile_m[i], tile_n[i], units, groups)
    if half_length[i] > 0.0 and feats[2] > 0.0:
        length = feats[3] / feats[2]
        peak *= length / (length + half_length[i])
    return peak


@njit(cache=True)
def _op_terms(i, feats, flops, mem_s, gemm_n, m_feature, compute_peak, tile_m, tile_n, units, half_length,
              gemv_max_m, gemv_scale):
    """(compute seconds, memory seconds) of one instance of operator i at a feature vector."""
    f = 0.0
    tm = 0.0
    for j in range(feats.shape[0]):
        f += flops[i, j] * feats[j]
        tm += mem_s[i, j] * feats[j]
    if _is_gemv(i, feats, gemm_n, m_feature, gemv_max_m):
        tm *= gemv_scale[i]
    return f / _rates(i, feats, gemm_n, m_feature, compute_peak, tile_m, tile_n, units, half_length, gemv_max_m), tm


@njit(cache=True)
def evaluate_point(flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead,
                   tile_m, tile_n, units, alt_peak, alt_mem_s, alt_overhead, overlap, half_length,
                   gemv_max_m, gemv_scale, feats):
    """Per-operator time (s, x repeat), bound and unit at one feature vector.

    overlap[i] > 0 combines compute and memory time as a p-norm (p = overlap[i]) instead of
    a hard max: a GEMM near the ridge point overlaps the two imperfectly. An operator with an
    alternative unit (alt_peak > 0: compute in memory, PIM) runs where it is faster;
    unit[i] is 1 when that is the alternative. GEMMs of at most gemv_max_m[i] rows run as
    a GEMV: no tile quantization, memory time x gemv_scale[i]."""
    n_ops = flops.shape[0]
    time_s = np.empty(n_ops)
    bound = np.empty(n_ops, dtype=np.int64)
    unit = np.zeros(n_ops, dtype=np.int64)
    ones = np.ones(n_ops)
    zeros = np.zeros(n_ops)
    for i in range(n_ops):
        tc, tm = _op_terms(i, feats, flops, mem_s, gemm_n, m_feature, compute_peak, tile_m, tile_n, units,
                           half_length, gemv_max_m, gemv_scale)
        o = overhead[i]
        if alt_peak[i] > 0.0:
            ac, am = _op_terms(i, feats, flops, alt_mem_s, gemm_n, m_feature, alt_peak, ones, ones, units,
                               zeros, zeros, ones)
            if max(ac, am) + alt_overhead[i] < combine(tc, tm, overlap[i]) + o:
                tc, tm, o = ac, am, alt_overhead[i]
                unit[i] = 1
        t = combine(tc, tm, overlap[i]) if unit[i] == 0 else max(tc, tm)
        if o > max(tc, tm):
            bound[i] = BOUND_OVERHEAD
        elif tc >= tm:
            bound[i] = BOUND_COMPUTE
        else:
            bound[i] = BOUND_MEMORY
        time_s[i] = (t + o) * repeat[i]
    return time_s, bound, unit


@njit(cache=True)
def combine(compute_s: float, memory_s: float, p: float) -> float:
    """max(compute, memory) when p <= 0, else the p-norm (compute^p + memory^p)^(1/p)."""
    if p <= 0.0 or compute_s == 0.0 or memory_s == 0.0:
        return max(compute_s, memory_s)
    big = max(compute_s, memory_s)
    return big * ((compute_s / big) ** p + (memory_s / big) ** p) ** (1.0 / p)


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
def _min_of_max(lines, c):
    """min(max(line0, line1), max(line2, line3)) at c; lines is [4, 2] (intercept, slope)."""
    return min(max(lines[0, 0] + lines[0, 1] * c, lines[1, 0] + lines[1, 1] * c),
               max(lines[2, 0] + lines[2, 1] * c, lines[3, 0] + lines[3, 1] * c))


@njit(cache=True)
def _min_of_max_sum(lines, lo, hi):
    """Sum over integers c in [lo, hi] of _min_of_max. Between two crossings of any pair of
    the four lines their order is fixed, so the function is linear there: split the range
    at every crossing and sum each piece exactly from its end values."""
    if hi < lo:
        return 0.0
    cuts = np.empty(7)
    n = 0
    for p in range(4):
        for q in range(p + 1, 4):
            slope = lines[p, 1] - lines[q, 1]
            if slope != 0.0:
                x = math.floor(-(lines[p, 0] - lines[q, 0]) / slope)
                if lo <= x < hi:
                    cuts[n] = x
                    n += 1
    cuts[n] = hi
    n += 1
    ends = np.sort(cuts[:n])
    total = 0.0
    start = lo
    for k in range(n):
        end = ends[k]
        if end >= start:
            count = end - start + 1.0
            total += count * (_min_of_max(lines, start) + _min_of_max(lines, end)) / 2.0
            start = end + 1.0
    return total


@njit(cache=True)
def _op_lines(i, feats0, feats1, flops, mem_s, gemm_n, m_feature, peak, tile_m, tile_n, units, half_length,
              gemv_max_m, gemv_scale):
    """(compute line, memory line) of operator i as intercept and slope in c."""
    f0 = 0.0
    f1 = 0.0
    m0 = 0.0
    m1 = 0.0
    for j in range(feats0.shape[0]):
        f0 += flops[i, j] * feats0[j]
        f1 += flops[i, j] * feats1[j]
        m0 += mem_s[i, j] * feats0[j]
        m1 += mem_s[i, j] * feats1[j]
    rate = _rates(i, feats0, gemm_n, m_feature, peak, tile_m, tile_n, units, half_length, gemv_max_m)
    scale = gemv_scale[i] if _is_gemv(i, feats0, gemm_n, m_feature, gemv_max_m) else 1.0
    return f0 / rate, f1 / rate, m0 * scale, m1 * scale


CONSTANT, MIN_OF_MAX, MAX = 0, 1, 2    # how an operator's step time depends on the position c


@njit(cache=True)
def range_lines(flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead,
                tile_m, tile_n, units, alt_peak, alt_mem_s, alt_overhead, overlap, half_length,
                gemv_max_m, gemv_scale, feats0, feats1, case, lines):
    """For decode steps whose features are feats0 + feats1 c, each operator's case and lines
    (intercept, slope in c) into case[i] and lines[i] ([4, 2]):
      CONSTANT    its time does not change with c: exactly evaluate_point's step time, in
                  lines[i, 0, 0]
      MIN_OF_MAX  host or PIM unit, whichever is faster: min(max(l0, l1), max(l2, l3)),
                  overheads folded into the lines
      MAX         max(compute line l0, memory line l1) + overhead (a hard max: its overlap
                  exponent is ignored)
    Compute rates are taken at feats0, so they must not depend on c (a GEMM's M is fixed;
    pass half_length zeros for decode). Lines depend on the batch only, so a sweep computes
    them once per batch size."""
    n_ops = flops.shape[0]
    ones = np.ones(n_ops)
    zeros = np.zeros(n_ops)
    for i in range(n_ops):
        c0, c1, m0, m1 = _op_lines(i, feats0, feats1, flops, mem_s, gemm_n, m_feature, compute_peak,
                                   tile_m, tile_n, units, half_length, gemv_max_m, gemv_scale)
        has_alt = alt_peak[i] > 0.0
        a0 = a1 = b0 = b1 = 0.0
        if has_alt:
            a0, a1, b0, b1 = _op_lines(i, feats0, feats1, flops, alt_mem_s, gemm_n, m_feature, alt_peak,
                                       ones, ones, units, zeros, zeros, ones)
        L = lines[i]
        if c1 == 0.0 and m1 == 0.0 and a1 == 0.0 and b1 == 0.0:
            step = combine(c0, m0, overlap[i]) + overhead[i]
            if has_alt:
                step = min(step, max(a0, b0) + alt_overhead[i])
            case[i] = CONSTANT
            L[0, 0] = step
        elif has_alt:
            o, ao = overhead[i], alt_overhead[i]
            case[i] = MIN_OF_MAX
            L[0, 0], L[0, 1], L[1, 0], L[1, 1] = c0 + o, c1, m0 + o, m1
            L[2, 0], L[2, 1], L[3, 0], L[3, 1] = a0 + ao, a1, b0 + ao, b1
        else:
            case[i] = MAX
            L[0, 0], L[0, 1], L[1, 0], L[1, 1] = c0, c1, m0, m1


@njit(cache=True)
def range_sums(repeat, overhead, case, lines, lo, hi, time_s):
    """time_s[i] = operator i's time (x repeat) summed over integer c in [lo, hi], from
    range_lines' cases and lines, in closed form; returns the total."""
    total = 0.0
    count = hi - lo + 1.0
    for i in range(repeat.shape[0]):
        L = lines[i]
        if hi < lo:
            t = 0.0
        elif case[i] == CONSTANT:
            t = L[0, 0] * count
        elif case[i] == MIN_OF_MAX:
            t = _min_of_max_sum(L, lo, hi)
        else:
            t = _max_linear_sum(L[0, 0], L[0, 1], L[1, 0], L[1, 1], lo, hi) + overhead[i] * count
        time_s[i] = t * repeat[i]
        total += time_s[i]
    return total


@njit(cache=True)
def evaluate_range(flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead,
                   tile_m, tile_n, units, alt_peak, alt_mem_s, alt_overhead, overlap, half_length,
                   gemv_max_m, gemv_scale, feats0, feats1, lo, hi):
    """Per-operator sums of time (s, x repeat) over integer c in [lo, hi], where the
    features at c are feats0 + feats1 c (range_lines, then range_sums)."""
    n_ops = flops.shape[0]
    case = np.empty(n_ops, dtype=np.int64)
    lines = np.zeros((n_ops, 4, 2))
    range_lines(flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead, tile_m, tile_n, units,
                alt_peak, alt_mem_s, alt_overhead, overlap, half_length, gemv_max_m, gemv_scale, feats0, feats1,
                case, lines)
    time_s = np.zeros(n_ops)
    range_sums(repeat, overhead, case, lines, lo, hi, time_s)
    return time_s
