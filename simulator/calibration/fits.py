"""Least-squares fits of one operator kind's microbenchmarks, each through the engine's own
kernel (engine.kernels.roofline.evaluate_each: one measured call = one operator row at its own
feature vector), so that a fitted profile reproduces the microbenchmarks it came from:

  GEMM        t = ||(2MNK / (peak f_c eff(M, N)), bytes / (bw f_m))||_p + t_0
              eff = tile and wave quantization (tile sizes chosen from a grid), p the
              overlap exponent; least squares on log time over every (M, N, K)
  streaming   t = t_0 + bytes / (bw f)
  attention   prefill t = FLOPs / (peak f_c L / (L + L0)) + t_0, L the mean attended length;
              decode t = (KV bytes / (bw f) + B x KV heads x t_block / units) + t_0 with f the
              resident, split or oversubscribed fraction by the B x KV heads thread blocks
              (roofline.occupancy_scale)
  grouped     expert GEMMs as the GEMM fit, rows M = tokens per expert, groups = experts holding
              tokens (the ETOK and EXP features)
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import least_squares

from simulator.engine.bind import attention_block_s
from simulator.engine.kernels import roofline
from simulator.graph.ops import ETOK, EXP, N_FEATURES, ONE, PAIR, SEQ, TOK
from simulator.specs.stack import DeviceProfile

# the most a kernel's fixed cost may be fitted to: an eager CPU op (a composite rms_norm,
# flash attention's setup) pays up to ~0.1-0.3 ms; a GPU kernel a few microseconds
MAX_FIXED_S = 1e-3
# a CPU's tiled GEMMs block rows per core far smaller than a GPU's thread blocks
CPU_TILE_GRID = ((16, 64), (32, 64), (32, 128))
CPU_GEMV_MAX_M = (1, 2, 4, 8, 16)
TILE_GRID = ((1, 1), (64, 64), (64, 128), (128, 64), (128, 128), (128, 256))
GPU_GEMV_MAX_M = (0, 16, 32, 64)      # a GPU library's small-M kernels (FP8 rowwise scaled_mm) may stream like a GEMV
SPLIT_BELOW = DeviceProfile.model_fields["attention_split_below"].default   # flash attention splits below 0.8 x SMs


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


def _calls(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flops, mem_s, feats, op) for n measured calls, each one operator row of the engine's
    roofline kernel at its own feature vector (feats[:, ONE] = 1, everything else neutral)."""
    flops, mem_s, feats = (np.zeros((n, N_FEATURES)) for _ in range(3))
    feats[:, ONE] = 1.0
    return flops, mem_s, feats, roofline.op_params(n)


def _seconds(flops, mem_s, feats, op) -> np.ndarray:
    """Each call's seconds by the engine's kernel (roofline.evaluate_each; no PIM unit)."""
    return roofline.evaluate_each(flops, mem_s, np.zeros_like(mem_s), op, feats)


def _columns(*values) -> tuple[bool, list[np.ndarray]]:
    """(all scalars?, the values as equal-length float arrays)."""
    arrays = np.broadcast_arrays(*(np.asarray(v, float) for v in values))
    return arrays[0].ndim == 0, [np.atleast_1d(a).ravel() for a in arrays]


def _result(t: np.ndarray, scalar: bool) -> np.ndarray | float:
    return float(t[0]) if scalar else t


class GemmCalls:
    """Measured GEMMs x @ W.t() of shapes (M, K) x (K, N), elements of ``element_bytes``, as
    operator rows of the engine's kernel: the weights stream once (ONE), the activations per
    row (TOK = M); tiles, waves, the GEMV path and the p-norm overlap are the engine's. The
    shapes' columns are built once; :meth:`seconds` sets the fitted parameters."""

    def __init__(self, m, n, k, bandwidth: float, units: float, element_bytes: float = 2.0, groups=None):
        self.scalar, (m, n, k, g) = _columns(m, n, k, 1.0 if groups is None else groups)
        self.bandwidth = bandwidth
        self.flops, self.mem_s, self.feats, self.op = _calls(m.size)
        self.alt_mem_s = np.zeros_like(self.mem_s)
        self.feats[:, TOK] = m * g
        self.flops[:, TOK] = 2.0 * n * k
        self.weight_bytes = element_bytes * n * k * g
        self.row_bytes = element_bytes * (n + k)
        self.op[:, roofline.OP_GEMM_N] = n
        self.op[:, roofline.OP_UNITS] = units
        if groups is None:
            self.op[:, roofline.OP_M_FEATURE] = TOK
        else:                       # a grouped GEMM: g groups of m rows each (the ETOK and EXP features)
            self.feats[:, ETOK], self.feats[:, EXP] = m, g
            self.op[:, roofline.OP_M_FEATURE] = ETOK

    def seconds(self, params, peak: float, gemv=(0, 1.0)) -> np.ndarray | float:
        """Each call's seconds under params = (peak fraction, memory fraction, overlap p,
        overhead s, tile_m, tile_n); ``gemv`` = (gemv_max_m, gemv_memory_fraction): at most
        that many rows run as a GEMV (no tiles, its own bandwidth fraction)."""
        fc, fm, p, t0, tile_m, tile_n = params
        self.mem_s[:, ONE] = self.weight_bytes / (self.bandwidth * fm)
        self.mem_s[:, TOK] = self.row_bytes / (self.bandwidth * fm)
        op = self.op
        op[:, roofline.OP_PEAK] = peak * fc
        op[:, roofline.OP_TILE_M], op[:, roofline.OP_TILE_N] = tile_m, tile_n
        op[:, roofline.OP_OVERLAP] = p
        op[:, roofline.OP_OVERHEAD] = t0
        op[:, roofline.OP_GEMV_MAX_M] = gemv[0]
        op[:, roofline.OP_GEMV_SCALE] = fm / gemv[1]
        return _result(roofline.evaluate_each(self.flops, self.mem_s, self.alt_mem_s, op, self.feats), self.scalar)


