"""A grid's shape: its configurations and the batch x prompt x output axes crossed with
each, in grid order (configurations, then batch, prompt, output; output fastest). Only
numpy here: a process that loads a prepared grid from the disk cache (cli/sweep.py) needs
no YAML, schema or graph code to read it back."""
from __future__ import annotations

import dataclasses

import numpy as np


def slice_axes(batch, prompt, output, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, S, N) of scenarios start..stop-1 of a configuration: flat indices into
    batch x prompt x output, output fastest."""
    k = np.arange(start, stop, dtype=np.int64)
    per_b = len(prompt) * len(output)
    return batch[k // per_b], prompt[(k // len(output)) % len(prompt)], output[k % len(output)]


@dataclasses.dataclass(frozen=True)
class Grid:
    """``groups``: the configurations, as grid.Group (what a grid file gives) or, once
    prepared, what explore.sweep.configured gave for each (the same order)."""

    path: str
    groups: tuple
    batch: np.ndarray        # int64 axes; scenarios run batch-major, output fastest
    prompt: np.ndarray
    output: np.ndarray

    slice_axes = staticmethod(slice_axes)

    @property
    def scenarios_per_group(self) -> int:
        return len(self.batch) * len(self.prompt) * len(self.output)

    @property
    def scenarios(self) -> int:
        return len(self.groups) * self.scenarios_per_group


@dataclasses.dataclass(frozen=True)
class Named:
    """What names a configuration in a sweep's messages (a grid.Group's model, device, stack,
    weight format and engine.batch.Layout), kept for one that cannot run without the grid
    module's classes."""

    model: str
    hardware: str
    stack: str
    weight_dtype: str
    layout: object
