"""Feature vectors (ops.py) of a prefill pass and of decode steps.

Local attention (lower.OpTable.window): a query at position c (from 0) attends local_span(c)
keys in a local layer: c + 1 (no window, W = 0), min(c + 1, W) (a sliding window, W > 0),
(c mod C) + 1 (chunks of C = -W, Llama 4's chunked attention); global layers attend c + 1.
Prefill of B sequences of S tokens from position 0: T = B S; causal pairs P = B S(S+1)/2,
local pairs P_l = B sum_{c<S} local_span(c) (causal_pairs); K = K_l = B S.
Decode step at position c (input token at c): T = B; P = K = B (c + 1); P_l = K_l =
B local_span(c). A mixture of experts adds EXP and ETOK (ops.py), which depend on T only
(expert_features).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.graph.ops import ETOK, EXP, KV, LKV, LPAIR, N_FEATURES, ONE, PAIR, SEQ, TOK


@njit(cache=True, error_model="numpy")
def causal_pairs(seq_len: float, window: float) -> float:
    """sum_{c=0..S-1} local_span(c): query-key pairs of one causal sequence of S tokens:
    S(S+1)/2 (W = 0); W(W+1)/2 + (S - W) W for S > W (sliding); q C(C+1)/2 + r(r+1)/2 with
    S = q C + r (chunks of C = -W: exact over whole chunks and the remainder)."""
    if window < 0:
        chunk = -window
        whole = np.floor(seq_len / chunk)
        rest = seq_len - whole * chunk
        return whole * chunk * (chunk + 1) / 2.0 + rest * (rest + 1) / 2.0
    if window == 0 or window >= seq_len:
        return seq_len * (seq_len + 1) / 2.0
    return window * (window + 1) / 2.0 + (seq_len - window) * float(window)


@njit(cache=True, error_model="numpy")
def local_kept(positions: float, window: float) -> float:
    """Positions a local layer's KV cache holds for a sequence of ``positions``: all (W = 0),
    else at most |W|: the window, or the current chunk at its fullest (vLLM frees the blocks
    of finished chunks)."""
    return positions if window == 0 else min(positions, abs(window))


@njit(cache=True, error_model="numpy")
def local_read(start: float, length: float, window: float) -> float:
    """Cached positions a local layer reads in a pass over ``length`` tokens after ``start``:
    the cache's min(start + length, W) (sliding; all when W = 0), or for chunks of C = -W the
    keys from the first query's chunk onward, start + length - C floor(start / C)."""
    if window < 0:
        return start + length + window * np.floor(start / -window)
    return local_kept(start + length, window)


@njit(cache=True, error_model="numpy")
def touched_experts(tokens: float, experts: float, top_k: float, ep: float) -> tuple[float, float]:
    """(EXP, ETOK) for ``tokens`` tokens on one device: experts touched there and tokens per
    touched expert. With uniform routing of top-k among E experts, an expert escapes one
    token with probability 1 - k/E, so a batch of T tokens on all ep devices touches
    E/ep (1 - (1 - k/E)^(ep T)) of a device's experts, which share its T k tokens.
    (0, 0) for a dense model (experts = 0)."""
    if experts <= 0 or tokens <= 0:
        return 0.0, 0.0
    touched = experts / ep * (1.0 - (1.0 - top_k / experts) ** (ep * tokens))
    return touched, tokens * top_k / touched


def expert_features(tokens: float, moe: tuple | None) -> tuple[float, float]:
    """touched_experts for a table's ``moe`` = (experts, experts per token, ep), or None."""
    return touched_experts(float(tokens), *map(float, moe)) if moe else (0.0, 0.0)


@njit(cache=True, error_model="numpy")
def fill_prefill_features(feats, batch: float, prompt: float, window: float, experts: float, top_k: float,
                          ep: float):
    """The prefill feature vector into ``feats`` (numba: the sweep kernel calls it too)."""
    feats[:] = 0.0
    feats[ONE] = 1.0
    feats[SEQ] = batch
    feats[TOK] = batch * prompt
    feats[PAIR] = batch * causal_pairs(prompt, 0.0)
    feats[KV] = batch * prompt
    feats[LPAIR] = batch * causal_pairs(prompt, window)
    feats[LKV] = batch * prompt
    feats[EXP], feats[ETOK] = touched_experts(batch * prompt, experts, top_k, ep)


def prefill_features(batch: int, prompt: int, window: int, moe: tuple | None = None) -> np.ndarray:
    f = np.zeros(N_FEATURES)
    fill_prefill_features(f, float(batch), float(prompt), float(window), *map(float, moe or (0, 0, 1)))
    return f


GROWING, CAPPED = 0, 1      # decode segments: local span c + 1 (c + 1 <= |W|), or past it


