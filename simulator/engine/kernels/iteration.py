"""The cost of one serving iteration: a mixed batch of decode tokens and prefill chunks.

An iteration is a list of entries (count, start, length): ``count`` sequences each adding
``length`` new tokens at positions start..start+length-1 over ``start`` cached ones (a
decode token is an entry of length 1 at its position c; a prefill chunk one of its chunk
length). Its feature vector is the sum of each entry's chunk features (phases.
fill_chunk_features: T = count x length, P = count x (pairs(start + length) - pairs(start)),
K = count x min(start + length, W), SEQ = count), with ONE = 1 (the weights are read once
for the whole batch) and the experts' EXP, ETOK from the total tokens (touched_experts): one
forward pass over the flattened tokens, as vLLM runs it.

  device_s   an iteration with a prefill chunk: the prefill pass's operators
             (roofline.evaluate_point at those features, the attention ramp at L = P / T);
             a decode-only one: the decode step's operator lines (roofline.range_lines at
             batch B = sum of counts, the same lines predict sums for its TPOT) at the mean
             position c = sum(count x start) / B, whose features B (c + 1) pairs and cached
             positions are the batch's exactly; with a sliding window that some sequence has
             outgrown, evaluate_point at the summed features instead
  time_s     eager (a chunk, or a stack without decode graphs): the host's launches and the
             device's work overlapping, roofline.combine(device_s + prefill step overhead,
             host_s, p): their p-norm (p 0: the max), host_s the host launch time of one
             pass, or where the profile has the eager mixed pass's host terms (``host``,
             calibration/serving_host.py) mixed_host_s of the iteration's groups and p its
             overlap exponent (fitted with them); a decode-only step without those terms:
             scenario.decode_step_s (max(device_s, host launch time when eager) + decode
             step overhead, predict's TPOT step); plus,
             with those terms, the scheduler's seconds at the running count (the power
             limit stretches no pass: scenario.py's power note); the serving loop adds
             first_use_s where an eager pass's token count is new to the engine's process
  energy_j   scenario.energy_j of that time and the pass's dynamic joules (the prefill or
             decode energy per feature)
Only pp = 1 configurations (one stage; the serving loop checks it).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.kernels.phases import GROWING, fill_chunk_features, fill_decode_lines, touched_experts
from simulator.engine.kernels.roofline import OP_OVERHEAD, OP_REPEAT, _instance, combine, line_step_s, range_lines
from simulator.engine.kernels.scenario import (M_ALT_MEM_S, M_FLOPS, M_JOULES, M_MEM_S, M_OP_DECODE, M_OP_PREFILL,
                                               M_PARAMS, P_EP, P_EXPERTS, P_EXPERTS_PER_TOKEN,
                                               P_HAS_ENERGY, P_HOST_LAUNCH_S, P_PREFILL_STEP_S, P_WINDOW, decode_step_s,
                                               dynamic_j, energy_j)
from simulator.graph.ops import EXP, ETOK, N_FEATURES, ONE, TOK

# entries of a decode-line cache (decode_cache): per batch size B, its lines and features, and
# the decode energy row's dot products with them (joules above idle = copies x (J0 + J1 c))
D_READY, D_CASE, D_LINES, D_F0, D_F1, D_J = range(6)
# host terms of an eager mixed pass (host_terms), seconds an iteration; H_ON 0: none
HOST_TERMS = ("on", "pass", "layers", "decode", "fresh", "cached", "concat", "scheduler",
              "scheduler_running", "overlap", "first_shape")
(H_ON, H_PASS, H_LAYERS, H_DECODE, H_FRESH, H_CACHED, H_CONCAT, H_SCHED, H_SCHED_RUNNING, H_OVERLAP,
 H_FIRST_SHAPE) = range(11)
N_HOST = len(HOST_TERMS)


def host_terms(mixed_host_s: dict, layers: int, overlap: float = 0.0) -> np.ndarray:
    """The ``host`` vector of a profile's mixed_host fields (calibration/serving_host.TERMS,
    s) for a model of ``layers`` layers: the per-layer terms times the layers, and the
    host/device overlap exponent (the profile's mixed_overlap_exponent); zeros (off) when the
    profile has no host terms."""
    h = np.zeros(N_HOST)
    if not mixed_host_s:
        return h
    h[H_OVERLAP] = overlap
    g = mixed_host_s.get
    h[H_ON], h[H_PASS] = 1.0, g("pass", 0.0)
    h[H_LAYERS], h[H_DECODE] = layers * g("layer", 0.0), layers * g("decode_layer", 0.0)
    h[H_FRESH], h[H_CACHED] = layers * g("fresh_chunk_layer", 0.0), layers * g("cached_chunk_layer", 0.0)
    h[H_CONCAT] = layers * g("concat_layer", 0.0)
    h[H_SCHED], h[H_SCHED_RUNNING] = g("scheduler", 0.0), g("scheduler_per_running", 0.0)
    h[H_FIRST_SHAPE] = g("first_shape", 0.0)
    return h


@njit(cache=True)
def host_at(host, seg_start_s, seg_scale, k, now, out):
    """The host terms at simulated time ``now`` when the host's speed moves in segments
    (segment j from seg_start_s[j] on runs at seg_scale[j] x ``host``'s terms:
    serving/host_state.host_segments), into ``out`` (the on flag and the overlap exponent
    kept); ``k`` the segment in use, returned updated (time only grows). No segments: out is
    host, k stays -1."""
    if seg_start_s.shape[0] == 0:
        return k
    j = max(k, 0)
    while j + 1 < seg_start_s.shape[0] and seg_start_s[j + 1] <= now:
        j += 1
    if j != k:
        for i in range(host.shape[0]):
            out[i] = host[i] * seg_scale[j]
        out[H_ON], out[H_OVERLAP] = host[H_ON], host[H_OVERLAP]
    return j


def new_shapes(max_tokens: int) -> np.ndarray:
    """An engine process's record of the token counts its passes have run (first_use_s):
    none yet, for passes of 0..max_tokens tokens."""
    return np.zeros(max_tokens + 1, dtype=np.uint8)


@njit(cache=True, inline="always")
def first_use_s(host, seen, tokens):
    """Seconds an eager pass of ``tokens`` tokens adds when the process has not run that token
    count before (the GEMMs' first use of that row count: the library's kernel choice and
    loading, measured by validation/harness/serving_shapes.py, fitted by calibration/
    serving_host.py as ``first_shape``); marks it run. 0 without host terms, and for a count
    beyond ``seen`` (an empty ``seen``: not tracked)."""
    if host[H_ON] <= 0.0 or host[H_FIRST_SHAPE] <= 0.0 or tokens >= seen.shape[0] or seen[tokens] != 0:
        return 0.0
    seen[tokens] = 1
    return host[H_FIRST_SHAPE]


@njit(cache=True, inline="always")
def mixed_host_s(host, starts, lengths, n_entries):
    """Host seconds of an eager mixed pass: pass + layers + decode [D > 0] + fresh F
    + cached K + concat [groups > 1] (calibration/serving_host.py; the per-layer terms
    already times the layers)."""
    decode = 0
    fresh = 0
    cached = 0
    for e in range(n_entries):
        if lengths[e] == 1:
            decode = 1
        elif starts[e] == 0:
            fresh += 1
        else:
            cached += 1
    t = host[H_PASS] + host[H_LAYERS] + host[H_DECODE] * decode
    t += host[H_FRESH] * fresh + host[H_CACHED] * cached
    if decode + fresh + cached > 1:
        t += host[H_CONCAT]
    return t


@njit(cache=True)
def decode_cache(n_ops, max_batch):
    """Empty per-batch-size caches of the decode step's operator lines, for B = 0..max_batch."""
    return (np.zeros(max_batch + 1, dtype=np.int64), np.zeros((max_batch + 1, n_ops), dtype=np.int64),
            np.zeros((max_batch + 1, n_ops, 4, 2)), np.zeros((max_batch + 1, N_FEATURES)),
            np.zeros((max_batch + 1, N_FEATURES)), np.zeros((max_batch + 1, 2)))


@njit(cache=True)
def _decode_lines_at(model, cache, batch):
    """Fill the cache's lines of a decode step at batch ``batch`` (the growing segment) once."""
    if cache[D_READY][batch] == 1:
        return
    params = model[M_PARAMS]
    f0 = np.zeros((2, N_FEATURES))
    f1 = np.zeros((2, N_FEATURES))
    fill_decode_lines(float(batch), params[P_EXPERTS], params[P_EXPERTS_PER_TOKEN], params[P_EP], 0.0, f0, f1)
    range_lines(model[M_FLOPS], model[M_MEM_S], model[M_ALT_MEM_S], model[M_OP_DECODE], f0[GROWING], f1[GROWING],
                cache[D_CASE][batch], cache[D_LINES][batch])
    cache[D_F0][batch, :] = f0[GROWING]
    cache[D_F1][batch, :] = f1[GROWING]
    cache[D_J][batch, 0] = dynamic_j(params, model[M_JOULES][1], f0[GROWING])
    cache[D_J][batch, 1] = dynamic_j(params, model[M_JOULES][1], f1[GROWING])
    cache[D_READY][batch] = 1


@njit(cache=True, inline="always")
def decode_step_device_s(model, cache, batch, position):
    """Device seconds of a decode step of ``batch`` sequences at mean position ``position``
    (a float): the sum over operators of their range_lines lines at c (roofline.line_step_s),
    x repeat."""
    if cache[D_READY][batch] == 0:
        _decode_lines_at(model, cache, batch)
    op = model[M_OP_DECODE]
    case, lines = cache[D_CASE][batch], cache[D_LINES][batch]
    total = 0.0
    for i in range(op.shape[0]):
        total += line_step_s(case[i], lines[i], op[i, OP_OVERHEAD], position) * op[i, OP_REPEAT]
    return total


@njit(cache=True, inline="always")
def pass_device_s(flops, mem_s, alt_mem_s, op, feats):
    """roofline.evaluate_point's total at one feature vector, without its per-operator arrays."""
    total = 0.0
    for i in range(flops.shape[0]):
        total += _instance(i, flops, mem_s, alt_mem_s, op, feats)[0] * op[i, OP_REPEAT]
    return total


@njit(cache=True, inline="always")
def mixed_features(model, cache, counts, starts, lengths, n_entries, outgrown, feats, scratch):
    """The summed feature vector of an iteration's entries into ``feats`` (module docstring).
    Its decode tokens, unless a sliding window caps one (``outgrown``), add up to the decode
    step's features at their batch and mean position (the decode-line cache's f0 + f1 c:
    B (c + 1) pairs and cached positions), so only the chunks are summed one by one."""
    params = model[M_PARAMS]
    window = params[P_WINDOW]
    feats[:] = 0.0
    decode_batch = 0
    position_sum = 0.0
    for e in range(n_entries):
        if lengths[e] == 1 and not outgrown and decode_batch + counts[e] < cache[D_READY].shape[0]:
            decode_batch += counts[e]
            position_sum += counts[e] * float(starts[e])
            continue
        fill_chunk_features(scratch, float(counts[e]), float(starts[e]), float(lengths[e]), window, 0.0, 0.0, 1.0)
        for j in range(N_FEATURES):
            feats[j] += scratch[j]
    if decode_batch > 0:
        if cache[D_READY][decode_batch] == 0:
            _decode_lines_at(model, cache, decode_batch)
        position = position_sum / decode_batch
        for j in range(N_FEATURES):
            feats[j] += cache[D_F0][decode_batch, j] + cache[D_F1][decode_batch, j] * position
    feats[ONE] = 1.0
    feats[EXP], feats[ETOK] = touched_experts(feats[TOK], params[P_EXPERTS], params[P_EXPERTS_PER_TOKEN],
                                              params[P_EP])


@njit(cache=True, inline="always")
def _time_s(params, device_s, eager, host, host_s, running):
    """Seconds of a pass of device_s device seconds (module docstring: time_s, before the
    cap); ``eager`` for a chunk or an eager pass with the host terms, else a decode step
    (host_s its launch time, 0 when graphed)."""
    if eager:
        time_s = combine(device_s + params[P_PREFILL_STEP_S], host_s, host[H_OVERLAP])
    else:
        time_s = decode_step_s(device_s, host_s, params)
    if host[H_ON] > 0.0:
        time_s += host[H_SCHED] + host[H_SCHED_RUNNING] * running
    return time_s


@njit(cache=True, inline="always")
def _finish_cost(model, params, device_s, eager, prefill, host, host_s, running, feats):
    """(seconds, joules) of a pass of device_s seconds (module docstring: time_s, energy_j)."""
    time_s = _time_s(params, device_s, eager, host, host_s, running)
    if params[P_HAS_ENERGY] <= 0.0:
        return time_s, 0.0
    dyn = dynamic_j(params, model[M_JOULES][0 if prefill else 1], feats)
    return time_s, energy_j(params, time_s, dyn)


@njit(cache=True, inline="always")
def decode_only_cost(model, cache, batch, position_sum, eager_decode, host, running):
    """(seconds, joules) of a decode-only iteration of ``batch`` sequences whose positions
    sum to ``position_sum`` (none past a local span, batch within the cache): the decode
    step's lines at the mean position c, its joules above idle dynamic_j's of f0 + f1 c
    (linear in c: the cached J0 + J1 c). The serving loop's decode runs call it directly."""
    params = model[M_PARAMS]
    position = position_sum / batch
    device_s = decode_step_device_s(model, cache, batch, position)
    mixed = eager_decode and host[H_ON] > 0.0          # the harness's eager pass, its host terms
    host_s = params[P_HOST_LAUNCH_S] if eager_decode else 0.0
    if mixed:
        host_s = host[H_PASS] + host[H_LAYERS] + host[H_DECODE]
    time_s = _time_s(params, device_s, mixed, host, host_s, running)
    if params[P_HAS_ENERGY] <= 0.0:
        return time_s, 0.0
    dyn = cache[D_J][batch, 0] + cache[D_J][batch, 1] * position
    return time_s, energy_j(params, time_s, dyn)


@njit(cache=True, inline="always")
def _device_s(model, cache, counts, starts, lengths, n_entries, feats, scratch):
    """(device seconds, has a chunk) of an iteration that is not a plain decode run's step
    (module docstring: device_s); feats gets its feature vector."""
    params = model[M_PARAMS]
    window = params[P_WINDOW]
    batch = 0
    position_sum = 0.0
    prefill = False
    outgrown = False
    for e in range(n_entries):
        batch += counts[e]
        position_sum += counts[e] * float(starts[e])
        if lengths[e] > 1:
            prefill = True
        if window != 0 and starts[e] + 1 > abs(window):      # a local span (window or chunk) outgrown
            outgrown = True
    if not prefill and not outgrown and batch < cache[D_READY].shape[0]:
        position = position_sum / batch
        device_s = decode_step_device_s(model, cache, batch, position)
        for j in range(N_FEATURES):
            feats[j] = cache[D_F0][batch, j] + cache[D_F1][batch, j] * position
        return device_s, prefill
    mixed_features(model, cache, counts, starts, lengths, n_entries, outgrown, feats, scratch)
    op = model[M_OP_PREFILL] if prefill else model[M_OP_DECODE]
    return pass_device_s(model[M_FLOPS], model[M_MEM_S], model[M_ALT_MEM_S], op, feats), prefill


@njit(cache=True)
def iteration_device_s(model, cache, counts, starts, lengths, n_entries, feats, scratch):
    """Device seconds of one iteration over its entries with the prefill step overhead of an
    eager pass (what the host's launches overlap with: _time_s), and whether it has a chunk;
    the serving microbenchmark's fit (calibration/serving_host.py) calls it per point."""
    device_s, prefill = _device_s(model, cache, counts, starts, lengths, n_entries, feats, scratch)
    return device_s + model[M_PARAMS][P_PREFILL_STEP_S], prefill


@njit(cache=True)
def iteration_cost(model, cache, counts, starts, lengths, n_entries, eager_decode, host, running, feats, scratch):
    """(seconds, joules) of one iteration over its entries (module docstring).
    ``eager_decode``: decode-only iterations run eagerly too (no CUDA graph); ``host``: the
    host_terms vector; ``running``: requests running after the step."""
    params = model[M_PARAMS]
    window = params[P_WINDOW]
    batch = 0
    position_sum = 0.0
    plain_decode = n_entries > 0
    for e in range(n_entries):
        batch += counts[e]
        position_sum += counts[e] * float(starts[e])
        if lengths[e] > 1 or counts[e] != 1 or (window != 0 and starts[e] + 1 > abs(window)):
            plain_decode = False
    if plain_decode and batch < cache[D_READY].shape[0]:
        return decode_only_cost(model, cache, batch, position_sum, eager_decode, host, running)
    device_s, prefill = _device_s(model, cache, counts, starts, lengths, n_entries, feats, scratch)
    eager = prefill or (eager_decode and host[H_ON] > 0.0)
    host_s = params[P_HOST_LAUNCH_S] if prefill or eager_decode else 0.0
    if eager and host[H_ON] > 0.0:
        host_s = mixed_host_s(host, starts, lengths, n_entries)
    return _finish_cost(model, params, device_s, eager, prefill, host, host_s, running, feats)
