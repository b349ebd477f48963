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

Speed (the rule every kernel module here follows): numba counts references to arrays with
atomic increments, and keeps a function's counts when it cannot prove them paired: when the
function has a branch that raises (a float division's ZeroDivisionError: hence
error_model="numpy", which gives numpy's inf and nan instead, as the plain-Python kernels on
numpy floats do), or passes an array on to another call and then branches, or takes a view
or a tuple item per iteration. Such counts once cost 2/3 of a pass's and of a sweep
scenario's time. So a function called per operator or per scenario reads its arrays first
and computes on scalars after (_factors, _instance, _lines), and hot loops index arrays in
place (op[i, OP_PEAK], not a row view op[i]).
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


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def attention_efficiency(length: float, half_length: float) -> float:
    """L / (L + L0): the fraction of its rate attention reaches at an attended length L."""
    return length / (length + half_length) if half_length > 0.0 else 1.0


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy", inline="always")
def _factors(op, i, feats):
    """(host rate, alternative rate, host compute-time factor, host memory-time factor) of
    operator i at a feature vector. On the host unit a GEMM loses to tile and wave
    quantization (not when it runs as a GEMV: at most gemv_max_m rows, its memory time x
    gemv_scale), an attention operator with L0 > 0 reaches L / (L + L0) of its rate at L =
    pairs / tokens (a local layer's pairs: LPAIR), a routed grouped GEMM's uneven groups
    (routed_tile_scale at its mean rows per group m = ETOK, binomial routing's sd = sqrt(m
    (1 - k / E)): a trained router's load can only be more uneven) scale both times, and
    decode attention's occupancy regime at B = SEQ sequences (occupancy_scale of B x
    blocks_per_seq blocks) its memory time; the alternative unit runs at alt_peak. Every
    array read comes first (the module's speed note)."""
    m_feature = int(op[i, OP_M_FEATURE])
    m, tokens, mean = feats[m_feature], feats[TOK], feats[ETOK]
    groups = feats[EXP] if m_feature == ETOK else 1.0     # EXP groups of ETOK rows: a grouped GEMM
    pairs = feats[LPAIR] if op[i, OP_LOCAL] > 0.0 else feats[PAIR]
    blocks = feats[SEQ] * op[i, OP_BLOCKS_PER_SEQ]
    peak, gemm_n, half_length, route_p = op[i, OP_PEAK], op[i, OP_GEMM_N], op[i, OP_HALF_LENGTH], op[i, OP_ROUTE_P]
    tile_m, tile_n, units, gemv_max_m = op[i, OP_TILE_M], op[i, OP_TILE_N], op[i, OP_UNITS], op[i, OP_GEMV_MAX_M]
    blocks_per_seq, split_blocks = op[i, OP_BLOCKS_PER_SEQ], op[i, OP_SPLIT_BLOCKS]
    split_scale, over_scale, gemv_scale = op[i, OP_SPLIT_SCALE], op[i, OP_OVER_SCALE], op[i, OP_GEMV_SCALE]
    tile_min, tile_max, alt_peak = op[i, OP_GROUP_TILE_MIN], op[i, OP_GROUP_TILE_MAX], op[i, OP_ALT_PEAK]
    gemv = gemm_n > 0 and m <= gemv_max_m
    if gemm_n > 0 and not gemv:
        peak *= gemm_efficiency(m, gemm_n, tile_m, tile_n, units, groups)
    if half_length > 0.0 and tokens > 0.0:
        peak *= attention_efficiency(pairs / tokens, half_length)
    routed = 1.0
    if route_p > 0.0 and m_feature == ETOK and not gemv:
        routed = routed_tile_scale(mean, np.sqrt(mean * max(1.0 - route_p, 0.0)), tile_min, tile_max)
    occupancy = 1.0
    if blocks_per_seq > 0.0:
        occupancy = occupancy_scale(blocks, split_blocks, units, split_scale, over_scale)
    return peak, alt_peak, routed, routed * occupancy * (gemv_scale if gemv else 1.0)


