"""Many scenarios (B, S, N) of one prepared (model, device, stack, precisions, tp) and one
pipeline depth pp, in one numba call: no Python per scenario. Semantics are
predict.evaluate's (dp = 1, one microbatch), scenario by scenario:

  memory      per device: weights (memory_report's share for pp stages)
              + B min(S + N, W) kv_bytes_per_token / pp + largest prefill transient;
              a scenario that does not fit gets NaN times and energies
  ttft_s      max(sum over operators of roofline.evaluate_point at prefill_features(B, S, W)
              + prefill step overhead, the host's launch time) + the pipeline's stage
              transfers of B S tokens
  tpot_s      (sum of decode steps at positions S .. S + N - 2, closed form per segment of
              phases.decode_segments, + (N - 1) (decode step overhead + transfers of B
              tokens)) / (N - 1); NaN when N = 1
  power       a phase lasts at least its dynamic energy / (devices x (TDP - idle))
  e2e_s       ttft + (N - 1) tpot;  output_tokens_per_s = B N / e2e
  energy_j    EnergyModel.energy_j of the prefill pass + of all decode steps (NaN without power)

Speed: the prefill depends on (B, S) only, and a decode step's operator lines (intercept and
slope in the position, GEMM efficiency at M = B included) on B only, so consecutive
scenarios sharing B, or B and S (a grid in B x S x N order), reuse them; per scenario only
the closed-form range sums remain. The prefill calls roofline.evaluate_point, the decode
roofline.range_lines (once per batch size) and roofline.range_sums: the same code as
predict.evaluate. tests/test_batch.py checks every output against predict.evaluate.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit, prange

from simulator.engine.predict import _stage_transfer_s, memory_report
from simulator.engine.kernels.phases import fill_prefill_features, prefill_features, touched_experts
from simulator.engine.kernels.roofline import evaluate_point, range_lines, range_sums
from simulator.graph.ops import ETOK, EXP, KV, N_FEATURES, ONE, PAIR, SEQ, TOK
from simulator.specs.workload import Workload

# rows of the result matrix [len(OUTPUTS), scenarios]
OUTPUTS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "prefill_energy_j", "decode_step_energy_j",
           "energy_j", "tokens_per_j", "kv_cache_bytes", "activation_bytes", "memory_total_bytes", "fits")
(TTFT_S, TPOT_S, E2E_S, TOKENS_PER_S, PREFILL_ENERGY_J, DECODE_STEP_ENERGY_J, ENERGY_J, TOKENS_PER_J,
 KV_CACHE_BYTES, ACTIVATION_BYTES, TOTAL_BYTES, FITS) = range(len(OUTPUTS))

# entries of the scalar parameter vector
PARAMS = ("prefill_step_overhead_s", "host_launch_s", "decode_step_overhead_s", "window", "weight_bytes", "kv_bytes_per_token",
          "pp", "capacity_bytes", "stages", "transfer_s", "transfer_s_per_token", "has_energy", "idle_w",
          "tdp_w", "devices", "copies", "experts", "experts_per_token", "ep")
(P_PREFILL_STEP_S, P_HOST_LAUNCH_S, P_DECODE_STEP_S, P_WINDOW, P_WEIGHT_BYTES, P_KV_BYTES_PER_TOKEN, P_PP, P_CAPACITY_BYTES,
 P_STAGES, P_TRANSFER_S, P_TRANSFER_S_PER_TOKEN, P_HAS_ENERGY, P_IDLE_W, P_TDP_W, P_DEVICES,
 P_COPIES, P_EXPERTS, P_EXPERTS_PER_TOKEN, P_EP) = range(len(PARAMS))

# positions in Bound.kernel_args()
(A_FLOPS, A_MEM_S, A_REPEAT, A_GEMM_N, A_M_FEATURE, A_PEAK, A_OVERHEAD, A_TILE_M, A_TILE_N, A_UNITS,
 A_ALT_PEAK, A_ALT_MEM_S, A_ALT_OVERHEAD, A_OVERLAP, A_HALF_LENGTH, A_GEMV_MAX_M, A_GEMV_SCALE) = range(17)

GROWING, CAPPED = 0, 1      # decode segments: attended span c + 1 grows, or is capped at the window
BLOCK = 512                 # scenarios per parallel work item


@dataclasses.dataclass(frozen=True)
class Packed:
    """Arrays of one Prepared at one pipeline depth, as the kernels take them.

    prefill_args, decode_args  Bound.kernel_args("prefill") and ("decode")
    transient_bytes      [ops, features] bytes of a prefill operator's working set (weights
                         and KV columns zeroed): memory.activation_bytes = max_i row_i @ f
    joules_per_feature   [2, features] EnergyModel's prefill and decode joules per feature:
                         a phase's dynamic energy = copies x this[phase] @ f
    params               scalars named by PARAMS
    """

    prefill_args: tuple
    decode_args: tuple
    transient_bytes: np.ndarray
    joules_per_feature: np.ndarray
    params: np.ndarray


def pack(prep, tp: int = 1, pp: int = 1) -> Packed:
    """Flatten a predict.Prepared (prepared for ``tp``) and a pipeline depth into arrays, once
    for any B, S, N. Raises WorkloadError when pp > 1 and the device has no link."""
    table, bound, em, hw = prep.table, prep.bound, prep.energy, prep.hardware
    w = Workload(batch=1, prompt=1, output=1, tp=tp, pp=pp)
    transient = table.bytes.copy()
    transient[:, ONE] = 0.0
    transient[:, KV] = 0.0
    p = dict.fromkeys(PARAMS, 0.0)
    transfer_s = _stage_transfer_s(prep, w, 0)
    p.update(prefill_step_overhead_s=bound.profile.prefill_step_overhead_s, host_launch_s=bound.host_launch_s,
             decode_step_overhead_s=bound.step_overhead_s, window=table.window, pp=pp,
             stages=(w.microbatches + pp - 1) / pp,
             weight_bytes=memory_report(table, hw, w, prefill_features(1, 1, table.window)).weights_bytes,
             kv_bytes_per_token=table.kv_bytes_per_token,
             capacity_bytes=sum(level.capacity_bytes for level in hw.memory),
             transfer_s=transfer_s, transfer_s_per_token=_stage_transfer_s(prep, w, 1) - transfer_s,
             devices=w.devices, copies=w.microbatches * w.tp * w.dp * w.ep)
    if table.moe:
        p.update(experts=table.moe[0], experts_per_token=table.moe[1], ep=table.moe[2])
    joules = np.zeros((2, table.flops.shape[1]))
    if em is not None:
        p.update(has_energy=1.0, idle_w=em.idle_w, tdp_w=em.tdp_w)
        joules = np.ascontiguousarray([em.prefill_joules_per_feature, em.decode_joules_per_feature], dtype=np.float64)
    return Packed(bound.kernel_args("prefill"), bound.kernel_args("decode"), np.ascontiguousarray(transient),
                  joules, np.array([p[k] for k in PARAMS]))


def evaluate_many(packed: Packed, batch, prompt, output, parallel: bool = True) -> np.ndarray:
    """Results [len(OUTPUTS), scenarios] (rows named by OUTPUTS, fits 1.0 or 0.0) for
    equal-length integer arrays of batch B, prompt S and output N; fastest when scenarios
    sharing B and S are adjacent. ``parallel`` spreads blocks of scenarios over numba's
    threads; the serial kernel releases the GIL (threaded Dask workers). Both give
    bitwise-identical results."""
    b, s, n = (np.ascontiguousarray(a, dtype=np.int64) for a in (batch, prompt, output))
    out = np.empty((len(OUTPUTS), b.shape[0]))
    args = (packed.prefill_args, packed.decode_args, packed.transient_bytes, packed.joules_per_feature,
            packed.params, b, s, n, out)
    (_evaluate_parallel if parallel else _evaluate_serial)(*args)
    return out


@njit(cache=True)
def expert_features(tokens, params):
    """phases.touched_experts with the packed parameters."""
    return touched_experts(tokens, params[P_EXPERTS], params[P_EXPERTS_PER_TOKEN], params[P_EP])


@njit(cache=True)
def _decode_features(batch, window, params, f0, f1):
    """phases.decode_segments' features f0 + f1 c of both segment kinds: f0, f1 [2, features]."""
    f0[:] = 0.0
    f1[:] = 0.0
    experts, tokens_per_expert = expert_features(batch, params)
    for seg in (GROWING, CAPPED):
        f0[seg, ONE] = 1.0
        f0[seg, SEQ] = batch
        f0[seg, TOK] = batch
        f0[seg, EXP] = experts
        f0[seg, ETOK] = tokens_per_expert
    f0[GROWING, PAIR] = batch              # B (c + 1)
    f0[GROWING, KV] = batch
    f1[GROWING, PAIR] = batch
    f1[GROWING, KV] = batch
    f0[CAPPED, PAIR] = batch * window      # B W
    f0[CAPPED, KV] = batch * window


