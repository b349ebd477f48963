"""The latency-throughput Pareto front of streamed scenarios (sweep rows, a plan's batches),
and a bounded sample of them to draw, so a sweep of millions of rows is drawn in constant
memory while its front is exact.

Latency is the time per output token (TPOT), throughput the configuration's output
tokens/s; a scenario is on the front when no other is as good in both and better in one
(of equal scenarios, the first). Scenarios that do not fit, or have no TPOT (output 1),
are left out.
"""
from __future__ import annotations

import numpy as np

from simulator.explore.writers import SCENARIO_COLUMNS

FIELDS = ("tpot_s", "output_tokens_per_s", "tokens_per_j", "batch", "prompt", "output")
TPOT, THROUGHPUT, TOKENS_PER_J, BATCH, PROMPT, OUTPUT, CONFIG = range(7)
_COLUMN = [list(SCENARIO_COLUMNS).index(name) for name in FIELDS]
_FITS = list(SCENARIO_COLUMNS).index("fits")


def pareto_front(latency: np.ndarray, throughput: np.ndarray) -> np.ndarray:
    """Indices of the points no other beats (as low a latency and as high a throughput, and
    better in one), in order of latency; of equal points the first."""
    order = np.lexsort((-throughput, latency))
    ranked = throughput[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(ranked)[:-1]))
    return order[ranked > best_before]


class FrontSample:
    """Rows [7, n] (FIELDS, then the configuration's index in ``configs``) fed in chunks:
    ``front()`` over every scenario that meets the targets, ``sample(meets)`` a uniform
    random sample of at most ``cap`` scenarios that meet (or miss) them."""

    def __init__(self, cap: int = 10_000, seed: int = 0):
        self.cap = cap
        self.configs: list[str] = []
        self._ids: dict[str, int] = {}
        self.counts = {True: 0, False: 0}
        self._front = np.empty((7, 0))
        self._samples = {flag: (np.empty(0), np.empty((7, 0))) for flag in (True, False)}
        self._rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray, config: str, meets: np.ndarray | None = None) -> None:
        """Scenarios of one configuration: ``values`` [SCENARIO_COLUMNS, n] as the sweep
        writes them; ``meets`` marks those meeting the targets (default: all)."""
        ok = (values[_FITS] > 0) & np.isfinite(values[_COLUMN[TPOT]]) & (values[_COLUMN[THROUGHPUT]] > 0)
        index = self._ids.setdefault(config, len(self._ids))
        if index == len(self.configs):
            self.configs.append(config)
        rows = np.vstack([values[_COLUMN], np.full(values.shape[1], float(index))])[:, ok]
        meeting = np.ones(rows.shape[1], bool) if meets is None else np.asarray(meets, bool)[ok]
        both = np.hstack([self._front, rows[:, meeting]])
        self._front = both[:, pareto_front(both[TPOT], both[THROUGHPUT])]
        for flag in (True, False):
            self._keep(flag, rows[:, meeting == flag])

    def _keep(self, flag: bool, rows: np.ndarray) -> None:
        """Reservoir by random keys: the ``cap`` smallest keys seen are a uniform sample."""
        self.counts[flag] += rows.shape[1]
        keys, kept = self._samples[flag]
        keys = np.concatenate([keys, self._rng.random(rows.shape[1])])
        kept = np.hstack([kept, rows])
        if keys.size > self.cap:
            chosen = np.argpartition(keys, self.cap)[:self.cap]
            keys, kept = keys[chosen], kept[:, chosen]
        self._samples[flag] = keys, kept

    def front(self) -> np.ndarray:
        return self._front

    def sample(self, meets: bool = True) -> np.ndarray:
        return self._samples[meets][1]

    def label(self, row: np.ndarray, lengths: bool = False) -> str:
        """'<configuration> B=..' (and S, N with ``lengths``) of one row."""
        text = f"{self.configs[int(row[CONFIG])]} B={int(row[BATCH])}"
        return text + (f" S={int(row[PROMPT])} N={int(row[OUTPUT])}" if lengths else "")
