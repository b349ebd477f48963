"""Grouped GEMMs over routed experts (numba): the tiles a router's uneven groups cost."""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def routed_tile_scale(mean_rows: float, sd_rows: float, tile_min: float, tile_max: float) -> float:
    """E[ceil(m / q)] / ceil(mean / q): a grouped GEMM's tiles over routed groups against the
    same rows spread evenly. Its kernel takes M tiles of q rows, the power of two >= the mean
    rows per group within [tile_min, tile_max]; a group past q runs another tile (its expert's
    weights streamed again), so the time scales with the tiles. A touched expert's rows
    m >= 1, m ~ Normal(mean, sd): E[ceil(m / q)] = 1 + sum_{j >= 1} P(m > j q). Measured on
    the H200 (pass-profile-1): x1.5 at 128 rows a group, x1.2 at 512, ~1 below 64."""
    if tile_max <= 0.0 or mean_rows <= 0.0 or sd_rows <= 0.0:
        return 1.0
    q = max(tile_min, 1.0)
    while q < mean_rows and q < tile_max:
        q *= 2.0
    tiles = 1.0
    j = 1.0
    while j * q <= mean_rows + 8.0 * sd_rows:
        tiles += 0.5 * math.erfc((j * q - mean_rows) / (sd_rows * np.sqrt(2.0)))
        j += 1.0
    return tiles / np.ceil(mean_rows / q)
