"""A serving run of one configuration: the model prepared and packed exactly as ``predict``
prepares it (api._prepared, Prepared.packed), the KV pool sized from its footprint, requests
that can never run rejected, then the numba loop (serving/loop.py) and the metrics.

KV pool (blocks, per device) = floor(kv_memory_fraction x (capacity - weights - the largest
activation of one pass over max_batched_tokens tokens) / (block_size x KV bytes per token));
the weights and the activation are scenario.memory_rows' (the same footprint predict
reports). The profile's eager mixed-pass host terms and their overlap with the device
(calibration/serving_host.py), where it has them, cost the eager iterations
(kernels/iteration.py). A request is rejected (counted, not served) when prompt + output exceeds the
model's max_position_embeddings or its blocks exceed the whole pool.
Serving runs one replica on tp devices: pp, dp, ep, microbatches 1, no speculative decoding.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulator.api import _prepared, resolve_model
from simulator.engine.batch import transient_bytes
from simulator.engine.kernels import scenario as sc
from simulator.engine.kernels.iteration import host_terms, new_shapes
from simulator.engine.kernels.phases import chunk_features
from simulator.engine.predict import layout_of
from simulator.errors import WorkloadError
from simulator.explore.cost import usd_per_hour, usd_per_million
from simulator.serving import loop
from simulator.serving.metrics import run_metrics
from simulator.serving.policy import STATIC, Policy, blocks_for
from simulator.serving.requests import Requests
from simulator.specs.workload import workload

RECORDS = 4096                    # iterations kept for the timeline (every stride-th: loop._record)


@dataclasses.dataclass(frozen=True)
class Engine:
    """A prepared configuration ready to serve: the kernel model tuple, the KV pool, the
    policy, and what the outputs need (devices, price, notes)."""

    model: tuple
    host: np.ndarray              # iteration.host_terms: the eager mixed pass's host seconds (zeros: none)
    policy: Policy
    pool_blocks: int
    kv_bytes_per_block: float
    max_positions: int | None
    devices: int
    usd_per_hour: float | None
    notes: tuple[str, ...]


@dataclasses.dataclass
class Run:
    """One run: its metrics (metrics.run_metrics plus the rate, counts and cost), the
    served requests with their times, and the sampled iterations (loop.RECORD_FIELDS)."""

    metrics: dict
    requests: Requests
    first_s: np.ndarray
    last_s: np.ndarray
    preemptions: np.ndarray
    records: np.ndarray


def engine(model, hardware, stack, policy: Policy, **options) -> Engine:
    """Prepare a configuration (predict's options: dtypes, tp) for serving under ``policy``."""
    problem = policy.problem()
    if problem:
        raise WorkloadError(*problem)
    for field in ("pp", "dp", "ep", "microbatches"):
        if options.get(field, 1) != 1:
            raise WorkloadError(field, "serving simulates one replica on tp devices: expected 1")
    if options.get("draft_model"):
        raise WorkloadError("draft_model", "serving does not simulate speculative decoding")
    w = workload(batch=1, prompt=1, output=1, **options)
    prep, _, notes = _prepared(model, hardware, stack, w)
    packed = prep.packed(dataclasses.replace(layout_of(w), draft_tokens=0))
    params = packed.params
    act = sc.activation_bytes(transient_bytes(prep.table), chunk_features(1, 0, policy.max_batched_tokens,
                                                                          prep.table.window, prep.table.moe))
    free_bytes = params[sc.P_CAPACITY_BYTES] - params[sc.P_WEIGHT_BYTES] - act
    per_block = sc.kv_cache_bytes(params, 1.0, float(policy.block_size))
    pool = int(policy.kv_memory_fraction * free_bytes // per_block) if free_bytes > 0 and per_block > 0 else 0
    if pool < 1:
        raise WorkloadError("hardware", f"{prep.hardware.name} has no memory left for a KV cache: weights "
                                        f"{params[sc.P_WEIGHT_BYTES] / 1e9:.1f} GB and activations {act / 1e9:.2f} GB "
                                        f"of {params[sc.P_CAPACITY_BYTES] / 1e9:.1f} GB per device")
    profile = prep.rates.profile
    host = host_terms(profile.mixed_host_s, resolve_model(model)[1].num_layers, profile.mixed_overlap_exponent)
    return Engine(packed.target, host, policy, pool, per_block, resolve_model(model)[1].max_positions,
                  int(params[sc.P_DEVICES]), usd_per_hour(prep.hardware), tuple(notes))


def admissible(eng: Engine, reqs: Requests) -> np.ndarray:
    """Which requests can ever run: within max positions and within the whole pool."""
    total = reqs.prompt + reqs.output
    keep = blocks_for(total, eng.policy.block_size) <= eng.pool_blocks
    if eng.max_positions is not None:
        keep &= total <= eng.max_positions
    return keep


def serve(eng: Engine, reqs: Requests, rate: float | None = None, concurrency: int = 0,
          ttft_slo_s: float | None = None, tpot_slo_s: float | None = None, seen: np.ndarray | None = None,
          segments: tuple[np.ndarray, np.ndarray] | None = None) -> Run:
    """Serve ``reqs`` (sorted by arrival; with ``concurrency`` N > 0 a closed loop of N
    clients sets the arrivals) and measure the run. ``seen``: the token counts the engine's
    process has run before (iteration.new_shapes, updated; None: a fresh process);
    ``segments``: (start s, scale) of the host's speed over time (iteration.host_at; None:
    the engine's host throughout)."""
    keep = admissible(eng, reqs)
    served = reqs.subset(keep)
    p = eng.policy
    arrival = np.ascontiguousarray(served.arrival_s, dtype=np.float64).copy()
    records = np.zeros((RECORDS, loop.N_RECORD))
    first, last, preempted, itl, totals = loop.run(
        eng.model, arrival, np.ascontiguousarray(served.prompt, dtype=np.int64),
        np.ascontiguousarray(served.output, dtype=np.int64), np.ascontiguousarray(served.prefix, dtype=np.int64),
        p.max_batched_tokens, p.max_seqs, p.block_size, p.prefix_hit, p.batching == STATIC, not p.decode_graphs,
        eng.host, eng.pool_blocks, concurrency, records,
        new_shapes(p.max_batched_tokens) if seen is None else seen,
        *(segments if segments is not None else (np.zeros(0), np.zeros(0))))
    served = Requests(arrival, served.prompt, served.output, served.prefix)
    records = records[:int(totals[loop.T_RECORDS])].copy()
    records[:, 3] = eng.pool_blocks - records[:, 3]            # free -> used blocks
    m = {"rate": rate, "concurrency": concurrency or None, "requests": int(len(reqs)),
         "completed": int(len(served)), "rejected": int((~keep).sum())}
    m |= run_metrics(arrival, first, last, served.output, itl, totals, ttft_slo_s, tpot_slo_s, concurrency > 0)
    m["preemptions"] = int(totals[loop.T_PREEMPTIONS])
    m["iterations"] = int(totals[loop.T_ITERATIONS])
    m["kv_pool_blocks"] = eng.pool_blocks
    m["kv_peak_fraction"] = float(totals[loop.T_PEAK_BLOCKS]) / eng.pool_blocks
    tokens_per_s = m["output_tokens_per_s"]
    m["usd_per_million_tokens"] = (float(usd_per_million(eng.usd_per_hour, eng.devices, tokens_per_s))
                                   if eng.usd_per_hour is not None and tokens_per_s else None)
    return Run(m, served, first, last, preempted, records)


def meets(m: dict, ttft_slo_s: float | None, tpot_slo_s: float | None, percentile: int) -> bool:
    """A run meets the SLOs: not saturated, and the percentile of TTFT and of TPOT within them."""
    key = f"p{percentile}"
    if m["saturated"] or m["completed"] == 0:
        return False
    ok = ttft_slo_s is None or (m["ttft_s"][key] is not None and m["ttft_s"][key] <= ttft_slo_s)
    return ok and (tpot_slo_s is None or m["tpot_s"][key] is None or m["tpot_s"][key] <= tpot_slo_s)


def max_rate(eng: Engine, make_requests, ttft_slo_s, tpot_slo_s, percentile: int = 90,
             relative_tolerance: float = 0.01) -> tuple[float | None, Run | None]:
    """The highest rate (requests/s) whose run meets the SLOs (``meets``), by bisection in
    log rate to ``relative_tolerance``; ``make_requests(rate)`` draws a run's requests.
    Starts from an upper bound: twice the throughput of a run at a rate it cannot serve.
    (None, None) when even a near-idle rate misses them."""
    probe = serve(eng, make_requests(1e9))
    ceiling = 2.0 * (probe.metrics["requests_per_s"] or 1.0)
    lo, hi = ceiling * 1e-4, ceiling
    best = serve(eng, make_requests(lo), lo, ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s)
    if not meets(best.metrics, ttft_slo_s, tpot_slo_s, percentile):
        return None, None
    while hi / lo > 1.0 + relative_tolerance:
        mid = math.sqrt(lo * hi)
        run = serve(eng, make_requests(mid), mid, ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s)
        if meets(run.metrics, ttft_slo_s, tpot_slo_s, percentile):
            lo, best = mid, run
        else:
            hi = mid
    return lo, best