@njit(cache=True, error_model="numpy")
def combine(compute_s: float, memory_s: float, p: float) -> float:
    """max(compute, memory) when p <= 0, else the p-norm (compute^p + memory^p)^(1/p)."""
    if p <= 0.0 or compute_s == 0.0 or memory_s == 0.0:
        return max(compute_s, memory_s)
    big, small = max(compute_s, memory_s), min(compute_s, memory_s)
    return big * (1.0 + (small / big) ** p) ** (1.0 / p)        # (big / big)^p is 1 exactly


@njit(cache=True, error_model="numpy", inline="always")
def _dots(flops, mem_s, alt_mem_s, i, feats):
    """(flops @ f, memory seconds @ f, alternative memory seconds @ f) of operator i at a
    feature vector, each summed in feature order; scalars (the module's speed note)."""
    f = 0.0
    m = 0.0
    a = 0.0
    for j in range(feats.shape[0]):
        f += flops[i, j] * feats[j]
        m += mem_s[i, j] * feats[j]
        a += alt_mem_s[i, j] * feats[j]
    return f, m, a


@njit(cache=True, error_model="numpy", inline="always")
def _instance(i, flops, mem_s, alt_mem_s, op, feats):
    """(seconds, bound, unit) of one instance of operator i at a feature vector: compute
    seconds flops @ f / rate, memory seconds mem_s @ f, each x its _factors. An operator
    with an alternative unit (alt_peak > 0: compute in memory) runs where it is faster; unit
    is 1 when that is the alternative (alt_mem_s @ f its memory seconds). Array reads first
    (the module's speed note)."""
    f, tm, am = _dots(flops, mem_s, alt_mem_s, i, feats)
    rate, alt_rate, compute, memory = _factors(op, i, feats)
    o, alt_o, overlap = op[i, OP_OVERHEAD], op[i, OP_ALT_OVERHEAD], op[i, OP_OVERLAP]
    tc, tm = compute * f / rate, memory * tm
    t = combine(tc, tm, overlap)
    unit = 0
    if alt_rate > 0.0:
        ac = f / alt_rate
        if max(ac, am) + alt_o < t + o:
            tc, tm, o, t = ac, am, alt_o, max(ac, am)
            unit = 1
    if o > max(tc, tm):
        bound = BOUND_OVERHEAD
    elif tc >= tm:
        bound = BOUND_COMPUTE
    else:
        bound = BOUND_MEMORY
    return t + o, bound, unit


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def pass_time_s(flops, mem_s, alt_mem_s, op, feats, time_s):
    """evaluate_point's per-operator times into time_s, allocating nothing (three arrays a
    pass, the allocator's atomic counters included, cost more than a small pass); returns
    their sum in operator order (numba's time_s.sum())."""
    total = 0.0
    for i in range(flops.shape[0]):
        time_s[i] = _instance(i, flops, mem_s, alt_mem_s, op, feats)[0] * op[i, OP_REPEAT]
        total += time_s[i]
    return total


@njit(cache=True, error_model="numpy")
def evaluate_each(flops, mem_s, alt_mem_s, op, feats):
    """Per-operator time (s, x repeat) with operator i at its own feature vector feats[i]
    (calibration: one measured kernel call per row)."""
    n_ops = flops.shape[0]
    time_s = np.empty(n_ops)
    for i in range(n_ops):
        time_s[i] = _instance(i, flops, mem_s, alt_mem_s, op, feats[i])[0] * op[i, OP_REPEAT]
    return time_s