@njit(cache=True)
def _decode_lines(args, f0, f1, case, lines):
    """roofline.range_lines of both segment kinds: case [2, ops], lines [2, ops, 4, 2]."""
    for seg in (GROWING, CAPPED):
        range_lines(args[A_FLOPS], args[A_MEM_S], args[A_REPEAT], args[A_GEMM_N], args[A_M_FEATURE], args[A_PEAK],
                    args[A_OVERHEAD], args[A_TILE_M], args[A_TILE_N], args[A_UNITS], args[A_ALT_PEAK],
                    args[A_ALT_MEM_S], args[A_ALT_OVERHEAD], args[A_OVERLAP], args[A_HALF_LENGTH], args[A_GEMV_MAX_M],
                    args[A_GEMV_SCALE],
                    f0[seg], f1[seg], case[seg], lines[seg])


@njit(cache=True)
def _range_time_s(args, case, lines, f0, f1, lo, hi, feat_sum, scratch):
    """roofline.range_sums over positions [lo, hi] of one segment, summed over operators;
    adds the steps' summed features to ``feat_sum``."""
    count = hi - lo + 1.0
    for j in range(f0.shape[0]):
        feat_sum[j] += f0[j] * count + f1[j] * (lo + hi) * count / 2.0
    if hi < lo:
        return 0.0
    return range_sums(args[A_REPEAT], args[A_OVERHEAD], case, lines, lo, hi, scratch)


