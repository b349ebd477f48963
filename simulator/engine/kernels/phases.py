"""Feature vectors (ops.py) of a prefill pass and of decode steps.

Prefill of B sequences of S tokens from position 0: T = B S; causal pairs
P = B sum_{i=1..S} min(i, W) (W the sliding window, unlimited when 0); K = B S.
Decode step at position c (input token at c, attending over c + 1 positions):
T = B; P = K = B min(c + 1, W). A mixture of experts adds EXP and ETOK (ops.py), which
depend on T only (expert_features).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from simulator.graph.ops import ETOK, EXP, KV, N_FEATURES, ONE, PAIR, SEQ, TOK


@njit(cache=True)
def causal_pairs(seq_len: float, window: float) -> float:
    """sum_{i=1..S} min(i, W): query-key pairs of one causal sequence (W = 0: no window)."""
    if window <= 0 or window >= seq_len:
        return seq_len * (seq_len + 1) / 2.0
    return window * (window + 1) / 2.0 + (seq_len - window) * float(window)


@njit(cache=True)
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


@njit(cache=True)
def fill_prefill_features(feats, batch: float, prompt: float, window: float, experts: float, top_k: float,
                          ep: float):
    """The prefill feature vector into ``feats`` (numba: the sweep kernel calls it too)."""
    feats[:] = 0.0
    feats[ONE] = 1.0
    feats[SEQ] = batch
    feats[TOK] = batch * prompt
    feats[PAIR] = batch * causal_pairs(prompt, window)
    feats[KV] = batch * prompt
    feats[EXP], feats[ETOK] = touched_experts(batch * prompt, experts, top_k, ep)


def prefill_features(batch: int, prompt: int, window: int, moe: tuple | None = None) -> np.ndarray:
    f = np.zeros(N_FEATURES)
    fill_prefill_features(f, float(batch), float(prompt), float(window), *map(float, moe or (0, 0, 1)))
    return f


GROWING, CAPPED = 0, 1      # decode segments: attended span c + 1 grows, or is capped at the window


@njit(cache=True)
def fill_decode_lines(batch: float, experts: float, top_k: float, ep: float, window: float, f0, f1):
    """Decode-step features f0[seg] + f1[seg] c of both segment kinds ([2, features] each):
    GROWING attends over c + 1 positions, CAPPED over the window W."""
    f0[:] = 0.0
    f1[:] = 0.0
    touched, per_expert = touched_experts(batch, experts, top_k, ep)
    for seg in (GROWING, CAPPED):
        f0[seg, ONE] = 1.0
        f0[seg, SEQ] = batch
        f0[seg, TOK] = batch
        f0[seg, EXP] = touched
        f0[seg, ETOK] = per_expert
    f0[GROWING, PAIR] = batch              # B (c + 1)
    f0[GROWING, KV] = batch
    f1[GROWING, PAIR] = batch
    f1[GROWING, KV] = batch
    f0[CAPPED, PAIR] = batch * window      # B W
    f0[CAPPED, KV] = batch * window


@njit(cache=True)
def decode_step_span(segment: int, first: float, last: float, window: float) -> tuple[float, float]:
    """(lo, hi): the positions of decode steps first..last that fall in ``segment`` (empty
    when hi < lo): GROWING while c + 1 <= W, CAPPED after."""
    if window <= 0 or last + 1 <= window:
        return (first, last) if segment == GROWING else (1.0, 0.0)
    split = window - 1.0                   # last position with c + 1 <= W
    if segment == GROWING:
        return first, min(split, last)
    return max(first, split + 1.0), last


def decode_segments(batch: int, first: int, last: int, window: int, moe: tuple | None = None):
    """[(f0, f1, lo, hi)]: decode steps at positions c in [first, last], features f0 + f1 c,
    split where the sliding window caps the attended span (the non-empty segments)."""
    f0 = np.zeros((2, N_FEATURES))
    f1 = np.zeros((2, N_FEATURES))
    fill_decode_lines(float(batch), *map(float, moe or (0, 0, 1)), float(window), f0, f1)
    single = window <= 0 or last + 1 <= window          # one growing segment, possibly empty
    segments = []
    for seg in (GROWING, CAPPED):
        lo, hi = decode_step_span(seg, float(first), float(last), float(window))
        if hi >= lo or (single and seg == GROWING):
            segments.append((f0[seg], f1[seg], int(lo), int(hi)))
    return segments


@njit(cache=True)
def mean_decode_position(prompt, output):
    """The middle of the decode steps' positions prompt..prompt + output - 2 (tokens 2..N)."""
    return prompt + (output - 2) // 2


def decode_step_features(batch: int, position: int, window: int, moe: tuple | None = None) -> np.ndarray:
    """The features of the one decode step at ``position``."""
    f0, f1, _, _ = decode_segments(batch, position, position, window, moe)[-1]
    return f0 + f1 * position


@njit(cache=True)
def fill_chunk_features(feats, batch: float, start: float, length: float, window: float, experts: float,
                        top_k: float, ep: float):
    """A pass over ``length`` new tokens per sequence at positions start..start+length-1 with
    ``start`` tokens already cached (a speculative verify pass, a prefill chunk): each new
    token attends over everything before it and itself."""
    feats[:] = 0.0
    feats[ONE] = 1.0
    feats[SEQ] = batch
    feats[TOK] = batch * length
    feats[PAIR] = batch * (causal_pairs(start + length, window) - causal_pairs(start, window))
    feats[KV] = batch * (min(start + length, window) if window > 0 else start + length)
    feats[EXP], feats[ETOK] = touched_experts(batch * length, experts, top_k, ep)


def chunk_features(batch: int, start: int, length: int, window: int, moe: tuple | None = None) -> np.ndarray:
    f = np.zeros(N_FEATURES)
    fill_chunk_features(f, float(batch), float(start), float(length), float(window), *map(float, moe or (0, 0, 1)))
    return f
