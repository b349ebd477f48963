"""Many scenarios (B, S, N) of one prepared (model, device, stack, precisions) in one numba
call: no Python per scenario. Semantics are those of predict.evaluate, scenario by scenario:

  memory      weights + B min(S + N, W) kv_bytes_per_token + largest prefill transient;
              a scenario that does not fit gets NaN times and energies
  ttft_s      sum over operators of roofline time at prefill_features(B, S, W) + step overhead
  tpot_s      (sum of decode steps at positions S .. S + N - 2, closed form per segment of
              phases.decode_segments, + (N - 1) step overheads) / (N - 1); NaN when N = 1
  e2e_s       ttft + (N - 1) tpot;  output_tokens_per_s = B N / e2e
  energy_j    EnergyModel.energy_j of the prefill pass + of all decode steps (NaN without power)

The GEMM efficiency depends on M (B S in prefill, B in decode), so every scenario gets its
own compute rates: the kernels call roofline's helpers (_rates, _max_linear_sum).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit, prange

from simulator.engine.roofline import _max_linear_sum, _rates
from simulator.graph.ops import KV, N_FEATURES, ONE, PAIR, SEQ, TOK

# rows of the result matrix [N_OUTPUTS, scenarios]
OUTPUTS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "prefill_energy_j", "decode_step_energy_j",
           "energy_j", "tokens_per_j", "kv_cache_bytes", "activation_bytes", "memory_total_bytes", "fits")
(TTFT_S, TPOT_S, E2E_S, TOKENS_PER_S, PREFILL_ENERGY_J, DECODE_STEP_ENERGY_J, ENERGY_J, TOKENS_PER_J,
 KV_CACHE_BYTES, ACTIVATION_BYTES, TOTAL_BYTES, FITS) = range(len(OUTPUTS))

# entries of the scalar parameter vector
(P_STEP_OVERHEAD_S, P_WINDOW, P_WEIGHT_BYTES, P_KV_BYTES_PER_TOKEN, P_CAPACITY_BYTES, P_HAS_ENERGY,
 P_IDLE_W, P_TDP_W, P_J_PER_FLOP, P_WEIGHT_J_PER_BYTE, P_OTHER_J_PER_BYTE) = range(11)
N_PARAMS = 11

BLOCK = 512          # scenarios per parallel work item


@dataclasses.dataclass(frozen=True)
class Packed:
    """Arrays of one Prepared, as the kernels take them.

    op_args              Bound.kernel_args(): the roofline kernels' per-operator arrays
    transient_bytes      [ops, features] bytes of a prefill operator's working set (weights
                         and KV columns zeroed): memory.activation_bytes = max_i row_i @ f
    flops_per_feature    sum_i repeat_i flops[i, :] (Bound.totals' FLOPs = this @ f)
    moved_per_feature    sum_i repeat_i moved_bytes[i, :] (weights: the ONE column)
    params               scalars, indexed by the P_* constants
    """

    op_args: tuple
    transient_bytes: np.ndarray
    flops_per_feature: np.ndarray
    moved_per_feature: np.ndarray
    params: np.ndarray


def pack(prep) -> Packed:
    """Flatten a predict.Prepared into arrays (once per prepared, independent of B, S, N)."""
    table, bound, em = prep.table, prep.bound, prep.energy
    transient = table.bytes.copy()
    transient[:, ONE] = 0.0
    transient[:, KV] = 0.0
    params = np.zeros(N_PARAMS)
    params[P_STEP_OVERHEAD_S] = bound.step_overhead_s
    params[P_WINDOW] = table.window
    params[P_WEIGHT_BYTES] = table.weight_bytes
    params[P_KV_BYTES_PER_TOKEN] = table.kv_bytes_per_token
    params[P_CAPACITY_BYTES] = sum(level.capacity_bytes for level in prep.hardware.memory)
    if em is not None:
        params[P_HAS_ENERGY] = 1.0
        params[P_IDLE_W], params[P_TDP_W], params[P_J_PER_FLOP] = em.idle_w, em.tdp_w, em.energy_per_flop_j
        params[P_WEIGHT_J_PER_BYTE], params[P_OTHER_J_PER_BYTE] = (em.weight_energy_per_byte_j,
                                                                   em.other_energy_per_byte_j)
    return Packed(bound.kernel_args(), np.ascontiguousarray(transient),
                  np.ascontiguousarray(table.repeat @ table.flops),
                  np.ascontiguousarray(table.repeat @ bound.moved_bytes), params)


def evaluate_many(packed: Packed, batch, prompt, output, parallel: bool = True) -> np.ndarray:
    """Results [len(OUTPUTS), scenarios] (rows named by OUTPUTS; fits is 1.0 or 0.0) for
    equal-length integer arrays of batch B, prompt S and output N. ``parallel`` spreads
    blocks of scenarios over numba's threads; the serial kernel releases the GIL (for
    threaded Dask workers). Both give bitwise-identical results."""
    b, s, n = (np.ascontiguousarray(a, dtype=np.int64) for a in (batch, prompt, output))
    out = np.empty((len(OUTPUTS), b.shape[0]))
    args = (packed.op_args, packed.transient_bytes, packed.flops_per_feature, packed.moved_per_feature,
            packed.params, b, s, n, out)
    if parallel:
        _evaluate_parallel(*args)
    else:
        _evaluate_serial(*args)
    return out


@njit(cache=True)
def causal_pairs(seq_len, window):
    """phases.causal_pairs: sum_{i=1..S} min(i, W) (W = 0: no window)."""
    if window <= 0 or window >= seq_len:
        return seq_len * (seq_len + 1) / 2.0
    return window * (window + 1) / 2.0 + (seq_len - window) * float(window)


@njit(cache=True)
def _pass_time_s(op_args, feats):
    """Sum over operators of roofline.evaluate_point's times (s) at one feature vector."""
    flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead, tile_m, tile_n, units = op_args
    total = 0.0
    for i in range(flops.shape[0]):
        f = 0.0
        tm = 0.0
        for j in range(feats.shape[0]):
            f += flops[i, j] * feats[j]
            tm += mem_s[i, j] * feats[j]
        tc = f / _rates(i, feats, gemm_n, m_feature, compute_peak, tile_m, tile_n, units)
        total += (max(tc, tm) + overhead[i]) * repeat[i]
    return total