def gemm_time_s(params, m, n, k, peak, bandwidth, units, element_bytes=2.0, gemv=(0, 1.0)):
    """The engine's GEMM time of x @ W.t() for (M, K) x (K, N) (GemmCalls.seconds)."""
    return GemmCalls(m, n, k, bandwidth, units, element_bytes).seconds(params, peak, gemv)


def streaming_time_s(params, bytes_, bandwidth):
    """The engine's time of a streaming kernel: bytes at its fraction of bandwidth, plus its
    fixed cost (no compute)."""
    fm, t0 = params
    scalar, (bytes_,) = _columns(bytes_)
    flops, mem_s, feats, op = _calls(bytes_.size)
    mem_s[:, ONE] = bytes_ / (bandwidth * fm)
    op[:, roofline.OP_PEAK] = 1.0
    op[:, roofline.OP_OVERHEAD] = t0
    return _result(_seconds(flops, mem_s, feats, op), scalar)


def fit_gemm(rows, peak, bandwidth, units, element_bytes=2.0, cpu=False, name="gemm", gemv_grid=None,
             latency="latency_s", groups=None) -> Fit:
    """Least squares on log time over every (M, N, K), for each tile shape of the grid (and on
    a CPU each GEMV row limit: its BLAS streams small-M products through a GEMV kernel at
    another rate than its tiled GEMM; ``gemv_grid`` gives a GPU's limits to try); the best fit
    wins. ``latency`` names the rows' time field; ``groups`` the field of a grouped GEMM's groups."""
    calls = GemmCalls(*(np.array([getattr(r, key) for r in rows], float) for key in ("m", "n", "k")), bandwidth, units,
                      element_bytes, None if groups is None else np.array([getattr(r, groups) for r in rows], float))
    t = np.array([getattr(r, latency) for r in rows])
    best = None
    for tile_m, tile_n in TILE_GRID + (CPU_TILE_GRID if cpu else ()):
        for gemv_max_m in (CPU_GEMV_MAX_M if cpu else gemv_grid or (0,)):
            def model(x):
                gemv = (gemv_max_m, x[4]) if gemv_max_m else (0, 1.0)
                return calls.seconds((*x[:4], tile_m, tile_n), peak, gemv)
            x0, lo, hi = [0.8, 0.85, 4.0, 2e-6], [0.05, 0.05, 1.0, 0.0], [1.0, 1.5, 50.0, MAX_FIXED_S]
            if gemv_max_m:                  # the GEMV's bandwidth fraction
                x0, lo, hi = x0 + [0.85], lo + [0.05], hi + [1.5]
            res = _log_fit(model, t, x0, lo, hi)
            if best is None or res.cost < best[0].cost:
                best = (res, tile_m, tile_n, gemv_max_m)
    res, tile_m, tile_n, gemv_max_m = best
    fc, fm, p, t0 = res.x[:4]
    gemv = dict(gemv_max_m=gemv_max_m, gemv_memory_fraction=res.x[4]) if gemv_max_m else {}
    return Fit(name, dict(peak_fraction=fc, memory_fraction=fm, overlap_exponent=p, overhead_s=t0,
                            tile_m=tile_m, tile_n=tile_n, **gemv), np.expm1(res.fun))