@njit(cache=True, error_model="numpy")
def _linear_sum(x0: float, x1: float, lo: float, hi: float) -> float:
    """Sum of x0 + x1 c over integers c in [lo, hi] (0 when hi < lo)."""
    if hi < lo:
        return 0.0
    count = hi - lo + 1.0
    return count * x0 + x1 * (lo + hi) * count / 2.0


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _min_of_max(lines, c):
    """min(max(line0, line1), max(line2, line3)) at c; lines is [4, 2] (intercept, slope)."""
    return min(max(lines[0, 0] + lines[0, 1] * c, lines[1, 0] + lines[1, 1] * c),
               max(lines[2, 0] + lines[2, 1] * c, lines[3, 0] + lines[3, 1] * c))


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy", inline="always")
def _lines(flops, mem_s, alt_mem_s, op, i, feats0, feats1):
    """(compute intercept, slope, memory intercept, slope) in c of one instance of operator i
    whose features are feats0 + feats1 c on the host unit, then the same four on the
    alternative unit; the rates and factors are taken at feats0 (they must not depend on c).
    Array reads first (the module's speed note)."""
    f0, m0, a0 = _dots(flops, mem_s, alt_mem_s, i, feats0)
    f1, m1, a1 = _dots(flops, mem_s, alt_mem_s, i, feats1)
    rate, alt_rate, compute, scale = _factors(op, i, feats0)
    host = (compute * f0 / rate, compute * f1 / rate, m0 * scale, m1 * scale)
    if alt_rate > 0.0:
        return host, (f0 / alt_rate, f1 / alt_rate, a0, a1)
    return host, (0.0, 0.0, 0.0, 0.0)


CONSTANT, MIN_OF_MAX, MAX = 0, 1, 2    # how an operator's step time depends on the position c


@njit(cache=True, error_model="numpy")
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
        (c0, c1, m0, m1), (a0, a1, b0, b1) = _lines(flops, mem_s, alt_mem_s, op, i, feats0, feats1)
        has_alt, o, ao, overlap = op[i, OP_ALT_PEAK] > 0.0, op[i, OP_OVERHEAD], op[i, OP_ALT_OVERHEAD], op[i, OP_OVERLAP]
        if c1 == 0.0 and m1 == 0.0 and a1 == 0.0 and b1 == 0.0:
            step = combine(c0, m0, overlap) + o
            if has_alt:
                step = min(step, max(a0, b0) + ao)
            case[i] = CONSTANT
            lines[i, 0, 0] = step
        elif has_alt:
            case[i] = MIN_OF_MAX
            lines[i, 0, 0], lines[i, 0, 1], lines[i, 1, 0], lines[i, 1, 1] = c0 + o, c1, m0 + o, m1
            lines[i, 2, 0], lines[i, 2, 1], lines[i, 3, 0], lines[i, 3, 1] = a0 + ao, a1, b0 + ao, b1
        else:
            case[i] = MAX
            lines[i, 0, 0], lines[i, 0, 1], lines[i, 1, 0], lines[i, 1, 1] = c0, c1, m0, m1


@njit(cache=True, error_model="numpy", inline="always")
def line_step_s(case, lines, overhead, c):
    """One operator's step time (before repeat) at a position c (any real) from its
    range_lines case and lines ([4, 2]); range_sums sums the same over integer c."""
    if case == CONSTANT:
        return lines[0, 0]
    if case == MIN_OF_MAX:
        return _min_of_max(lines, c)
    return max(lines[0, 0] + lines[0, 1] * c, lines[1, 0] + lines[1, 1] * c) + overhead


@njit(cache=True, error_model="numpy")
def range_sums(op, case, lines, lo, hi, time_s):
    """time_s[i] = operator i's time (x repeat) summed over integer c in [lo, hi], from
    range_lines' cases and lines, in closed form; returns the total."""
    total = 0.0
    count = hi - lo + 1.0
    for i in range(op.shape[0]):
        if hi < lo:
            t = 0.0
        elif case[i] == CONSTANT:
            t = lines[i, 0, 0] * count
        elif case[i] == MIN_OF_MAX:
            t = _min_of_max_sum(lines[i], lo, hi)
        else:
            t = _max_linear_sum(lines[i, 0, 0], lines[i, 0, 1], lines[i, 1, 0], lines[i, 1, 1], lo, hi) \
                + op[i, OP_OVERHEAD] * count
        time_s[i] = t * op[i, OP_REPEAT]
        total += time_s[i]
    return total


@njit(cache=True, error_model="numpy")
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
