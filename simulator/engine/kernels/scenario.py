"""One scenario, composed once: memory, TTFT, TPOT, energy, the power cap, the pipeline and
speculative decoding. ``predict`` runs it on one scenario, ``batch`` over arrays of them,
``plan`` and sweeps through batch; nothing else restates these formulas.

A model on a configuration is a tuple (``batch.Packed.target``, entries M_*): the prefill and
decode passes' roofline arrays, the prefill operators' transient bytes, the energy per
feature, and the scalars named by PARAMS. Workload B, S, N; the batch is split over
dp x ep replicas (rb = B / (dp ep) sequences each) and m pipeline microbatches
(mb = rb / m):

  memory    per device: weights + rb ((S + N) global + local_kept(S + N) local kv bytes per token)
            / pp + the largest prefill transient (at mb); fits when that is within capacity
  ttft      stages x max(prefill device time + prefill step overhead, host launch time)
            (then the power cap) + stage transfers of mb S tokens; stages = (m + pp - 1) / pp
            model-times
  decode    stages x (sum of decode steps at positions S .. S + N - 2 + (N - 1) step
            overhead) (then the power cap) + (N - 1) stage transfers of mb tokens;
            tpot = decode / (N - 1); chunked local layers' steps are summed chunk by chunk
            (chunked_sum_s), the others in closed form per segment; a stack that launches
            decode eagerly (no CUDA graphs) takes max(step, host launch time) a step
            (eager_range_s)
  power     energy = devices x idle x t + min(dynamic, headroom x t), headroom = devices x
            (TDP - idle) x m / (m + pp - 1) (a pipeline stage is busy m of the m + pp - 1 slots:
            splitting a pass into stages that run in turn does not raise its power budget); the
            limit does not stretch t (compute-bound kernels already run at its sustained rate,
            bind.py; memory-bound ones keep their speed at the lower clock); the dynamic energy is
            copies (m x tp x dp x ep table copies) x joules_per_feature @ features
  e2e       ttft + (N - 1) tpot; output tokens/s = B N / e2e; tokens/J = B N / energy
  speculative (Leviathan et al., 2023) a draft proposes k tokens, the target verifies them
            in one pass over k + 1 tokens per sequence at the mean decode position; with
            acceptance a an iteration yields E = (1 - a^(k+1)) / (1 - a) tokens, so
            tpot = (k x draft tpot + verify pass) / E; both models prefill (ttft adds) and
            both sit in memory with their KV caches
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.kernels.phases import (CAPPED, GROWING, causal_pairs, decode_step_span, fill_chunk_features,
                                             fill_decode_lines, fill_prefill_features, local_kept,
                                             mean_decode_position)
from simulator.engine.kernels import steptable
from simulator.engine.kernels.eager import eager_range_s
from simulator.engine.kernels.roofline import evaluate_point, pass_time_s, range_lines, range_sums
from simulator.engine.kernels.roofline import OP_LOCAL
from simulator.graph.ops import LKV, LPAIR, N_FEATURES

from simulator.engine.kernels.layout import *  # noqa: F401,F403  (the shared layout: scenario.X as before)


@njit(cache=True, error_model="numpy")
def dynamic_j(params, joules_per_feature, feats):
    """Joules above idle of a pass (or sum of passes) with features feats: copies x j @ f."""
    joules = 0.0
    for j in range(feats.shape[0]):
        joules += joules_per_feature[j] * feats[j]
    return params[P_COPIES] * joules


@njit(cache=True, error_model="numpy")
def _headroom_w(params):
    """Dynamic power the devices can draw on average over a pass: devices x (TDP - idle) x
    the fraction of the pass each is busy (a pipeline stage works m of the m + pp - 1 slots)."""
    return params[P_DEVICES] * (params[P_TDP_W] - params[P_IDLE_W]) * params[P_BUSY_FRACTION]


@njit(cache=True, error_model="numpy")
def energy_j(params, time_s, dyn_j):
    """devices x idle x t + min(dynamic, headroom x t)."""
    return params[P_DEVICES] * params[P_IDLE_W] * time_s + min(dyn_j, _headroom_w(params) * time_s)


@njit(cache=True, error_model="numpy")
def activation_bytes(transient, feats):
    """The largest prefill operator working set: max_i transient_i @ f."""
    act = -np.inf
    for i in range(transient.shape[0]):
        row = 0.0
        for j in range(feats.shape[0]):
            row += transient[i, j] * feats[j]
        act = max(act, row)
    return act


@njit(cache=True, error_model="numpy")
def kv_cache_bytes(params, sequences, positions):
    """sequences x (positions x global + local_kept(positions) x local kv bytes per token) / pp
    (one device's stages; the global part is all layers' bytes less the local layers')."""
    local = params[P_LOCAL_KV_BYTES_PER_TOKEN]
    per_sequence = (positions * (params[P_KV_BYTES_PER_TOKEN] - local)
                    + local_kept(positions, params[P_WINDOW]) * local)
    return sequences * per_sequence / params[P_PP]


@njit(cache=True, error_model="numpy")
def _memory(params, act, sequences, positions):
    """(KV cache bytes, total bytes, fits) per device: weights + the KV cache of ``sequences``
    over ``positions`` + the largest transient ``act``, within capacity."""
    kv = kv_cache_bytes(params, sequences, positions)
    total = params[P_WEIGHT_BYTES] + kv + act
    return kv, total, total <= params[P_CAPACITY_BYTES]


@njit(cache=True, error_model="numpy")
def memory_rows(params, act, sequences, positions, res):
    """_memory into res's memory rows (a result vector); True when within capacity."""
    kv, total, fits = _memory(params, act, sequences, positions)
    res[WEIGHTS_BYTES], res[KV_CACHE_BYTES], res[ACTIVATION_BYTES], res[TOTAL_BYTES] = \
        params[P_WEIGHT_BYTES], kv, act, total
    res[FITS] = 1.0 if fits else 0.0
    return fits


@njit(cache=True, error_model="numpy")
def _memory_into(params, act, sequences, positions, out, k):
    """memory_rows into column k of a result matrix (no column view: it costs a reference count)."""
    kv, total, fits = _memory(params, act, sequences, positions)
    out[WEIGHTS_BYTES, k], out[KV_CACHE_BYTES, k], out[ACTIVATION_BYTES, k], out[TOTAL_BYTES, k] = \
        params[P_WEIGHT_BYTES], kv, act, total
    out[FITS, k] = 1.0 if fits else 0.0
    return fits


@njit(cache=True, error_model="numpy")
def transfer_s(params, tokens):
    """The (m + pp - 2) stage-boundary transfers of one pass over ``tokens`` tokens."""
    return params[P_TRANSFER_S] + params[P_TRANSFER_S_PER_TOKEN] * tokens


@njit(cache=True, error_model="numpy")
def tokens_per_iteration(draft_tokens, acceptance):
    """E = (1 - a^(k+1)) / (1 - a): tokens one speculative iteration yields (k + 1 at a = 1)."""
    if acceptance >= 1.0:
        return draft_tokens + 1.0
    return (1.0 - acceptance ** (draft_tokens + 1.0)) / (1.0 - acceptance)


@njit(cache=True, error_model="numpy")
def _decode_lines(flops, mem_s, alt_mem_s, op_dec, params, mb, ws):
    """Decode operator lines of both segment kinds at batch mb (once per batch size), and
    their step tables when ws's S_TABLE is set."""
    f0, f1, case, lines, scratch, cuts, pieces = ws[W_F0], ws[W_F1], ws[W_CASE], ws[W_LINES], ws[W_SCRATCH], \
        ws[W_CUTS], ws[W_PIECES]
    fill_decode_lines(mb, params[P_EXPERTS], params[P_EXPERTS_PER_TOKEN], params[P_EP], params[P_WINDOW], f0, f1)
    for seg in range(2):
        range_lines(flops, mem_s, alt_mem_s, op_dec, f0[seg], f1[seg], case[seg], lines[seg])
        if ws[W_STATE][S_TABLE] > 0.0 and params[P_WINDOW] >= 0.0:      # chunked: no tables
            p = pieces[seg]
            cuts[seg, -1] = steptable.build(op_dec, case[seg], lines[seg], scratch, cuts[seg], p[0], p[1], p[2])


@njit(cache=True, error_model="numpy")
def decode_features(f0, f1, window, first, last, feat_sum):
    """The features of the decode steps at positions first..last summed into feat_sum, from
    _decode_lines' f0 + f1 c per segment (chunked local layers' P_l, K_l past the first
    chunk: B sum of (c mod C) + 1)."""
    chunk = -window if window < 0.0 else 0.0
    for j in range(feat_sum.shape[0]):
        feat_sum[j] = 0.0
    for seg in range(2):
        lo, hi = decode_step_span(seg, first, last, window)
        if hi < lo:
            continue
        count = hi - lo + 1.0
        for j in range(feat_sum.shape[0]):
            feat_sum[j] += f0[seg, j] * count + f1[seg, j] * (lo + hi) * count / 2.0
        if seg == CAPPED and chunk > 0.0:
            for j in (LPAIR, LKV):             # B sum of (c mod C) + 1
                feat_sum[j] += f1[GROWING, j] * (causal_pairs(hi + 1.0, -chunk) - causal_pairs(lo, -chunk))


@njit(cache=True, error_model="numpy")
def _table_sum_s(pieces, cuts, window, first, last):
    """The decode steps at positions first..last summed from the step tables (steptable.total
    per segment): no chunked local layers, a graphed decode."""
    total = 0.0
    for seg in range(2):
        lo, hi = decode_step_span(seg, first, last, window)
        if hi >= lo:
            total += steptable.total(pieces, seg, int(cuts[seg, cuts.shape[1] - 1]), lo, hi)
    return total


@njit(cache=True, error_model="numpy")
def _decode_sum_s(op_dec, params, case, lines, scratch, dec_t, local_t, first, last, keep):
    """The decode steps at positions first..last summed per operator (into dec_t when
    ``keep``): closed-form range sums per segment (eager_range_s when the stack launches decode
    eagerly), chunked local layers' steps past the first chunk by chunked_sum_s."""
    window = params[P_WINDOW]
    chunk = -window if window < 0.0 else 0.0
    host = params[P_DECODE_HOST_S]
    if keep:
        dec_t[:] = 0.0
    total = 0.0
    for seg in range(2):
        lo, hi = decode_step_span(seg, first, last, window)
        if hi < lo:
            continue
        if seg == CAPPED and chunk > 0.0:
            total += chunked_sum_s(op_dec, case[GROWING], lines[GROWING], lo, hi, chunk, scratch, local_t)
        elif host > 0.0:
            total += eager_range_s(op_dec, case[seg], lines[seg], lo, hi, host, scratch)
        else:
            total += range_sums(op_dec, case[seg], lines[seg], lo, hi, scratch)
        if keep:
            for i in range(dec_t.shape[0]):
                dec_t[i] += scratch[i]
    return total


@njit(cache=True, error_model="numpy")
def chunked_sum_s(op, case, lines, lo, hi, chunk, time_s, local_s):
    """Decode steps at positions lo..hi (all past the first chunk) of a chunked-attention model,
    per operator into time_s (x repeat), from the GROWING lines (every span c + 1): a global
    operator's at c, a local one's (op OP_LOCAL) at c mod C, summed over the partial first
    chunk, the whole chunks between (all alike) and the partial last one; returns the total."""
    range_sums(op, case, lines, lo, hi, time_s)
    for i in range(op.shape[0]):
        if op[i, OP_LOCAL] > 0.0:
            time_s[i] = 0.0
    first, last = np.floor(lo / chunk), np.floor(hi / chunk)
    if first == last:
        pieces = ((lo - first * chunk, hi - first * chunk, 1.0), (0.0, -1.0, 0.0), (0.0, -1.0, 0.0))
    else:
        pieces = ((lo - first * chunk, chunk - 1.0, 1.0), (0.0, chunk - 1.0, last - first - 1.0),
                  (0.0, hi - last * chunk, 1.0))
    for a, b, times in pieces:
        if times <= 0.0:
            continue
        range_sums(op, case, lines, a, b, local_s)
        for i in range(op.shape[0]):
            if op[i, OP_LOCAL] > 0.0:
                time_s[i] += times * local_s[i]
    return time_s.sum()


@njit(cache=True, error_model="numpy")
def plain(model, ws, batch, prompt, output, require_fit, out, start, stop):
    """Scenarios start..stop-1 of one model into out[:, k] (the target of a speculative
    configuration without its draft). With ws's S_KEEP_OPS set, the last scenario's
    per-operator prefill and summed decode times are in ws[W_PREFILL_T], ws[W_DECODE_T].
    Times are NaN when a scenario does not fit and ``require_fit``, or when the batch does
    not split evenly. Consecutive scenarios sharing B (and S) reuse decode lines (and the
    prefill)."""
    flops, mem_s, alt_mem_s, op_pre, op_dec, transient, joules, params = model
    feats, dec_feats, f0, f1, case, lines, scratch, state, pre_t, dec_t, cuts, pieces, local_t = ws
    keep, stages, energy = state[S_KEEP_OPS] > 0.0, params[P_STAGES], params[P_HAS_ENERGY] > 0.0
    speculative = params[P_DRAFT_TOKENS] > 0.0
    prefill_j, decode_j = joules[0], joules[1]      # row views once, not per scenario (roofline.py: speed)
    window = params[P_WINDOW]
    # step tables (built per batch size, _decode_lines): not for chunked layers or eager decode
    tables = state[S_TABLE] > 0.0 and not keep and window >= 0.0 and params[P_DECODE_HOST_S] == 0.0
    for k in range(start, stop):
        b, s, n = float(batch[k]), float(prompt[k]), float(output[k])
        for r in range(N_OUTPUTS):
            out[r, k] = np.nan
        rb, mb = b / params[P_REPLICAS], b / (params[P_REPLICAS] * params[P_MICROBATCHES])
        if mb != np.floor(mb) or mb < 1:
            out[FITS, k] = 0.0
            continue
        if state[S_BATCH] != mb:
            _decode_lines(flops, mem_s, alt_mem_s, op_dec, params, mb, ws)
            state[S_PROMPT] = -1.0
        if state[S_PROMPT] != s or state[S_BATCH] != mb:
            fill_prefill_features(feats, mb, s, params[P_WINDOW], params[P_EXPERTS], params[P_EXPERTS_PER_TOKEN],
                                  params[P_EP])
            state[S_ACT] = activation_bytes(transient, feats)
            state[S_BATCH], state[S_PROMPT], state[S_HAVE_PREFILL] = mb, s, 0.0
        fits = _memory_into(params, state[S_ACT], rb, s + n, out, k)
        if require_fit and not fits and not (speculative and n >= 2):    # speculation checks both models
            continue
        if state[S_HAVE_PREFILL] == 0.0:
            state[S_PREFILL_DEVICE_S] = pass_time_s(flops, mem_s, alt_mem_s, op_pre, feats, pre_t) \
                + params[P_PREFILL_STEP_S]
            state[S_PRE_DYN_J] = dynamic_j(params, prefill_j, feats) if energy else 0.0
            state[S_HAVE_PREFILL] = 1.0
        out[PREFILL_DEVICE_S, k] = state[S_PREFILL_DEVICE_S]
        ttft = stages * max(state[S_PREFILL_DEVICE_S], params[P_HOST_LAUNCH_S])    # the stages' work
        steps = n - 1
        if tables:
            dec = _table_sum_s(pieces, cuts, window, s, s + n - 2)
        else:
            dec = _decode_sum_s(op_dec, params, case, lines, scratch, dec_t, local_t, s, s + n - 2, keep)
        if energy:
            decode_features(f0, f1, window, s, s + n - 2, dec_feats)
        dec = stages * (dec + params[P_DECODE_STEP_S] * steps)
        if energy:
            pre_dyn, dec_dyn = state[S_PRE_DYN_J], dynamic_j(params, decode_j, dec_feats)
        ttft += transfer_s(params, mb * s)          # then the stage-boundary transfers
        dec += steps * transfer_s(params, mb)
        if energy:
            out[PREFILL_ENERGY_J, k] = energy_j(params, ttft, pre_dyn)
            dec_e = energy_j(params, dec, dec_dyn)
            if steps:
                out[DECODE_STEP_ENERGY_J, k] = dec_e / steps
            out[ENERGY_J, k] = out[PREFILL_ENERGY_J, k] + dec_e
            out[TOKENS_PER_J, k] = b * n / out[ENERGY_J, k]
        out[TTFT_S, k] = ttft
        if steps:
            out[TPOT_S, k] = out[PLAIN_TPOT_S, k] = dec / steps
        out[E2E_S, k] = out[PLAIN_E2E_S, k] = ttft + dec
        out[TOKENS_PER_S, k] = b * n / out[E2E_S, k]


@njit(cache=True, error_model="numpy", inline="always")
def decode_step_s(device_s, host_s, params):
    """One decode step's seconds on one stage: max(device seconds, the host's launch time
    host_s; 0 for a stack that replays a CUDA graph) + the decode step overhead."""
    return max(device_s, host_s) + params[P_DECODE_STEP_S]


@njit(cache=True, error_model="numpy")
def _verify_pass(model, feats, mb, s, n):
    """(seconds, dynamic joules) of the target's pass over k + 1 tokens per sequence at the
    mean decode position, composed like a decode step (stages, transfers, power cap; at least
    the host's launch time when the stack launches decode eagerly)."""
    flops, mem_s, alt_mem_s, _, op_dec, _, joules, params = model
    k = params[P_DRAFT_TOKENS]
    fill_chunk_features(feats, mb, mean_decode_position(s, n), k + 1.0, params[P_WINDOW], params[P_EXPERTS],
                        params[P_EXPERTS_PER_TOKEN], params[P_EP])
    t = evaluate_point(flops, mem_s, alt_mem_s, op_dec, feats)[0].sum()
    t = params[P_STAGES] * decode_step_s(t, params[P_DECODE_HOST_S], params)
    link_s = transfer_s(params, mb * (k + 1.0))
    if params[P_HAS_ENERGY] <= 0.0:
        return t + link_s, 0.0
    dyn = dynamic_j(params, joules[1], feats)
    return t + link_s, dyn


@njit(cache=True, error_model="numpy")
def scenarios(target, draft, ws_t, ws_d, batch, prompt, output, require_fit, out, start, stop):
    """Scenarios start..stop-1 into out[:, k]: plain, or speculative when the target's
    draft_tokens > 0 (``draft`` is then the draft model; pass the target again otherwise)."""
    plain(target, ws_t, batch, prompt, output, require_fit, out, start, stop)
    if target[M_PARAMS][P_DRAFT_TOKENS] <= 0.0:
        return
    drafted = np.empty((stop - start, N_OUTPUTS)).T          # the layout out has (batch.results_array)
    plain(draft, ws_d, batch[start:stop], prompt[start:stop], output[start:stop], False, drafted, 0, stop - start)
    for k in range(start, stop):
        if output[k] >= 2 and not np.isnan(out[TTFT_S, k]):
            _speculate(target, ws_t[W_DEC_FEATS], out[:, k], drafted[:, k - start], float(batch[k]),
                       float(prompt[k]), float(output[k]), require_fit)


@njit(cache=True, error_model="numpy")
def _speculate(target, feats, res, d, b, s, n, require_fit):
    """Compose the target's (res) and the draft's (d) plain results into res."""
    params = target[M_PARAMS]
    k, a = params[P_DRAFT_TOKENS], params[P_ACCEPTANCE]
    mb = b / (params[P_REPLICAS] * params[P_MICROBATCHES])
    verify_s, verify_dyn = _verify_pass(target, feats, mb, s, n)
    per_iteration = tokens_per_iteration(k, a)
    res[DRAFT_STEP_S], res[VERIFY_PASS_S], res[TOKENS_PER_ITERATION] = d[TPOT_S], verify_s, per_iteration
    res[TPOT_S] = (k * d[TPOT_S] + verify_s) / per_iteration
    res[TTFT_S] += d[TTFT_S]
    res[E2E_S] = res[TTFT_S] + (n - 1) * res[TPOT_S]
    res[TOKENS_PER_S] = b * n / res[E2E_S]
    if params[P_HAS_ENERGY] > 0.0:
        step_j = (k * d[DECODE_STEP_ENERGY_J] + energy_j(params, verify_s, verify_dyn)) / per_iteration
        res[DECODE_STEP_ENERGY_J] = step_j
        res[PREFILL_ENERGY_J] += d[PREFILL_ENERGY_J]
        res[ENERGY_J] = res[PREFILL_ENERGY_J] + (n - 1) * step_j
        res[TOKENS_PER_J] = b * n / res[ENERGY_J]
    res[WEIGHTS_BYTES] += d[WEIGHTS_BYTES]
    res[KV_CACHE_BYTES] += d[KV_CACHE_BYTES]
    res[TOTAL_BYTES] += d[WEIGHTS_BYTES] + d[KV_CACHE_BYTES]
    fits = res[TOTAL_BYTES] <= params[P_CAPACITY_BYTES]
    res[FITS] = 1.0 if fits else 0.0
    if require_fit and not fits:
        for r in TIMES:
            res[r] = np.nan

