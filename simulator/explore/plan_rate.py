"""``llmsim plan --rate R``: the SLO check by the serving simulation (serving/simulate.py),
not the static-batch approximation. A configuration whose weights fit, and whose one
request alone (predict --batch 1) does not already miss the TTFT or TPOT limit, serves REQUESTS
requests of the given prompt and output lengths arriving as a Poisson process at R per
second (seed 1) under continuous batching (serving.policy.Policy's defaults); it meets the
targets when the run is not saturated and its TTFT and TPOT at the chosen percentile are
within --ttft-max and --tpot-max and its output tokens/s at least --throughput-min. The
operating point reports those percentiles, e2e at the same percentile, the run's output
tokens/s, tokens/J, goodput (requests/s meeting both SLOs), the mean running batch over the
run's sampled iterations, and cost = devices x usd_per_hour per million of R x output
tokens/s (devices dedicated to the load, paid while idle).
"""
from __future__ import annotations

import math

import numpy as np

from simulator.errors import SimulatorError

REQUESTS = 500
PERCENTILES = (50, 90, 99)


def requests_for(rate: float, prompt: int, output: int):
    from simulator.serving.requests import Lengths, generate

    return generate(REQUESTS, rate, Lengths("fixed", prompt), Lengths("fixed", output), seed=1)


def alone_misses(ttft_s: float, tpot_s: float, output: int, t) -> list[tuple[float, str]]:
    """(ratio, words) of the limits one request alone already misses (predict --batch 1's
    TTFT and TPOT: a served request's are at least these, so the run need not be simulated)."""
    from simulator.units import format_si

    out = []
    for name, value, limit in (("TTFT", ttft_s, t.ttft_max_s), ("TPOT", tpot_s if output > 1 else 0.0, t.tpot_max_s)):
        if math.isfinite(limit) and value > limit * (1 + 1e-9):
            out.append((value / limit, f"{name} of one request alone {format_si(value, 's')} > "
                                       f"{format_si(limit, 's')} (x{value / limit:.3g})"))
    return out


def _reasons(m: dict, key: str, t, rate: float) -> tuple[float, list[str]]:
    """(worst ratio of value to target, the missed targets in words)."""
    from simulator.units import format_si

    ratios, words = [], []
    if m["saturated"]:
        served = m["requests_per_s"] or 0.0
        ratios.append(rate / served if served > 0 else math.inf)
        words.append(f"saturated: serves {served:.3g} requests/s < {rate:.3g} (x{ratios[-1]:.3g})")
    for name, limit in (("ttft_s", t.ttft_max_s), ("tpot_s", t.tpot_max_s)):
        value = m[name][key]
        if value is not None and math.isfinite(limit) and value > limit:
            ratios.append(value / limit)
            words.append(f"{name[:4].upper()} {key} {format_si(value, 's')} > {format_si(limit, 's')} "
                         f"(x{value / limit:.3g})")
    tps = m["output_tokens_per_s"] or 0.0
    if t.throughput_min_tokens_per_s and tps < t.throughput_min_tokens_per_s:
        ratios.append(t.throughput_min_tokens_per_s / tps if tps > 0 else math.inf)
        words.append(f"{tps:,.0f} tokens/s < {t.throughput_min_tokens_per_s:,.0f}")
    return max(ratios, default=0.0), words


def evaluate_rate(precision: str, group, prompt: int, output: int, t, hourly: float, percentile: int):
    """(Option or None, Miss or None) of one configuration under the serving simulation."""
    from simulator.explore.cost import usd_per_million
    from simulator.explore.plan import Miss, Option
    from simulator.serving.policy import Policy
    from simulator.serving.simulate import engine, serve

    head = dict(hardware=group.hardware, devices=group.layout.tp, precision=precision)
    rate = t.rate_requests_per_s
    try:
        eng = engine(group.model, group.hardware, group.stack, Policy(), weight_dtype=group.weight_dtype,
                     activation_dtype=group.activation_dtype, kv_dtype=group.kv_dtype, tp=group.layout.tp)
    except SimulatorError as exc:                  # no KV memory left after the weights
        return None, Miss(**head, batch=None, score=math.inf, reasons=[str(exc)])
    ttft = t.ttft_max_s if math.isfinite(t.ttft_max_s) else None
    tpot = t.tpot_max_s if math.isfinite(t.tpot_max_s) else None
    run = serve(eng, requests_for(rate, prompt, output), rate, ttft_slo_s=ttft, tpot_slo_s=tpot)
    m, key = run.metrics, f"p{percentile}"
    batch = int(round(float(np.mean(run.records[:, 1])))) if len(run.records) else 0
    score, reasons = _reasons(m, key, t, rate)
    if m["completed"] == 0:
        return None, Miss(**head, batch=None, score=math.inf, reasons=["no request fits the KV pool"])
    if reasons:
        return None, Miss(**head, batch=batch, score=score, reasons=reasons)
    cost = usd_per_million(hourly, eng.devices, rate * output)
    goodput = m["goodput_requests_per_s"] if (ttft or tpot) else m["requests_per_s"]
    return Option(**head, weight_dtype=group.weight_dtype, activation_dtype=group.activation_dtype.value,
                  batch=batch, ttft_s=m["ttft_s"][key], tpot_s=None if output == 1 else m["tpot_s"][key],
                  e2e_s=m["e2e_s"][key], output_tokens_per_s=m["output_tokens_per_s"],
                  tokens_per_j=m["tokens_per_j"], usd_per_million_tokens=None if math.isnan(cost) else float(cost),
                  goodput_requests_per_s=goodput), None