def fit_streaming(name: str, rows, bandwidth) -> Fit:
    """t = t0 + bytes / (bandwidth f): fixed cost and achieved fraction of a streaming kernel."""
    b = np.array([r.bytes for r in rows], float)
    t = np.array([r.latency_s for r in rows])
    res = _log_fit(lambda x: streaming_time_s(x, b, bandwidth), t, [0.8, 2e-6], [0.05, 0.0], [1.5, MAX_FIXED_S])
    return Fit(name, dict(memory_fraction=res.x[0], overhead_s=res.x[1]), np.expm1(res.fun))


def prefill_attention_time_s(params, flops, batch, seq_len, peak):
    """The engine's causal flash prefill: FLOPs at f x L / (L + L0) of peak, L = pairs /
    tokens = (S + 1) / 2 attended keys (the PAIR and TOK features of B sequences of S)."""
    fc, l0, t0 = params
    scalar, (flops_, batch, seq_len) = _columns(flops, batch, seq_len)
    f, mem_s, feats, op = _calls(flops_.size)
    f[:, ONE] = flops_
    feats[:, TOK] = batch * seq_len
    feats[:, PAIR] = batch * seq_len * (seq_len + 1.0) / 2.0
    op[:, roofline.OP_PEAK] = peak * fc
    op[:, roofline.OP_HALF_LENGTH] = l0
    op[:, roofline.OP_OVERHEAD] = t0
    return _result(_seconds(f, mem_s, feats, op), scalar)


def decode_attention_time_s(params, bytes_, batch, kv_heads, bandwidth, units):
    """The engine's decode attention: the KV read at f of bandwidth, plus each (sequence, KV
    head) block's fixed cost spread over the units (bind.attention_block_s per sequence), in
    the occupancy regime of its B x KV heads blocks (bind.occupancy_row). params = (resident
    f, t_block, t0[, split f, oversubscribed f]); without the last two, one f for all."""
    fm, t_block, t0 = params[:3]
    f_split, f_over = params[3:] if len(params) == 5 else (fm, fm)
    scalar, (b, batch, kv_heads) = _columns(bytes_, batch, kv_heads)
    flops, mem_s, feats, op = _calls(b.size)
    mem_s[:, ONE] = b / (bandwidth * fm)
    mem_s[:, SEQ] = attention_block_s(kv_heads, t_block, units)
    feats[:, SEQ] = batch
    op[:, roofline.OP_PEAK] = 1.0
    op[:, roofline.OP_OVERHEAD] = t0
    op[:, roofline.OP_UNITS] = units
    op[:, roofline.OP_BLOCKS_PER_SEQ] = kv_heads
    op[:, roofline.OP_SPLIT_BLOCKS] = SPLIT_BELOW * units
    op[:, roofline.OP_SPLIT_SCALE] = fm / f_split
    op[:, roofline.OP_OVER_SCALE] = fm / f_over
    return _result(_seconds(flops, mem_s, feats, op), scalar)


def fit_prefill_attention(rows, peak) -> Fit:
    f, batch, seq_len = (np.array([getattr(r, key) for r in rows], float) for key in ("flops", "batch", "seq_len"))
    t = np.array([r.latency_s for r in rows])
    res = _log_fit(lambda x: prefill_attention_time_s(x, f, batch, seq_len, peak), t, [0.3, 300.0, 5e-6],
                   [0.01, 0.0, 0.0], [1.0, 1e5, MAX_FIXED_S])
    return Fit("attention prefill", dict(compute_fraction=res.x[0], half_length=res.x[1], overhead_s=res.x[2]),
               np.expm1(res.fun))


def fit_decode_attention(rows, bandwidth, units, regimes: bool = True) -> Fit:
    """The decode attention fit; ``regimes``: a memory fraction per occupancy regime (resident,
    split, oversubscribed) where the rows have blocks in each, else one fraction."""
    b, batch, kv_heads = (np.array([getattr(r, key) for r in rows], float) for key in ("bytes", "batch", "kv_heads"))
    t = np.array([r.latency_s for r in rows])
    blocks = batch * kv_heads
    regimes = regimes and (blocks < SPLIT_BELOW * units).any() and (blocks > units).any() and \
        ((blocks >= SPLIT_BELOW * units) & (blocks <= units)).any()
    x0, lo, hi = [0.8, 1e-6, 5e-6], [0.05, 0.0, 0.0], [1.5, 1e-4, MAX_FIXED_S]
    if regimes:
        x0, lo, hi = x0 + [0.8, 0.8], lo + [0.05, 0.05], hi + [1.5, 1.5]
    res = _log_fit(lambda x: decode_attention_time_s(x, b, batch, kv_heads, bandwidth, units), t, x0, lo, hi)
    params = dict(memory_fraction=res.x[0], block_overhead_s=res.x[1], overhead_s=res.x[2])
    if regimes:
        params.update(split_memory_fraction=res.x[3], oversubscribed_memory_fraction=res.x[4])
    return Fit("attention decode", params, np.expm1(res.fun))
