"""Disaggregated prefill and decode (``llmsim serving --disaggregate P:D``): P prefill and D
decode replicas of one configuration (tp devices each), the prompt's KV moved between them.

  prefill   requests go to the prefill replicas in turn (by arrival); each replica serves its
            share with continuous batching and outputs of one token: chunked prefills only,
            the first token (TTFT) at the end of a request's last chunk
  transfer  transfer_s = link latency + prompt x KV bytes per token per device / the link's
            per-direction bandwidth (the device's fastest link; each of the tp devices moves
            its own shard at once)
  decode    the request reaches the decode replicas in turn at first token + transfer_s with
            its prompt and first token as context, all of it cached (the prefix cache stands
            in for the moved KV: prefix_hit 1 leaves the last partial block, at most
            block_size tokens, to recompute in its first step, which samples its second
            token); outputs minus one
Per request: TTFT from the prefill, TPOT = (last - first token) / (output - 1), e2e = last -
arrival. The run: output tokens / (last token - first arrival), saturated when any replica
is, energy both pools' (each replica's idle power between its iterations), cost (P + D) x tp
devices. ITL is not combined (n/a). Each replica is serve()'s loop over its own requests.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.errors import WorkloadError
from simulator.explore.cost import usd_per_million
from simulator.serving.metrics import per_request, summary
from simulator.serving.requests import Requests
from simulator.serving.simulate import Engine, Run, admissible, serve


def parse_split(text: str) -> tuple[int, int]:
    """``P:D`` as two whole numbers >= 1 (WorkloadError otherwise)."""
    p, sep, d = text.partition(":")
    if not sep or not (p.strip().isdigit() and d.strip().isdigit()) or int(p) < 1 or int(d) < 1:
        raise WorkloadError("disaggregate", f"expected P:D, two whole numbers >= 1 (e.g. 1:3), got {text!r}")
    return int(p), int(d)


def transfer_s(eng: Engine, hardware, prompt: np.ndarray) -> np.ndarray:
    """The module docstring's transfer time of each prompt's KV (s)."""
    links = list(getattr(hardware, "interconnect", None) or [])
    if not links:
        raise WorkloadError("disaggregate", f"{hardware.name} has no link to move the KV cache over")
    link = max(links, key=lambda k: k.bandwidth_per_direction_bytes_per_s)
    per_token = eng.kv_bytes_per_block / eng.policy.block_size
    return link.latency_s + prompt * per_token / link.bandwidth_per_direction_bytes_per_s


def serve_split(eng: Engine, hardware, reqs: Requests, prefill: int, decode: int, rate: float | None = None,
                ttft_slo_s: float | None = None, tpot_slo_s: float | None = None) -> Run:
    """Serve ``reqs`` on ``prefill`` + ``decode`` replicas (module docstring)."""
    if eng.policy.batching != "continuous":
        raise WorkloadError("disaggregate", "expected continuous batching")
    keep = admissible(eng, reqs)
    served = reqs.subset(keep)
    n = len(served)
    first, last = np.full(n, np.nan), np.full(n, np.nan)
    preempted = np.zeros(n, dtype=np.int64)
    energy, saturated, peak, preemptions = 0.0, False, 0.0, 0
    ones = np.ones(n, dtype=np.int64)
    stage1 = Requests(served.arrival_s, served.prompt, ones, served.prefix)
    for i in range(prefill):
        idx = np.arange(i, n, prefill)
        if idx.size:
            run = serve(eng, stage1.subset(idx), rate)
            first[idx] = run.first_s
            energy, saturated, peak, preemptions = _add(run, energy, saturated, peak, preemptions)
            preempted[idx] += run.preemptions
    moved = first + transfer_s(eng, hardware, served.prompt.astype(float))
    more = served.output > 1
    last[~more] = first[~more]
    decode_eng = dataclasses.replace(eng, policy=dataclasses.replace(eng.policy, prefix_hit=1.0))
    order = np.flatnonzero(more)[np.argsort(moved[more], kind="stable")]
    for i in range(decode):
        idx = order[i::decode]
        if idx.size:
            stage2 = Requests(moved[idx], served.prompt[idx] + 1, served.output[idx] - 1, ones[idx])
            run = serve(decode_eng, stage2)
            last[idx] = run.last_s
            energy, saturated, peak, preemptions = _add(run, energy, saturated, peak, preemptions)
            preempted[idx] += run.preemptions
    return Run(_metrics(eng, served, first, last, energy, saturated, peak, preemptions, prefill + decode, rate,
                        len(reqs), ttft_slo_s, tpot_slo_s), served, first, last, preempted, np.zeros((0, 6)))


def _add(run: Run, energy, saturated, peak, preemptions):
    m = run.metrics
    return (energy + (m["energy_j_per_request"] or 0.0) * m["completed"], saturated or m["saturated"],
            max(peak, m["kv_peak_fraction"]), preemptions + m["preemptions"])


def _metrics(eng, served, first, last, energy, saturated, peak, preemptions, replicas, rate, requested,
             ttft_slo_s, tpot_slo_s) -> dict:
    times = per_request(served.arrival_s, first, last, served.output)
    n = len(served)
    duration = float(np.nanmax(last) - served.arrival_s.min()) if n else 0.0
    tokens = float(served.output.sum())
    m = {"rate": rate, "concurrency": None, "requests": requested, "completed": n, "rejected": requested - n}
    m |= {name: summary(values) for name, values in times.items()}
    m["itl_s"] = summary(np.array([]))
    m["requests_per_s"] = n / duration if duration > 0 else None
    m["output_tokens_per_s"] = tokens / duration if duration > 0 else None
    ok = np.ones(n, dtype=bool)
    if ttft_slo_s is not None:
        ok &= times["ttft_s"] <= ttft_slo_s
    if tpot_slo_s is not None:
        ok &= ~(times["tpot_s"] > tpot_slo_s)
    slo = ttft_slo_s is not None or tpot_slo_s is not None
    m["goodput_requests_per_s"] = float(ok.sum()) / duration if slo and duration > 0 else None
    m["saturated"] = saturated
    m["preemptions"] = preemptions
    m["kv_peak_fraction"] = peak
    m["energy_j_per_request"] = energy / n if energy > 0 and n else None
    m["tokens_per_j"] = tokens / energy if energy > 0 else None
    tps = m["output_tokens_per_s"]
    m["usd_per_million_tokens"] = (float(usd_per_million(eng.usd_per_hour, replicas * eng.devices, tps))
                                   if eng.usd_per_hour is not None and tps else None)
    m["replicas"] = replicas
    return m
