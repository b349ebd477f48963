"""Every numba kernel against an obviously correct plain-Python twin. Run also with
NUMBA_DISABLE_JIT=1 (the Makefile's test target does)."""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from simulator.engine.kernels import roofline
from simulator.engine.bind import bind
from simulator.engine.kernels.phases import causal_pairs, decode_segments, decode_step_features, prefill_features
from simulator.graph.ops import ETOK, EXP
from simulator.graph.lower import lower
from simulator.specs import registry
from simulator.specs.base import Dtype


def twin_gemm_efficiency(m, n, tm, tn, units, groups=1.0):
    if tm <= 1 and tn <= 1:
        return 1.0
    tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
    tiles = tiles_m * tiles_n * max(groups, 1.0)
    waves = math.ceil(tiles / units)
    return (m * n) / (tiles_m * tm * tiles_n * tn) * tiles / (waves * units)


def twin_occupancy(bound, i, feats):
    """Decode attention's memory-time multiplier by its B x KV heads thread blocks."""
    per_seq, split_below, split, over = bound.occupancy[i]
    if per_seq <= 0:
        return 1.0
    blocks = feats[1] * per_seq                          # SEQ x blocks per sequence
    return split if blocks < split_below else over if blocks > bound.units else 1.0


def twin_point(bound, feats, half_length=None):
    """Prefill when half_length is given, else a decode step (occupancy regimes apply)."""
    t = bound.table
    decode = half_length is None
    half_length = np.zeros(len(t)) if half_length is None else half_length
    out = []
    for i in range(len(t)):
        f = sum(t.flops[i, j] * feats[j] for j in range(len(feats)))
        mem = sum(bound.mem_s[i, j] * feats[j] for j in range(len(feats)))
        peak = bound.compute_peak[i]
        if decode:
            mem *= twin_occupancy(bound, i, feats)
        gemv = t.gemm_n[i] > 0 and feats[t.m_feature[i]] <= bound.gemv_max_m[i]
        if gemv:
            mem *= bound.gemv_scale[i]
        elif t.gemm_n[i] > 0:
            groups = feats[EXP] if t.m_feature[i] == ETOK else 1.0
            peak *= twin_gemm_efficiency(feats[t.m_feature[i]], t.gemm_n[i], bound.tile_m[i], bound.tile_n[i],
                                         bound.units, groups)
        if half_length[i] > 0:
            length = feats[3] / feats[2]                  # pairs per token
            peak *= length / (length + half_length[i])
        p = bound.overlap[i]
        both = (f / peak) ** p + mem ** p if p > 0 and f > 0 and mem > 0 else None
        time = (both ** (1 / p) if both is not None else max(f / peak, mem)) + bound.overhead[i]
        if bound.alt_peak[i] > 0:
            alt_mem = sum(bound.alt_mem_s[i, j] * feats[j] for j in range(len(feats)))
            alt = max(f / bound.alt_peak[i], alt_mem) + bound.alt_overhead[i]
            if alt < time:
                time = alt
        out.append(time * t.repeat[i])
    return np.array(out)


def _bound(model="llama-3.1-8b", stack="pytorch-ref", tiles=(128, 128), hardware="h100-sxm"):
    _, arch, _ = registry.model(model)
    table = lower(arch, Dtype.bf16, Dtype.bf16, Dtype.bf16, False)
    b = bind(table, registry.hardware(hardware), registry.stack(stack), Dtype.bf16)
    if tiles:
        gemm = table.gemm_n > 0
        b.tile_m[gemm], b.tile_n[gemm] = tiles
        b.overlap[gemm] = 3.5                      # p-norm GEMMs: exercised by every twin below
        b.gemv_max_m[gemm] = 2                     # batch 1-2 decode GEMMs run as GEMVs (CPU BLAS)
        b.gemv_scale[gemm] = 1.6
        b.half_length[table.kind == 5] = 400.0            # attention
    return b


@pytest.mark.parametrize("m,n,tm,tn,units,groups", [(1, 6144, 128, 128, 132, 1), (300, 14336, 64, 256, 132, 1),
                                                    (8192, 4096, 128, 128, 132, 1), (5, 7, 1, 1, 4, 1),
                                                    (77, 130, 16, 1, 3, 1), (1.25, 512, 64, 64, 132, 102.0)])
def test_gemm_efficiency_twin(m, n, tm, tn, units, groups):
    assert roofline.gemm_efficiency(m, n, tm, tn, units, groups) == pytest.approx(
        twin_gemm_efficiency(m, n, tm, tn, units, groups))


def test_grouped_gemm_fills_waves_with_every_group():
    """102 experts of 1.25 rows x 512 columns in 64 x 64 tiles: 816 tiles, 7 waves on 132
    units (6.18 full), against one group's 8 tiles in a wave of 132."""
    grouped = roofline.gemm_efficiency(1.25, 512, 64, 64, 132, 102.0)
    assert grouped == pytest.approx(1.25 / 64 * 816 / (7 * 132))
    assert grouped > 10 * roofline.gemm_efficiency(1.25, 512, 64, 64, 132, 1.0)


@pytest.mark.parametrize("batch,prompt", [(1, 128), (8, 1024), (3, 4097)])
def test_evaluate_point_twin(batch, prompt):
    b = _bound()
    feats = prefill_features(batch, prompt, 0)
    time_s, bound, unit = roofline.evaluate_point(*b.pass_arrays("prefill"), feats)
    assert_allclose(time_s, twin_point(b, feats, b.half_length), rtol=1e-12)
    decode_time_s = roofline.evaluate_point(*b.pass_arrays("decode"), feats)[0]
    assert_allclose(decode_time_s, twin_point(b, feats), rtol=1e-12)
    assert set(bound) <= {0, 1, 2}