@njit(cache=True)
def _range_time_s(op_args, f0, f1, lo, hi, feat_sum):
    """Sum over operators of roofline.evaluate_range (s): decode steps at positions c in
    [lo, hi] with features f0 + f1 c. Adds the steps' summed features to ``feat_sum``."""
    flops, mem_s, repeat, gemm_n, m_feature, compute_peak, overhead, tile_m, tile_n, units = op_args
    count = hi - lo + 1.0
    for j in range(f0.shape[0]):
        feat_sum[j] += f0[j] * count + f1[j] * (lo + hi) * count / 2.0
    if hi < lo:
        return 0.0
    total = 0.0
    for i in range(flops.shape[0]):
        a0 = 0.0
        a1 = 0.0
        m0 = 0.0
        m1 = 0.0
        for j in range(f0.shape[0]):
            a0 += flops[i, j] * f0[j]
            a1 += flops[i, j] * f1[j]
            m0 += mem_s[i, j] * f0[j]
            m1 += mem_s[i, j] * f1[j]
        rate = _rates(i, f0, gemm_n, m_feature, compute_peak, tile_m, tile_n, units)
        total += (_max_linear_sum(a0 / rate, a1 / rate, m0, m1, lo, hi) + overhead[i] * count) * repeat[i]
    return total


@njit(cache=True)
def _decode_time_s(op_args, batch, first, last, window, f0, f1, feat_sum):
    """Decode steps at positions first..last, split as phases.decode_segments splits them
    where the sliding window caps the attended span. f0, f1: scratch; feat_sum: += features."""
    f0[:] = 0.0
    f1[:] = 0.0
    f0[ONE] = 1.0
    f0[SEQ] = batch
    f0[TOK] = batch
    f0[PAIR] = batch                       # B (c + 1)
    f0[KV] = batch
    f1[PAIR] = batch
    f1[KV] = batch
    if window <= 0 or last + 1 <= window:
        return _range_time_s(op_args, f0, f1, first, last, feat_sum)
    split = window - 1.0                   # last position with c + 1 <= W
    total = 0.0
    if first <= split:
        total += _range_time_s(op_args, f0, f1, first, split, feat_sum)
    f0[PAIR] = batch * window
    f0[KV] = batch * window
    f1[PAIR] = 0.0
    f1[KV] = 0.0
    return total + _range_time_s(op_args, f0, f1, max(first, split + 1.0), last, feat_sum)