@njit(cache=True)
def _decode_time_s(args, case, lines, f0, f1, first, last, window, feat_sum, scratch):
    """Decode steps at positions first..last, split where phases.decode_segments splits them."""
    if window <= 0 or last + 1 <= window:
        return _range_time_s(args, case[GROWING], lines[GROWING], f0[GROWING], f1[GROWING], first, last, feat_sum,
                             scratch)
    split = window - 1.0                   # last position with c + 1 <= W
    total = 0.0
    if first <= split:
        total += _range_time_s(args, case[GROWING], lines[GROWING], f0[GROWING], f1[GROWING], first, split,
                               feat_sum, scratch)
    return total + _range_time_s(args, case[CAPPED], lines[CAPPED], f0[CAPPED], f1[CAPPED],
                                 max(first, split + 1.0), last, feat_sum, scratch)


@njit(cache=True)
def _dynamic_j(params, joules_per_feature, feats):
    """EnergyModel.dynamic_j(feats, phase, copies): joules above idle (joules_per_feature: the
    phase's row)."""
    joules = 0.0
    for j in range(feats.shape[0]):
        joules += joules_per_feature[j] * feats[j]
    return params[P_COPIES] * joules


@njit(cache=True)
def _power_limited_s(params, time_s, dynamic_j):
    """EnergyModel.power_limited_s: at least dynamic / (devices x (TDP - idle))."""
    headroom_w = params[P_DEVICES] * (params[P_TDP_W] - params[P_IDLE_W])
    return max(time_s, dynamic_j / headroom_w) if headroom_w > 0 else time_s


@njit(cache=True)
def _energy_j(params, time_s, dynamic_j):
    """EnergyModel.energy_j: devices x idle x t + min(dynamic, devices x (TDP - idle) x t)."""
    devices, idle = params[P_DEVICES], params[P_IDLE_W]
    return devices * idle * time_s + min(dynamic_j, devices * (params[P_TDP_W] - idle) * time_s)


@njit(cache=True)
def _activation_bytes(transient, feats):
    """memory.activation_bytes: the largest prefill operator working set."""
    act = -np.inf
    for i in range(transient.shape[0]):
        row = 0.0
        for j in range(feats.shape[0]):
            row += transient[i, j] * feats[j]
        act = max(act, row)
    return act


@njit(cache=True)
def _memory(params, act, b, s, n, out, k):
    """Memory rows of scenario k (memory_report's formulas); True when it fits."""
    window = params[P_WINDOW]
    positions = s + n
    span = min(positions, window) if window > 0 else positions
    kv = b * span * params[P_KV_BYTES_PER_TOKEN] / params[P_PP]
    total = params[P_WEIGHT_BYTES] + kv + act
    fits = total <= params[P_CAPACITY_BYTES]
    out[KV_CACHE_BYTES, k] = kv
    out[ACTIVATION_BYTES, k] = act
    out[TOTAL_BYTES, k] = total
    out[FITS, k] = 1.0 if fits else 0.0
    return fits


