"""Least-squares fits of one operator kind's microbenchmarks, each through the engine's formula
for that kind, so that a fitted profile reproduces the microbenchmarks it came from:

  GEMM        t = ||(2MNK / (peak f_c eff(M, N)), bytes / (bw f_m))||_p + t_0
              eff = tile and wave quantization (tile sizes chosen from a grid), p the
              overlap exponent; least squares on log time over every (M, N, K)
  streaming   t = t_0 + bytes / (bw f)
  attention   prefill t = FLOPs / (peak f_c L / (L + L0)) + t_0, L the mean attended length;
              decode t = KV bytes / (bw f_m) + B x KV heads x t_block / units + t_0
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import least_squares

# the most a kernel's fixed cost may be fitted to: an eager CPU op (a composite rms_norm,
# flash attention's setup) pays up to ~0.1-0.3 ms; a GPU kernel a few microseconds
MAX_FIXED_S = 1e-3
# a CPU's tiled GEMMs block rows per core far smaller than a GPU's thread blocks
CPU_TILE_GRID = ((16, 64), (32, 64), (32, 128))
CPU_GEMV_MAX_M = (1, 2, 4, 8, 16)
TILE_GRID = ((1, 1), (64, 64), (64, 128), (128, 64), (128, 128), (128, 256))


@dataclasses.dataclass
class Fit:
    """One fitted group: parameters and the relative errors on the points it used."""

    name: str
    params: dict
    errors: np.ndarray

    def summary(self) -> dict:
        e = np.abs(self.errors)
        return {"fit": self.name, "n": int(e.size), "median_abs_error": float(np.median(e)),
                "p90_abs_error": float(np.percentile(e, 90)), "max_abs_error": float(e.max())}


def _log_fit(model, t: np.ndarray, x0, lo, hi):
    """least_squares on log(model(x) / t) within bounds."""
    return least_squares(lambda x: np.log(model(x) / t), x0, bounds=(lo, hi))


def _wave_efficiency(m, n, tile_m, tile_n, units):
    """Vectorised twin of engine.roofline.gemm_efficiency."""
    if tile_m <= 1 and tile_n <= 1:
        return np.ones_like(m)
    tm, tn = np.ceil(m / tile_m), np.ceil(n / tile_n)
    tiles = tm * tn
    waves = np.ceil(tiles / units)
    return (m * n) / (tm * tile_m * tn * tile_n) * tiles / (waves * units)


def _p_norm(a, b, p):
    big = np.maximum(a, b)
    return big * ((a / big) ** p + (b / big) ** p) ** (1.0 / p)


def gemm_time_s(params, m, n, k, peak, bandwidth, units, element_bytes=2.0, gemv=(0, 1.0)):
    """The engine's GEMM time for x @ W.t() of shape (M, K) x (K, N), elements of
    ``element_bytes``; ``gemv`` = (gemv_max_m, gemv_memory_fraction): at most that many rows
    run as a GEMV (no tiles, its own bandwidth fraction)."""
    fc, fm, p, t0, tile_m, tile_n = params
    as_gemv = m <= gemv[0]
    efficiency = np.where(as_gemv, 1.0, _wave_efficiency(m, n, tile_m, tile_n, units))
    compute = 2 * m * n * k / (peak * fc * efficiency)
    memory = element_bytes * (n * k + m * (n + k)) / (bandwidth * np.where(as_gemv, gemv[1], fm))
    return _p_norm(compute, memory, p) + t0


def fit_gemm(rows, peak, bandwidth, units, element_bytes=2.0, cpu=False) -> Fit:
    """Least squares on log time over every (M, N, K), for each tile shape of the grid (and on
    a CPU each GEMV row limit: its BLAS streams small-M products through a GEMV kernel at
    another rate than its tiled GEMM); the best fit wins."""
    m, n, k = (np.array([getattr(r, key) for r in rows], float) for key in ("m", "n", "k"))
    t = np.array([r.latency_s for r in rows])
    best = None
    for tile_m, tile_n in TILE_GRID + (CPU_TILE_GRID if cpu else ()):
        for gemv_max_m in (CPU_GEMV_MAX_M if cpu else (0,)):
            def model(x):
                gemv = (gemv_max_m, x[4]) if gemv_max_m else (0, 1.0)
                return gemm_time_s((*x[:4], tile_m, tile_n), m, n, k, peak, bandwidth, units, element_bytes, gemv)
            x0, lo, hi = [0.8, 0.85, 4.0, 2e-6], [0.05, 0.05, 1.0, 0.0], [1.0, 1.5, 50.0, MAX_FIXED_S]
            if gemv_max_m:                  # the GEMV's bandwidth fraction
                x0, lo, hi = x0 + [0.85], lo + [0.05], hi + [1.5]
            res = _log_fit(model, t, x0, lo, hi)
            if best is None or res.cost < best[0].cost:
                best = (res, tile_m, tile_n, gemv_max_m)
    res, tile_m, tile_n, gemv_max_m = best
    fc, fm, p, t0 = res.x[:4]
    gemv = dict(gemv_max_m=gemv_max_m, gemv_memory_fraction=res.x[4]) if gemv_max_m else {}
    return Fit("gemm", dict(peak_fraction=fc, memory_fraction=fm, overlap_exponent=p, overhead_s=t0,
                            tile_m=tile_m, tile_n=tile_n, **gemv), np.expm1(res.fun))


def fit_streaming(name: str, rows, bandwidth) -> Fit:
    """t = t0 + bytes / (bandwidth f): fixed cost and achieved fraction of a streaming kernel."""
    b = np.array([r.bytes for r in rows], float)
    t = np.array([r.latency_s for r in rows])
    res = _log_fit(lambda x: x[1] + b / (bandwidth * x[0]), t, [0.8, 2e-6], [0.05, 0.0], [1.5, MAX_FIXED_S])
    return Fit(name, dict(memory_fraction=res.x[0], overhead_s=res.x[1]), np.expm1(res.fun))


def prefill_attention_time_s(params, flops, length, peak):
    """Causal flash prefill: FLOPs at f x L / (L + L0) of peak, L = (S + 1) / 2 attended keys."""
    fc, l0, t0 = params
    return flops / (peak * fc * length / (length + l0)) + t0


def decode_attention_time_s(params, bytes_, blocks, bandwidth, units):
    """Decode attention: the KV read at f of bandwidth, plus each (sequence, KV head) block's
    fixed cost spread over the units."""
    fm, t_block, t0 = params
    return bytes_ / (bandwidth * fm) + blocks * t_block / units + t0


def fit_prefill_attention(rows, peak) -> Fit:
    f = np.array([r.flops for r in rows], float)
    length = np.array([(r.seq_len + 1) / 2.0 for r in rows])
    t = np.array([r.latency_s for r in rows])
    res = _log_fit(lambda x: prefill_attention_time_s(x, f, length, peak), t, [0.3, 300.0, 5e-6],
                   [0.01, 0.0, 0.0], [1.0, 1e5, MAX_FIXED_S])
    return Fit("attention prefill", dict(compute_fraction=res.x[0], half_length=res.x[1], overhead_s=res.x[2]),
               np.expm1(res.fun))


def fit_decode_attention(rows, bandwidth, units) -> Fit:
    b = np.array([r.bytes for r in rows], float)
    blocks = np.array([r.batch * r.kv_heads for r in rows], float)
    t = np.array([r.latency_s for r in rows])
    res = _log_fit(lambda x: decode_attention_time_s(x, b, blocks, bandwidth, units), t, [0.8, 1e-6, 5e-6],
                   [0.05, 0.0, 0.0], [1.5, 1e-4, MAX_FIXED_S])
    return Fit("attention decode", dict(memory_fraction=res.x[0], block_overhead_s=res.x[1], overhead_s=res.x[2]),
               np.expm1(res.fun))