@njit(cache=True)
def _energy_j(params, time_s, flops_per_feature, moved_per_feature, feats):
    """EnergyModel.energy_j with Bound.totals(feats): idle x t + min(dynamic, (TDP - idle) t)."""
    flops = 0.0
    other = 0.0
    for j in range(feats.shape[0]):
        flops += flops_per_feature[j] * feats[j]
        if j != ONE:
            other += moved_per_feature[j] * feats[j]
    weight = moved_per_feature[ONE] * feats[ONE]
    idle = params[P_IDLE_W]
    dynamic = (flops * params[P_J_PER_FLOP] + weight * params[P_WEIGHT_J_PER_BYTE]
               + other * params[P_OTHER_J_PER_BYTE])
    return idle * time_s + min(dynamic, (params[P_TDP_W] - idle) * time_s)


@njit(cache=True)
def _memory(transient, params, batch, prompt, output, feats, out, k):
    """Fill the memory rows of scenario k; True when it fits (memory.py's formulas)."""
    window = params[P_WINDOW]
    positions = prompt + output
    span = min(positions, window) if window > 0 else positions
    kv = batch * span * params[P_KV_BYTES_PER_TOKEN]
    act = -np.inf
    for i in range(transient.shape[0]):
        row = 0.0
        for j in range(feats.shape[0]):
            row += transient[i, j] * feats[j]
        act = max(act, row)
    total = params[P_WEIGHT_BYTES] + kv + act
    fits = total <= params[P_CAPACITY_BYTES]
    out[KV_CACHE_BYTES, k] = kv
    out[ACTIVATION_BYTES, k] = act
    out[TOTAL_BYTES, k] = total
    out[FITS, k] = 1.0 if fits else 0.0
    return fits


@njit(cache=True)
def _scenarios(op_args, transient, flops_per_feature, moved_per_feature, params, batch, prompt, output,
               out, start, stop):
    """Scenarios start..stop-1 into out[:, k]."""
    window = params[P_WINDOW]
    feats = np.empty(N_FEATURES)
    f0 = np.empty(N_FEATURES)
    f1 = np.empty(N_FEATURES)
    dec_feats = np.empty(N_FEATURES)
    for k in range(start, stop):
        b, s, n = batch[k], prompt[k], output[k]
        feats[:] = 0.0
        feats[ONE] = 1.0
        feats[SEQ] = b
        feats[TOK] = b * s
        feats[PAIR] = b * causal_pairs(s, window)
        feats[KV] = b * s
        if not _memory(transient, params, b, s, n, feats, out, k):
            for r in range(TTFT_S, TOKENS_PER_J + 1):
                out[r, k] = np.nan
            continue
        steps = n - 1
        ttft = _pass_time_s(op_args, feats) + params[P_STEP_OVERHEAD_S]
        dec_feats[:] = 0.0
        dec_time = (_decode_time_s(op_args, float(b), float(s), float(s + n - 2), window, f0, f1, dec_feats)
                    + params[P_STEP_OVERHEAD_S] * steps)
        e2e = ttft + dec_time
        tokens = float(b * n)
        out[TTFT_S, k] = ttft
        out[TPOT_S, k] = dec_time / steps if steps else np.nan
        out[E2E_S, k] = e2e
        out[TOKENS_PER_S, k] = tokens / e2e
        if params[P_HAS_ENERGY] > 0.0:
            pre_e = _energy_j(params, ttft, flops_per_feature, moved_per_feature, feats)
            dec_e = _energy_j(params, dec_time, flops_per_feature, moved_per_feature, dec_feats)
            out[PREFILL_ENERGY_J, k] = pre_e
            out[DECODE_STEP_ENERGY_J, k] = dec_e / steps if steps else np.nan
            out[ENERGY_J, k] = pre_e + dec_e
            out[TOKENS_PER_J, k] = tokens / (pre_e + dec_e)
        else:
            for r in (PREFILL_ENERGY_J, DECODE_STEP_ENERGY_J, ENERGY_J, TOKENS_PER_J):
                out[r, k] = np.nan


@njit(cache=True, nogil=True)
def _evaluate_serial(op_args, transient, flops_per_feature, moved_per_feature, params, batch, prompt, output,
                     out):
    _scenarios(op_args, transient, flops_per_feature, moved_per_feature, params, batch, prompt, output, out,
               0, batch.shape[0])


@njit(cache=True, parallel=True)
def _evaluate_parallel(op_args, transient, flops_per_feature, moved_per_feature, params, batch, prompt, output,
                       out):
    n = batch.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(blocks):
        _scenarios(op_args, transient, flops_per_feature, moved_per_feature, params, batch, prompt, output, out,
                   blk * BLOCK, min(n, (blk + 1) * BLOCK))