@njit(cache=True)
def _scenarios(prefill_args, decode_args, transient, joules_per_feature, params,
               batch, prompt, output, out, start, stop):
    """Scenarios start..stop-1 into out[:, k], reusing the prefill while (B, S) repeats and
    the decode lines while B repeats."""
    window, stages, energy = params[P_WINDOW], params[P_STAGES], params[P_HAS_ENERGY] > 0.0
    transfer_s, transfer_s_per_token = params[P_TRANSFER_S], params[P_TRANSFER_S_PER_TOKEN]
    n_ops = transient.shape[0]
    scratch = np.zeros(n_ops)
    feats = np.zeros(N_FEATURES)
    dec_feats = np.zeros(N_FEATURES)
    f0 = np.zeros((2, N_FEATURES))
    f1 = np.zeros((2, N_FEATURES))
    case = np.zeros((2, n_ops), dtype=np.int64)
    lines = np.zeros((2, n_ops, 4, 2))
    prev_b = prev_s = -1
    act = ttft = pre_dyn = 0.0
    have_prefill = False
    for k in range(start, stop):
        b, s, n = batch[k], prompt[k], output[k]
        if b != prev_b:
            _decode_features(float(b), window, params, f0, f1)
            _decode_lines(decode_args, f0, f1, case, lines)
            prev_b, prev_s = b, -1
        if s != prev_s:
            fill_prefill_features(feats, b, s, window, params[P_EXPERTS], params[P_EXPERTS_PER_TOKEN], params[P_EP])
            act = _activation_bytes(transient, feats)
            prev_s, have_prefill = s, False
        if not _memory(params, act, b, s, n, out, k):
            for r in range(TTFT_S, TOKENS_PER_J + 1):
                out[r, k] = np.nan
            continue
        if not have_prefill:
            device_s = evaluate_point(*prefill_args, feats)[0].sum() + params[P_PREFILL_STEP_S]
            ttft = (stages * max(device_s, params[P_HOST_LAUNCH_S])
                    + transfer_s + transfer_s_per_token * (b * s))
            if energy:
                pre_dyn = _dynamic_j(params, joules_per_feature[0], feats)
                ttft = _power_limited_s(params, ttft, pre_dyn)
            have_prefill = True
        steps = n - 1
        dec_feats[:] = 0.0
        dec_time = (stages * (_decode_time_s(decode_args, case, lines, f0, f1, float(s), float(s + n - 2), window,
                                             dec_feats, scratch) + params[P_DECODE_STEP_S] * steps)
                    + steps * (transfer_s + transfer_s_per_token * b))
        if energy:
            dec_dyn = _dynamic_j(params, joules_per_feature[1], dec_feats)
            dec_time = _power_limited_s(params, dec_time, dec_dyn)
            pre_e = _energy_j(params, ttft, pre_dyn)
            dec_e = _energy_j(params, dec_time, dec_dyn)
            out[PREFILL_ENERGY_J, k] = pre_e
            out[DECODE_STEP_ENERGY_J, k] = dec_e / steps if steps else np.nan
            out[ENERGY_J, k] = pre_e + dec_e
            out[TOKENS_PER_J, k] = b * n / (pre_e + dec_e)
        else:
            for r in (PREFILL_ENERGY_J, DECODE_STEP_ENERGY_J, ENERGY_J, TOKENS_PER_J):
                out[r, k] = np.nan
        e2e = ttft + dec_time
        out[TTFT_S, k] = ttft
        out[TPOT_S, k] = dec_time / steps if steps else np.nan
        out[E2E_S, k] = e2e
        out[TOKENS_PER_S, k] = b * n / e2e


@njit(cache=True, nogil=True)
def _evaluate_serial(prefill_args, decode_args, transient, joules_per_feature, params,
                     batch, prompt, output, out):
    _scenarios(prefill_args, decode_args, transient, joules_per_feature, params,
               batch, prompt, output, out, 0, batch.shape[0])


@njit(cache=True, parallel=True)
def _evaluate_parallel(prefill_args, decode_args, transient, joules_per_feature, params,
                       batch, prompt, output, out):
    n = batch.shape[0]
    for blk in prange((n + BLOCK - 1) // BLOCK):
        _scenarios(prefill_args, decode_args, transient, joules_per_feature, params,
                   batch, prompt, output, out, blk * BLOCK, min(n, (blk + 1) * BLOCK))
