"""The validation evidence for the devices a report shows: their measured runs predicted
with the stack's profile (accuracy.measured, what ``llmsim validate`` reports) and the
published runs of others on them (accuracy.published). The measured runs are of the
reference harness, so they speak for ``pytorch-ref`` only; another stack has none."""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator import DEFAULT_STACK
from simulator.accuracy.measured import Point, errors, load_points, summarise
from simulator.accuracy.published import Comparison, compare


@dataclasses.dataclass(frozen=True)
class Evidence:
    stack: str
    points: list[Point]              # measured points of the devices shown (empty for another stack)
    errors: np.ndarray               # (predicted - measured) / measured, one per point
    summary: list[dict]              # accuracy.measured.summarise rows
    published: list[Comparison]      # published points on the devices shown
    missing: list[str]               # devices shown with neither

    def predicted(self) -> np.ndarray:
        """Each measured point's prediction (seconds or joules): measured x (1 + error)."""
        return np.array([p.measured for p in self.points]) * (1.0 + self.errors)


def evidence_for(hardware: list[str], stack: str) -> Evidence:
    """Measured and published evidence for the devices named ``hardware`` (spec names)."""
    names = set(hardware)
    points = [p for p in load_points() if p.hardware in names] if stack == DEFAULT_STACK else []
    errs = errors(points, stack) if points else np.zeros(0)
    published = [c for c in compare() if c.point.hardware in names]
    covered = {p.hardware for p in points} | {c.point.hardware for c in published}
    return Evidence(stack, points, errs, summarise(points, errs) if points else [], published,
                    [h for h in dict.fromkeys(hardware) if h not in covered])
