"""A plain-Python serving loop: policy.Scheduler driven in simulated time, each iteration
costed by the same iteration kernel as the numba loop (kernels/iteration.iteration_cost,
called once per iteration). It is the oracle the tests compare serving/loop.py with, and the
peer benchmarks/bench_serving.py times it against: the same schedule, Python per iteration.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.engine.kernels.iteration import N_HOST, decode_cache, first_use_s, host_at, iteration_cost, new_shapes
from simulator.engine.kernels.scenario import M_PARAMS, P_DEVICES, P_HAS_ENERGY, P_IDLE_W
from simulator.graph.ops import N_FEATURES
from simulator.serving.policy import Policy, Request, Scheduler


def run(model: tuple, policy: Policy, arrival_s, prompt, output, prefix, pool_blocks: int,
        concurrency: int = 0, host=None, seen=None, segments=None) -> dict:
    """Serve the requests; returns per-request arrays (arrival_s, first_s, last_s,
    preemptions), every inter-token gap (itl_s), iterations, preemptions, peak_blocks,
    energy_j and end_s. ``host``: iteration.host_terms (None: off); ``seen``: the token counts
    the process has run (iteration.new_shapes; None: none yet), updated; ``segments``: the
    host's speed in time segments (seg_start_s, seg_scale: iteration.host_at; None: steady)."""
    n = len(arrival_s)
    reqs = [Request(float(a), int(p), int(o), bool(h)) for a, p, o, h in zip(arrival_s, prompt, output, prefix)]
    started = n
    if concurrency > 0:
        started = min(concurrency, n)
        for i, r in enumerate(reqs):
            r.arrival_s = 0.0 if i < started else math.inf
    sched = Scheduler(policy, reqs, pool_blocks)
    params = model[M_PARAMS]
    idle_w = params[P_DEVICES] * params[P_IDLE_W] if params[P_HAS_ENERGY] > 0 else 0.0
    cache = decode_cache(model[0].shape[0], policy.max_seqs)
    host = np.zeros(N_HOST) if host is None else host
    seen = new_shapes(policy.max_batched_tokens) if seen is None else seen
    seg_start_s, seg_scale = segments if segments is not None else (np.zeros(0), np.zeros(0))
    host_now, k_seg = host.copy(), -1
    feats, scratch = np.zeros(N_FEATURES), np.zeros(N_FEATURES)
    now = reqs[0].arrival_s if n else 0.0
    arrived = done = iterations = 0
    energy = 0.0
    gaps: list[float] = []
    while done < n:
        while arrived < started and reqs[arrived].arrival_s <= now:
            sched.arrive(arrived)
            arrived += 1
        chunks = sched.step()
        if not chunks:
            if arrived >= started:
                break
            energy += idle_w * (reqs[arrived].arrival_s - now)
            now = reqs[arrived].arrival_s
            continue
        counts = np.array([len(c.ids) for c in chunks], dtype=np.int64)
        starts = np.array([c.start for c in chunks], dtype=np.int64)
        lengths = np.array([c.length for c in chunks], dtype=np.int64)
        k_seg = host_at(host, seg_start_s, seg_scale, k_seg, now, host_now)
        duration, joules = iteration_cost(model, cache, counts, starts, lengths, len(chunks),
                                          not policy.decode_graphs, host_now, len(sched.running), feats, scratch)
        if not policy.decode_graphs or (lengths > 1).any():         # an eager pass
            first = first_use_s(host_now, seen, int((counts * lengths).sum()))
            duration += first
            joules += idle_w * first
        end = now + duration
        before = {i: (reqs[i].generated, reqs[i].last_s) for c in chunks for i in c.ids}
        finished = sched.finish(chunks, end)
        for i, (generated, last) in before.items():
            if reqs[i].generated > generated and generated > 0:
                gaps.append(end - last)
        done += len(finished)
        if concurrency > 0:
            for _ in finished:
                if started < n:
                    reqs[started].arrival_s = end
                    started += 1
        energy += joules
        iterations += 1
        now = end
    return dict(arrival_s=np.array([r.arrival_s for r in reqs]), first_s=np.array([r.first_s for r in reqs]),
                last_s=np.array([r.last_s for r in reqs]), preemptions=np.array([r.preemptions for r in reqs]),
                itl_s=np.array(gaps), iterations=iterations, preemption_count=sched.preemptions,
                peak_blocks=sched.peak_blocks, energy_j=energy, end_s=now)
