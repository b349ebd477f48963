"""What a serving run's per-request times say: latency percentiles, throughput, goodput,
saturation, energy and cost.

Per request (s): ttft = first token - arrival; e2e = last token - arrival;
tpot = (last - first) / (output - 1) for outputs of 2 or more tokens; itl, every gap between
consecutive tokens of a request (from the loop's histogram). Percentiles p50/p90/p99 by
linear interpolation between order statistics (numpy's default), and the mean.
Over the run, from the first arrival to the last token (duration, s): requests_per_s,
output_tokens_per_s; goodput_requests_per_s counts the requests with ttft <= the TTFT SLO
and tpot <= the TPOT SLO (a one-token request has no tpot and meets that SLO).
saturated: in an open loop, the requests in the system (waiting + running) grew by more
than 10% of the second half's arrivals between the middle and the last arrival, i.e. the
engine completed fewer than 90% of them: the queue grows without bound and the latencies
depend on the run's length, not on the rate. A closed loop never saturates.
Energy: every iteration's (scenario.energy_j) plus idle power between them;
energy_j_per_request = energy / completed; tokens_per_j = output tokens / energy;
usd_per_million_tokens = explore.cost.usd_per_million at the output token rate.
"""
from __future__ import annotations

import numpy as np

from simulator.serving.loop import (ITL_BINS, T_BACKLOG_END, T_BACKLOG_MID, T_END_S, T_ENERGY_J, T_ITL_COUNT,
                                    T_ITL_SUM_S, itl_edges)

PERCENTILES = (50, 90, 99)
SATURATION_GROWTH = 0.10          # of the second half's arrivals (module docstring)


def summary(values: np.ndarray) -> dict:
    """{"p50", "p90", "p99", "mean"} of finite values (None each when there are none)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {f"p{q}": None for q in PERCENTILES} | {"mean": None}
    stats = {f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES}
    return stats | {"mean": float(values.mean())}


def histogram_summary(counts: np.ndarray, total_s: float, count: float) -> dict:
    """The ITL summary from the loop's histogram: each percentile interpolated geometrically
    inside its bin, the mean exact (sum of gaps / count)."""
    if count <= 0:
        return {f"p{q}": None for q in PERCENTILES} | {"mean": None}
    edges = np.log10(itl_edges())
    cumulative = np.cumsum(counts)
    stats = {}
    for q in PERCENTILES:
        rank = q / 100.0 * cumulative[-1]
        b = min(int(np.searchsorted(cumulative, rank)), ITL_BINS - 1)
        below = cumulative[b - 1] if b else 0
        inside = (rank - below) / counts[b] if counts[b] else 0.0
        stats[f"p{q}"] = float(10 ** (edges[b] + inside * (edges[b + 1] - edges[b])))
    return stats | {"mean": total_s / count}


def per_request(arrival_s, first_s, last_s, output) -> dict[str, np.ndarray]:
    """ttft, tpot (NaN for one-token outputs) and e2e of each request (s)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (last_s - first_s) / (output - 1), np.nan)
    return {"ttft_s": first_s - arrival_s, "tpot_s": tpot, "e2e_s": last_s - arrival_s}


def saturated(totals: np.ndarray, n: int, closed_loop: bool) -> bool:
    """The module docstring's test on the backlog at the middle and the last arrival."""
    if closed_loop or n < 2:
        return False
    return bool(totals[T_BACKLOG_END] - totals[T_BACKLOG_MID] > SATURATION_GROWTH * (n - n // 2))


def run_metrics(arrival_s, first_s, last_s, output, itl_counts, totals, ttft_slo_s, tpot_slo_s,
                closed_loop: bool) -> dict:
    """The rate-level outputs (module docstring) of one run, without cost (cost needs the
    device: serving.simulate adds it)."""
    times = per_request(arrival_s, first_s, last_s, output)
    n = int(arrival_s.shape[0])
    start = float(arrival_s.min()) if n else 0.0
    duration = float(totals[T_END_S]) - start
    tokens = float(output.sum())
    energy = float(totals[T_ENERGY_J])
    out = {name: summary(values) for name, values in times.items()}
    out["itl_s"] = histogram_summary(itl_counts, float(totals[T_ITL_SUM_S]), float(totals[T_ITL_COUNT]))
    out["duration_s"] = duration
    out["requests_per_s"] = n / duration if duration > 0 else None
    out["output_tokens_per_s"] = tokens / duration if duration > 0 else None
    if ttft_slo_s is not None or tpot_slo_s is not None:
        ok = np.ones(n, dtype=bool)
        if ttft_slo_s is not None:
            ok &= times["ttft_s"] <= ttft_slo_s
        if tpot_slo_s is not None:
            ok &= ~(times["tpot_s"] > tpot_slo_s)          # NaN (one token) meets it
        out["goodput_requests_per_s"] = float(ok.sum()) / duration if duration > 0 else None
    else:
        out["goodput_requests_per_s"] = None
    out["saturated"] = saturated(totals, n, closed_loop)
    out["energy_j_per_request"] = energy / n if energy > 0 and n else None
    out["tokens_per_j"] = tokens / energy if energy > 0 else None
    return out
