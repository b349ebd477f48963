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


def decode_segments(batch: int, first: int, last: int, window: int, moe: tuple | None = None):
    """[(f0, f1, lo, hi)]: decode steps at positions c in [first, last], features f0 + f1 c,
    split where the sliding window caps the attended span."""
    f0 = np.zeros(N_FEATURES)
    f0[ONE] = 1.0
    f0[SEQ] = batch
    f0[TOK] = batch
    f0[EXP], f0[ETOK] = expert_features(batch, moe)
    growing0, growing1 = f0.copy(), np.zeros(N_FEATURES)
    growing0[PAIR] = growing0[KV] = batch            # B (c + 1)
    growing1[PAIR] = growing1[KV] = batch
    if window <= 0 or last + 1 <= window:
        return [(growing0, growing1, first, last)]
    capped0 = f0.copy()
    capped0[PAIR] = capped0[KV] = batch * float(window)
    split = window - 1                                   # last position with c + 1 <= W
    segments = []
    if first <= split:
        segments.append((growing0, growing1, first, split))
    segments.append((capped0, np.zeros(N_FEATURES), max(first, split + 1), last))
    return segments


def mean_decode_position(prompt: int, output: int) -> int:
    """The middle of the decode steps' positions prompt..prompt + output - 2 (tokens 2..N)."""
    return prompt + (output - 2) // 2


def decode_step_features(batch: int, position: int, window: int, moe: tuple | None = None) -> np.ndarray:
    """The features of the one decode step at ``position`` (decode_segments' last segment there)."""
    f0, f1, _, _ = decode_segments(batch, position, position, window, moe)[-1]
    return f0 + f1 * position


def chunk_features(batch: int, start: int, length: int, window: int, moe: tuple | None = None) -> np.ndarray:
    """A pass over ``length`` new tokens per sequence at positions start..start+length-1 with
    ``start`` tokens already cached (a speculative verify pass, a prefill chunk): each new
    token attends over everything before it and itself."""
    f = np.zeros(N_FEATURES)
    f[ONE] = 1.0
    f[SEQ] = batch
    f[TOK] = batch * length
    f[PAIR] = batch * (causal_pairs(start + length, window) - causal_pairs(start, window))
    f[KV] = batch * (min(start + length, window) if window else start + length)
    f[EXP], f[ETOK] = expert_features(batch * length, moe)
    return f