def test_gemv_path_by_hand():
    """A 4096 x 4096 bf16 GEMM at M = 1 with gemv_max_m = 1: no tile quantization, and the
    weight read (2 x 4096^2 B plus the vectors) at the GEMV's bandwidth
    (memory_fraction / gemv_memory_fraction = scale); at M = 2 the tiles are back."""
    b = _bound(model="llama-3.1-8b", tiles=(64, 64))
    i = int(np.flatnonzero(b.table.gemm_n == 4096)[0])          # o_proj: N = K = 4096
    b.gemv_max_m[:] = 1
    b.gemv_scale[:] = 2.0
    b.overlap[:] = 0.0
    feats = decode_step_features(1, 100, 0, None)
    t, _, _ = roofline.evaluate_point(*b.pass_arrays(), feats)
    mem = float(b.mem_s[i] @ feats)
    compute = float(b.table.flops[i] @ feats) / b.compute_peak[i]
    assert t[i] == pytest.approx((max(compute, 2.0 * mem) + b.overhead[i]) * b.table.repeat[i], rel=1e-12)
    feats2 = decode_step_features(2, 100, 0, None)
    t2, _, _ = roofline.evaluate_point(*b.pass_arrays(), feats2)
    tiled = float(b.table.flops[i] @ feats2) / (b.compute_peak[i] * roofline.gemm_efficiency(2.0, 4096.0, 64.0, 64.0,
                                                                                              b.units))
    assert t2[i] == pytest.approx((max(tiled, float(b.mem_s[i] @ feats2)) + b.overhead[i]) * b.table.repeat[i], rel=1e-12)


@pytest.mark.parametrize("hardware", ["h100-sxm", "hbm-pim", "attacc"])
@pytest.mark.parametrize("batch,first,last,window", [(1, 128, 254, 0), (64, 1000, 1100, 0), (8, 10, 9000, 4096),
                                                     (256, 4095, 4200, 4096), (2, 5000, 5001, 4096), (4, 7, 7, 0)])
def test_evaluate_range_equals_sum_of_steps(batch, first, last, window, hardware):
    """The closed-form decode sum against a loop over every step (with GEMM tiles on, so
    operators switch between compute- and memory-bound inside the range; on PIM devices
    between the host and the memory's own unit)."""
    b = _bound(tiles=(64, 128), hardware=hardware)
    loop = np.zeros(len(b.table))
    for c in range(first, last + 1):
        f0, f1, _, _ = [s for s in decode_segments(batch, c, c, window)][-1]
        loop += twin_point(b, f0 + f1 * c)
    total = np.zeros(len(b.table))
    for f0, f1, lo, hi in decode_segments(batch, first, last, window):
        total += roofline.evaluate_range(*b.pass_arrays(), f0, f1, float(lo), float(hi))
    assert_allclose(total, loop, rtol=1e-10)


@pytest.mark.parametrize("c,m,p", [(1.0, 1.0, 2.0), (3.0, 4.0, 2.0), (5.0, 1e-9, 4.0), (2.0, 7.0, 0.0), (0.0, 3.0, 3.0)])
def test_combine_is_max_or_p_norm(c, m, p):
    expected = max(c, m) if p == 0 or c == 0 or m == 0 else (c ** p + m ** p) ** (1 / p)
    assert roofline.combine(c, m, p) == pytest.approx(expected, rel=1e-12)


def test_max_linear_sum_crossing():
    # max(c, 10 - c) over c = 0..10: 10,9,8,7,6,5,6,7,8,9,10
    assert roofline._max_linear_sum(0.0, 1.0, 10.0, -1.0, 0.0, 10.0) == pytest.approx(85.0)
    assert roofline._max_linear_sum(10.0, -1.0, 0.0, 1.0, 0.0, 10.0) == pytest.approx(85.0)
    assert roofline._max_linear_sum(1.0, 0.0, 1.0, 0.0, 3.0, 2.0) == 0.0


@pytest.mark.parametrize("seed", range(40))
def test_min_of_max_sum_twin(seed):
    rng = np.random.default_rng(seed)
    lines = rng.normal(size=(4, 2)) * np.array([100.0, 1.0])
    lo, hi = sorted(rng.integers(-300, 300, size=2))
    loop = sum(min(max(lines[0, 0] + lines[0, 1] * c, lines[1, 0] + lines[1, 1] * c),
                   max(lines[2, 0] + lines[2, 1] * c, lines[3, 0] + lines[3, 1] * c)) for c in range(lo, hi + 1))
    assert roofline._min_of_max_sum(lines, float(lo), float(hi)) == pytest.approx(loop, rel=1e-9, abs=1e-9)


def test_causal_pairs_twin():
    for s, w in [(1, 0), (10, 0), (10, 4), (4096, 4096), (5000, 4096)]:
        assert causal_pairs(s, w) == sum(min(i, w) if w else i for i in range(1, s + 1))


def test_occupancy_regimes_by_hand():
    """Decode attention's blocks B x KV heads against 132 units: split below 0.8 x 132 (105.6)
    blocks, one per unit up to 132, shared above."""
    for blocks, expected in ((8, 1.3), (105, 1.3), (106, 1.0), (132, 1.0), (133, 1.6), (2048, 1.6)):
        assert roofline.occupancy_scale(float(blocks), 105.6, 132.0, 1.3, 1.6) == expected
