"""Collective communication cost: latency + size / bandwidth over a device's link.

For a payload of P bytes (the full tensor) over N devices, per-direction link bandwidth
W and one-hop latency L:
  ring all-reduce   2 (N-1)/N x P / W  +  2 (N-1) L      (reduce-scatter + all-gather)
  tree all-reduce   2 (N-1)/N x P / W  +  2 ceil(log2 N) L
  all-gather        (N-1)/N x P / W    +  (N-1) L         (tree: ceil(log2 N) L)
  all-to-all        (N-1)/N x P / W    +  (N-1) L         (each device keeps 1/N)
  send/recv         P / W              +  L
Returned as (bandwidth factor, latency steps): time = factor x P / W + steps x L.
"""
from __future__ import annotations

import math

from simulator.graph.ops import OpKind


def cost_terms(kind: OpKind, devices: int, algorithm: str = "ring") -> tuple[float, float]:
    """(bandwidth factor, number of latency hops) of one collective."""
    n = devices
    if n <= 1:
        return 0.0, 0.0
    hops = math.ceil(math.log2(n)) if algorithm == "tree" else n - 1
    if kind == OpKind.ALL_REDUCE:
        return 2.0 * (n - 1) / n, 2.0 * hops
    if kind in (OpKind.ALL_GATHER, OpKind.ALL_TO_ALL):
        return (n - 1) / n, float(hops if kind == OpKind.ALL_GATHER else n - 1)
    if kind == OpKind.SEND_RECV:
        return 1.0, 1.0
    raise ValueError(f"{kind!r} is not a collective")


def collective_time_s(kind: OpKind, payload_bytes: float, devices: int, bandwidth_bytes_per_s: float,
                      latency_s: float, algorithm: str = "ring") -> float:
    factor, hops = cost_terms(kind, devices, algorithm)
    return factor * payload_bytes / bandwidth_bytes_per_s + hops * latency_s