@njit(cache=True, error_model="numpy")
def fill_decode_lines(batch: float, experts: float, top_k: float, ep: float, window: float, f0, f1):
    """Decode-step features f0[seg] + f1[seg] c of both segment kinds ([2, features] each):
    GROWING attends over c + 1 positions in every layer; CAPPED over c + 1 in the global
    layers and W in the sliding-window ones. Chunked local layers (W < 0) are not linear in c
    past the first chunk: CAPPED leaves their P_l, K_l at 0 and scenario sums them chunk by
    chunk on the GROWING lines (chunked_sum_s)."""
    f0[:] = 0.0
    f1[:] = 0.0
    touched, per_expert = touched_experts(batch, experts, top_k, ep)
    for seg in (GROWING, CAPPED):
        f0[seg, ONE] = 1.0
        f0[seg, SEQ] = batch
        f0[seg, TOK] = batch
        f0[seg, EXP] = touched
        f0[seg, ETOK] = per_expert
        for j in (PAIR, KV):               # B (c + 1)
            f0[seg, j] = batch
            f1[seg, j] = batch
    for j in (LPAIR, LKV):
        f0[GROWING, j] = batch
        f1[GROWING, j] = batch
        f0[CAPPED, j] = batch * window if window > 0 else 0.0     # B W


@njit(cache=True, error_model="numpy")
def decode_step_span(segment: int, first: float, last: float, window: float) -> tuple[float, float]:
    """(lo, hi): the positions of decode steps first..last that fall in ``segment`` (empty
    when hi < lo): GROWING while c + 1 <= |W|, CAPPED after."""
    span = abs(window)
    if window == 0 or last + 1 <= span:
        return (first, last) if segment == GROWING else (1.0, 0.0)
    split = span - 1.0                     # last position with c + 1 <= |W|
    if segment == GROWING:
        return first, min(split, last)
    return max(first, split + 1.0), last


def decode_segments(batch: int, first: int, last: int, window: int, moe: tuple | None = None):
    """[(f0, f1, lo, hi)]: decode steps at positions c in [first, last], features f0 + f1 c,
    split where a sliding window caps the attended span (the non-empty segments); with chunks
    of C (W < 0), one segment per chunk, whose local span is c - k C + 1 in chunk k."""
    f0 = np.zeros((2, N_FEATURES))
    f1 = np.zeros((2, N_FEATURES))
    fill_decode_lines(float(batch), *map(float, moe or (0, 0, 1)), float(window), f0, f1)
    single = window == 0 or last + 1 <= abs(window)          # one growing segment, possibly empty
    segments = []
    for seg in (GROWING, CAPPED):
        lo, hi = decode_step_span(seg, float(first), float(last), float(window))
        if hi >= lo or (single and seg == GROWING):
            if seg == CAPPED and window < 0:
                segments += _chunk_segments(f0[GROWING], int(lo), int(hi), -window)
            else:
                segments.append((f0[seg], f1[seg], int(lo), int(hi)))
    return segments


def _chunk_segments(growing: np.ndarray, lo: int, hi: int, chunk: int) -> list:
    """The growing segment's features shifted per chunk k: local span c - k C + 1 on [lo, hi]."""
    out = []
    for k in range(lo // chunk, hi // chunk + 1):
        f0, f1 = growing.copy(), np.zeros_like(growing)
        f1[[PAIR, KV, LPAIR, LKV]] = growing[SEQ]
        f0[[LPAIR, LKV]] = growing[SEQ] * (1 - k * chunk)
        out.append((f0, f1, max(lo, k * chunk), min(hi, (k + 1) * chunk - 1)))
    return out


@njit(cache=True, error_model="numpy")
def mean_decode_position(prompt, output):
    """The middle of the decode steps' positions prompt..prompt + output - 2 (tokens 2..N)."""
    return prompt + (output - 2) // 2


def decode_step_features(batch: int, position: int, window: int, moe: tuple | None = None) -> np.ndarray:
    """The features of the one decode step at ``position``: a pass over one token per
    sequence after ``position`` cached ones (chunk_features)."""
    return chunk_features(batch, position, 1, window, moe)


@njit(cache=True, error_model="numpy")
def fill_chunk_features(feats, batch: float, start: float, length: float, window: float, experts: float,
                        top_k: float, ep: float):
    """A pass over ``length`` new tokens per sequence at positions start..start+length-1 with
    ``start`` tokens already cached (a speculative verify pass, a prefill chunk, a decode
    step): each new token attends over everything before it and itself (global layers), or
    over its local span (local layers)."""
    feats[:] = 0.0
    feats[ONE] = 1.0
    feats[SEQ] = batch
    feats[TOK] = batch * length
    feats[PAIR] = batch * (causal_pairs(start + length, 0.0) - causal_pairs(start, 0.0))
    feats[KV] = batch * (start + length)
    feats[LPAIR] = batch * (causal_pairs(start + length, window) - causal_pairs(start, window))
    feats[LKV] = batch * local_read(start, length, window)
    feats[EXP], feats[ETOK] = touched_experts(batch * length, experts, top_k, ep)


def chunk_features(batch: int, start: int, length: int, window: int, moe: tuple | None = None) -> np.ndarray:
    f = np.zeros(N_FEATURES)
    fill_chunk_features(f, float(batch), float(start), float(length), float(window), *map(float, moe or (0, 0, 1)))
    return f
