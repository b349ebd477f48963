"""Memory footprint of a scenario (bytes) and whether it fits.

weights     = parameters x weight bytes per element
kv_cache    = B x min(S + N, W) x layers x 2 x kv_dim x kv bytes per element
activations = the largest transient working set of one operator in the prefill pass
              (its token- and sequence-proportional bytes: inputs + outputs, and the score
              matrix of unfused attention), which a runtime must hold besides the above
"""
from __future__ import annotations

import numpy as np

from simulator.graph.lower import OpTable
from simulator.graph.ops import KV, ONE


def kv_cache_bytes(table: OpTable, batch: int, positions: int) -> float:
    span = min(positions, table.window) if table.window else positions
    return batch * span * table.kv_bytes_per_token


def activation_bytes(table: OpTable, prefill_features: np.ndarray) -> float:
    transient = table.bytes.copy()
    transient[:, ONE] = 0.0
    transient[:, KV] = 0.0
    return float((transient @ prefill_features).max())
