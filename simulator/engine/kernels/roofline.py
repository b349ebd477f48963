"""Numba roofline kernels. Arrays in, arrays out; no Python objects inside.

Time of one operator instance (seconds):
    t = combine(flops / (peak x eff), memory seconds) + overhead
where eff is 1 except for GEMMs, whose efficiency falls with tile and wave quantization
(see specs.stack.GemmEfficiency), and memory seconds (x a decode attention's occupancy
regime: occupancy_scale) = sum_j mem_s[i, j] x feature j:
bind.py turns each feature column's bytes into seconds at the bandwidth of the memory
level that serves it (weights may sit on chip, the KV cache off chip). Peaks and
bandwidths already carry the stack's achieved fractions. Times returned include the
operator's repeat count (layers).

A pass is four arrays: flops [ops, features], mem_s [ops, features], alt_mem_s [ops,
features] (the alternative, processing-in-memory unit's memory seconds) and op [ops,
len(OP_FIELDS)], the per-operator parameters in the named columns OP_* below. A new
per-operator parameter is one more name in OP_FIELDS (filled by engine/bind.py).

Decode: a decode step at position c has features linear in c (f0 + f1 c), so the sum of
step times over an integer range of c is computed in closed form: each operator's
max(a0 + a1 c, b0 + b1 c) is split where the two lines cross.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.kernels.grouped import routed_tile_scale
from simulator.graph.ops import ETOK, EXP, LPAIR, PAIR, SEQ, TOK

BOUND_COMPUTE, BOUND_MEMORY, BOUND_OVERHEAD = 0, 1, 2
BOUND_NAMES = ("compute", "memory", "overhead")      # indexed by the BOUND_* codes

# Columns of the per-operator parameter matrix ``op``.
OP_FIELDS = (
    "repeat",         # instances per pass (layers; 0: the other phase runs it alone)
    "gemm_n",         # a GEMM's output columns N (0: not a GEMM)
    "m_feature",      # the feature holding a GEMM's rows M (TOK, SEQ, or ETOK for grouped experts)
    "peak",           # FLOP/s achieved at full efficiency (datasheet peak x stack fraction)
    "overhead",       # s per instance: the kernels' fixed cost
    "tile_m",         # GEMM tile rows (1: no tile quantization)
    "tile_n",         # GEMM tile columns
    "units",          # compute units a wave of tiles fills
    "alt_peak",       # FLOP/s of the alternative (PIM) unit; 0: none
    "alt_overhead",   # s per instance on the alternative unit
    "overlap",        # p-norm exponent combining compute and memory time (0: a hard max)
    "half_length",    # tokens: attention reaches L / (L + L0) of its rate (0: off; decode passes 0)
    "gemv_max_m",     # GEMMs of at most this many rows run as a GEMV (0: never)
    "gemv_scale",     # a GEMV's memory time x this
    "blocks_per_seq",  # decode attention: thread blocks per sequence (its KV heads); 0: no occupancy regimes
    "split_blocks",   # fewer blocks than this: the kernel splits the sequence to fill the units
    "split_scale",    # memory time x this when it splits
    "over_scale",     # memory time x this when blocks outnumber the units (several resident per unit)
    "local",          # 1: attention of the local layers, its pairs are LPAIR (ops.py); 0 otherwise
    "route_p",        # a routed expert GEMM: k / E, each expert's rows ~ Binomial(tokens, k / E); 0: not routed
    "group_tile_min",  # its kernel's M tile: the power of two >= the mean rows per group, within
    "group_tile_max",  # [min, max] rows (0: no routing-imbalance term; grouped.routed_tile_scale)
)
(OP_REPEAT, OP_GEMM_N, OP_M_FEATURE, OP_PEAK, OP_OVERHEAD, OP_TILE_M, OP_TILE_N, OP_UNITS, OP_ALT_PEAK,
 OP_ALT_OVERHEAD, OP_OVERLAP, OP_HALF_LENGTH, OP_GEMV_MAX_M, OP_GEMV_SCALE, OP_BLOCKS_PER_SEQ, OP_SPLIT_BLOCKS,
 OP_SPLIT_SCALE, OP_OVER_SCALE, OP_LOCAL, OP_ROUTE_P, OP_GROUP_TILE_MIN, OP_GROUP_TILE_MAX) = range(len(OP_FIELDS))


def op_params(n_ops: int) -> np.ndarray:
    """A neutral parameter matrix [n_ops, len(OP_FIELDS)]: one instance, no GEMM tiles, one
    unit, no overhead, no alternative unit, GEMV scale 1 (callers set peak and the rest)."""
    op = np.zeros((n_ops, len(OP_FIELDS)))
    op[:, [OP_REPEAT, OP_TILE_M, OP_TILE_N, OP_UNITS, OP_GEMV_SCALE, OP_SPLIT_SCALE, OP_OVER_SCALE]] = 1.0
    op[:, OP_M_FEATURE] = TOK
    return op


@njit(cache=True)
def gemm_efficiency(m: float, n: float, tile_m: float, tile_n: float, units: float, groups: float = 1.0) -> float:
    """Fraction of the (already de-rated) peak a GEMM of m x n outputs reaches: useful
    outputs over padded tile outputs, times the filled fraction of the last wave. A grouped
    GEMM (``groups`` experts, each m x n) fills the waves with the tiles of every group."""
    if m <= 0.0 or n <= 0.0:
        return 1.0
    if tile_m <= 1.0 and tile_n <= 1.0:
        return 1.0
    tiles_m = np.ceil(m / tile_m)          # float64: a count of tiles past int64 must not wrap
    tiles_n = np.ceil(n / tile_n)
    padding = (m * n) / (tiles_m * tile_m * tiles_n * tile_n)
    tiles = tiles_m * tiles_n * max(groups, 1.0)
    waves = np.ceil(tiles / units)
    return padding * tiles / (waves * units)


@njit(cache=True)
def attention_efficiency(length: float, half_length: float) -> float:
    """L / (L + L0): the fraction of its rate attention reaches at an attended length L."""
    return length / (length + half_length) if half_length > 0.0 else 1.0


@njit(cache=True)
def occupancy_scale(blocks: float, split_blocks: float, units: float, split_scale: float, over_scale: float) -> float:
    """Memory-time multiplier of a kernel launching ``blocks`` thread blocks on ``units``
    compute units: below split_blocks it splits each block's sequence to fill the units
    (split_scale: the partial results' extra traffic and combine), above ``units`` blocks
    share units (over_scale); in between one block per unit streams at the base rate (1)."""
    if blocks < split_blocks:
        return split_scale
    if blocks > units:
        return over_scale
    return 1.0


@njit(cache=True)
def _memory_scale(p, feats) -> float:
    """Decode attention's occupancy regime at B = feats[SEQ] sequences (occupancy_scale of
    B x blocks_per_seq blocks); 1 for every other operator."""
    if p[OP_BLOCKS_PER_SEQ] <= 0.0:
        return 1.0
    return occupancy_scale(feats[SEQ] * p[OP_BLOCKS_PER_SEQ], p[OP_SPLIT_BLOCKS], p[OP_UNITS], p[OP_SPLIT_SCALE],
                           p[OP_OVER_SCALE])


@njit(cache=True)
def _routed_scale(p, feats) -> float:
    """routed_tile_scale of a routed expert GEMM at its mean rows per group m = feats[ETOK],
    with binomial routing's sd = sqrt(m (1 - k / E)) (a trained router's load can only be more
    uneven); 1 for every other operator."""
    if p[OP_ROUTE_P] <= 0.0 or int(p[OP_M_FEATURE]) != ETOK or _is_gemv(p, feats):
        return 1.0
    mean = feats[ETOK]
    return routed_tile_scale(mean, np.sqrt(mean * max(1.0 - p[OP_ROUTE_P], 0.0)), p[OP_GROUP_TILE_MIN],
                             p[OP_GROUP_TILE_MAX])


@njit(cache=True)
def _is_gemv(p, feats) -> bool:
    """An operator (parameter row p) is a GEMM of few enough rows to run as a GEMV kernel."""
    return p[OP_GEMM_N] > 0 and feats[int(p[OP_M_FEATURE])] <= p[OP_GEMV_MAX_M]


@njit(cache=True)
def _rate(p, peak, feats, quantize):
    """Achieved compute rate (FLOP/s) at a feature vector. A GEMM (``quantize``) loses to tile
    and wave quantization (not when it runs as a GEMV); an attention operator with L0 > 0
    reaches L / (L + L0) of its rate at L = pairs / tokens (a local layer's pairs: LPAIR)."""
    m_feature = int(p[OP_M_FEATURE])
    if quantize and p[OP_GEMM_N] > 0 and not _is_gemv(p, feats):
        groups = feats[EXP] if m_feature == ETOK else 1.0     # EXP groups of ETOK rows: a grouped GEMM
        peak *= gemm_efficiency(feats[m_feature], p[OP_GEMM_N], p[OP_TILE_M], p[OP_TILE_N], p[OP_UNITS], groups)
    if quantize and p[OP_HALF_LENGTH] > 0.0 and feats[TOK] > 0.0:
        pairs = feats[LPAIR] if p[OP_LOCAL] > 0.0 else feats[PAIR]
        peak *= attention_efficiency(pairs / feats[TOK], p[OP_HALF_LENGTH])
    return peak


@njit(cache=True)
def _terms(flops_row, mem_row, p, peak, feats, host):
    """(compute s, memory s) of one instance at a feature vector, on the host unit (tiles,
    attention length, GEMV scale apply) or the alternative unit (none of them do)."""
    f = 0.0
    tm = 0.0
    for j in range(feats.shape[0]):
        f += flops_row[j] * feats[j]
        tm += mem_row[j] * feats[j]
    if host:
        routed, memory = _host_scales(p, feats)
        return routed * f / _rate(p, peak, feats, host), memory * tm
    return f / _rate(p, peak, feats, host), tm


@njit(cache=True)
def _host_scales(p, feats):
    """(compute-time, memory-time) factors on the host unit beyond the rate: a routed grouped
    GEMM's uneven groups (both), decode attention's occupancy regime and a GEMV's bandwidth
    (memory)."""
    routed = _routed_scale(p, feats)
    return routed, routed * _memory_scale(p, feats) * (p[OP_GEMV_SCALE] if _is_gemv(p, feats) else 1.0)


@njit(cache=True)
def combine(compute_s: float, memory_s: float, p: float) -> float:
    """max(compute, memory) when p <= 0, else the p-norm (compute^p + memory^p)^(1/p)."""
    if p <= 0.0 or compute_s == 0.0 or memory_s == 0.0:
        return max(compute_s, memory_s)
    big = max(compute_s, memory_s)
    return big * ((compute_s / big) ** p + (memory_s / big) ** p) ** (1.0 / p)


@njit(cache=True)
def _instance(i, flops, mem_s, alt_mem_s, op, feats):
    """(seconds, bound, unit) of one instance of operator i at a feature vector. An operator
    with an alternative unit (alt_peak > 0: compute in memory) runs where it is faster; unit
    is 1 when that is the alternative. GEMMs of at most gemv_max_m rows run as a GEMV."""
    p = op[i]
    tc, tm = _terms(flops[i], mem_s[i], p, p[OP_PEAK], feats, True)
    o = p[OP_OVERHEAD]
    t = combine(tc, tm, p[OP_OVERLAP])
    unit = 0
    if p[OP_ALT_PEAK] > 0.0:
        ac, am = _terms(flops[i], alt_mem_s[i], p, p[OP_ALT_PEAK], feats, False)
        if max(ac, am) + p[OP_ALT_OVERHEAD] < t + o:
            tc, tm, o, t = ac, am, p[OP_ALT_OVERHEAD], max(ac, am)
            unit = 1
    if o > max(tc, tm):
        bound = BOUND_OVERHEAD
    elif tc >= tm:
        bound = BOUND_COMPUTE
    else:
        bound = BOUND_MEMORY
    return t + o, bound, unit


@njit(cache=True)
def evaluate_point(flops, mem_s, alt_mem_s, op, feats):
    """Per-operator time (s, x repeat), bound and unit of a pass at one feature vector."""
    n_ops = flops.shape[0]
    time_s = np.empty(n_ops)
    bound = np.empty(n_ops, dtype=np.int64)
    unit = np.empty(n_ops, dtype=np.int64)
    for i in range(n_ops):
        t, bound[i], unit[i] = _instance(i, flops, mem_s, alt_mem_s, op, feats)
        time_s[i] = t * op[i, OP_REPEAT]
    return time_s, bound, unit


@njit(cache=True)
def evaluate_each(flops, mem_s, alt_mem_s, op, feats):
    """Per-operator time (s, x repeat) with operator i at its own feature vector feats[i]
    (calibration: one measured kernel call per row)."""
    n_ops = flops.shape[0]
    time_s = np.empty(n_ops)
    for i in range(n_ops):
        time_s[i] = _instance(i, flops, mem_s, alt_mem_s, op, feats[i])[0] * op[i, OP_REPEAT]
    return time_s


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
    split = np.floor(cross)
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
                x = np.floor(-(lines[p, 0] - lines[q, 0]) / slope)
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
def _lines(flops_row, mem_row, p, peak, feats0, feats1, host):
    """(compute intercept, slope, memory intercept, slope) in c of one instance whose
    features are feats0 + feats1 c; the rate is taken at feats0 (it must not depend on c)."""
    f0 = 0.0
    f1 = 0.0
    m0 = 0.0
    m1 = 0.0
    for j in range(feats0.shape[0]):
        f0 += flops_row[j] * feats0[j]
        f1 += flops_row[j] * feats1[j]
        m0 += mem_row[j] * feats0[j]
        m1 += mem_row[j] * feats1[j]
    rate = _rate(p, peak, feats0, host)
    compute, scale = _host_scales(p, feats0) if host else (1.0, 1.0)
    return compute * f0 / rate, compute * f1 / rate, m0 * scale, m1 * scale


CONSTANT, MIN_OF_MAX, MAX = 0, 1, 2    # how an operator's step time depends on the position c


@njit(cache=True)
def range_lines(flops, mem_s, alt_mem_s, op, feats0, feats1, case, lines):
    """For decode steps whose features are feats0 + feats1 c, each operator's case and lines
    (intercept, slope in c) into case[i] and lines[i] ([4, 2]):
      CONSTANT    its time does not change with c: exactly evaluate_point's step time, in
                  lines[i, 0, 0]
      MIN_OF_MAX  host or PIM unit, whichever is faster: min(max(l0, l1), max(l2, l3)),
                  overheads folded into the lines
      MAX         max(compute line l0, memory line l1) + overhead (a hard max: its overlap
                  exponent is ignored)
    Compute rates and memory scales are taken at feats0, so they must not depend on c (a
    GEMM's M and the batch are fixed; decode passes have half_length 0). Lines depend on the batch only, so a sweep computes
    them once per batch size."""
    for i in range(flops.shape[0]):
        p = op[i]
        c0, c1, m0, m1 = _lines(flops[i], mem_s[i], p, p[OP_PEAK], feats0, feats1, True)
        has_alt = p[OP_ALT_PEAK] > 0.0
        a0 = a1 = b0 = b1 = 0.0
        if has_alt:
            a0, a1, b0, b1 = _lines(flops[i], alt_mem_s[i], p, p[OP_ALT_PEAK], feats0, feats1, False)
        L = lines[i]
        o, ao = p[OP_OVERHEAD], p[OP_ALT_OVERHEAD]
        if c1 == 0.0 and m1 == 0.0 and a1 == 0.0 and b1 == 0.0:
            step = combine(c0, m0, p[OP_OVERLAP]) + o
            if has_alt:
                step = min(step, max(a0, b0) + ao)
            case[i] = CONSTANT
            L[0, 0] = step
        elif has_alt:
            case[i] = MIN_OF_MAX
            L[0, 0], L[0, 1], L[1, 0], L[1, 1] = c0 + o, c1, m0 + o, m1
            L[2, 0], L[2, 1], L[3, 0], L[3, 1] = a0 + ao, a1, b0 + ao, b1
        else:
            case[i] = MAX
            L[0, 0], L[0, 1], L[1, 0], L[1, 1] = c0, c1, m0, m1


@njit(cache=True, inline="always")
def line_step_s(case, lines, overhead, c):
    """One operator's step time (before repeat) at a position c (any real) from its
    range_lines case and lines ([4, 2]); range_sums sums the same over integer c."""
    if case == CONSTANT:
        return lines[0, 0]
    if case == MIN_OF_MAX:
        return _min_of_max(lines, c)
    return max(lines[0, 0] + lines[0, 1] * c, lines[1, 0] + lines[1, 1] * c) + overhead


@njit(cache=True)
def range_sums(op, case, lines, lo, hi, time_s):
    """time_s[i] = operator i's time (x repeat) summed over integer c in [lo, hi], from
    range_lines' cases and lines, in closed form; returns the total."""
    total = 0.0
    count = hi - lo + 1.0
    for i in range(op.shape[0]):
        L = lines[i]
        if hi < lo:
            t = 0.0
        elif case[i] == CONSTANT:
            t = L[0, 0] * count
        elif case[i] == MIN_OF_MAX:
            t = _min_of_max_sum(L, lo, hi)
        else:
            t = _max_linear_sum(L[0, 0], L[0, 1], L[1, 0], L[1, 1], lo, hi) + op[i, OP_OVERHEAD] * count
        time_s[i] = t * op[i, OP_REPEAT]
        total += time_s[i]
    return total


@njit(cache=True)
def evaluate_range(flops, mem_s, alt_mem_s, op, feats0, feats1, lo, hi):
    """Per-operator sums of time (s, x repeat) over integer c in [lo, hi], where the
    features at c are feats0 + feats1 c (range_lines, then range_sums)."""
    n_ops = flops.shape[0]
    case = np.empty(n_ops, dtype=np.int64)
    lines = np.zeros((n_ops, 4, 2))
    range_lines(flops, mem_s, alt_mem_s, op, feats0, feats1, case, lines)
    time_s = np.zeros(n_ops)
    range_sums(op, case, lines, lo, hi, time_s)
    return time_s
