"""Where weights and the KV cache live in a device's memory hierarchy, and what a byte of
each costs to stream (seconds per byte, joules per byte).

Levels are listed innermost first. Weights fill them greedily from the innermost level
(on-chip SRAM first: Groq, Cerebras, FPGA BRAM, a GPU cache for a small model); spread
over several levels, they stream each level's share at that level's bandwidth:
seconds per byte = sum(share_l / bandwidth_l). The KV cache and activations, which grow
with the workload, live in the level that holds the weights' last byte, or in the first
off-chip level when the weights end on chip (on a device with only on-chip memory, the
SRAM). This keeps placement independent of the scenario, so a sweep binds a device once. Whatever exceeds the total capacity is charged at the outermost level
(fits is reported separately).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.graph.ops import N_FEATURES, WEIGHT_COLUMNS


@dataclasses.dataclass(frozen=True)
class Placement:
    weight_s_per_byte: float
    other_s_per_byte: float       # KV cache and activations
    weight_j_per_byte: float | None
    other_j_per_byte: float | None
    weight_levels: tuple[str, ...]

    def seconds_per_byte(self) -> np.ndarray:
        """Seconds per byte of each feature column (ops.py): the weight columns at the
        weights' rate, the others at the KV cache and activations' rate."""
        column = np.full(N_FEATURES, self.other_s_per_byte)
        column[WEIGHT_COLUMNS] = self.weight_s_per_byte
        return column


def _spread(levels, free: list[float], size: float):
    """Take ``size`` bytes from the levels' free capacity, innermost first: [(level index, bytes)]."""
    shares = []
    remaining = size
    for i, level in enumerate(levels):
        take = min(remaining, free[i])
        if take > 0:
            shares.append((i, take))
            free[i] -= take
            remaining -= take
        if remaining <= 0:
            break
    if remaining > 0:
        shares.append((len(levels) - 1, remaining))
    return shares


def _cost(levels, shares, size: float):
    if size <= 0:
        shares, size = [(len(levels) - 1, 1.0)], 1.0
    seconds = sum(b / size / levels[i].bandwidth_bytes_per_s for i, b in shares)
    energies = [levels[i].energy_per_byte_j for i, _ in shares]
    joules = None if any(e is None for e in energies) else sum(
        b / size * levels[i].energy_per_byte_j for i, b in shares)
    return seconds, joules, tuple(levels[i].name for i, _ in shares)


def place(levels, weight_bytes: float) -> Placement:
    free = [level.capacity_bytes for level in levels]
    w_shares = _spread(levels, free, weight_bytes)
    off_chip = [i for i, level in enumerate(levels) if not level.on_chip]
    other = max(w_shares[-1][0] if w_shares else 0, off_chip[0] if off_chip else 0)
    w_s, w_j, names = _cost(levels, w_shares, weight_bytes)
    o_s, o_j, _ = _cost(levels, [(other, 1.0)], 1.0)
    return Placement(w_s, o_s, w_j, o_j, names)
