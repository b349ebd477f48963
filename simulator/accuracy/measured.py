"""Predictions against measured runs: error statistics per hardware, phase and metric.

Measured runs live in ``validation/measurements/<hardware>/[<session>/]e2e-*.json``
(written by validation/harness; the top folder's name is the hardware spec's name). Each prefill point
(B, S) is predicted as the TTFT of B x S; each decode point (B, C) as the decode step at
position C (prompt C, output 2), each at the precisions it ran in (weights, activations, KV
cache: an FP8 W8A8 point as fp8, fp8, bf16) and its layout (tp, pp, ep, microbatches of a
parallel run; 1 each on one device). Energy points compare joules per call.
Error = (predicted - measured) / measured.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from simulator.api import prepare
from simulator.engine.predict import evaluate
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.measurement import ModelPoint, load_e2e, measurement_root
from simulator.specs.workload import workload


@dataclasses.dataclass(frozen=True)
class Point:
    hardware: str
    model: str
    phase: str               # prefill | decode
    batch: int
    length: int              # prompt (prefill) or context position (decode)
    metric: str              # latency | energy
    measured: float          # seconds or joules per call
    source: str
    dtype: str = "bf16"      # the run's dtype: weights, activations and KV cache unless named below
    weight_dtype: str | None = None        # FP8 W8A8 runs: fp8 weights and matmul inputs, bf16 KV
    activation_dtype: str | None = None
    kv_dtype: str | None = None
    suite: str | None = None               # the harness suite (dense, fp8, long, moe); None before suites
    tp: int = 1                            # parallel runs (validation/harness/parallel_e2e.py): the layout
    pp: int = 1
    ep: int = 1
    microbatches: int = 1

    @classmethod
    def of(cls, hardware: str, row: ModelPoint, metric: str, value: float, source: str) -> Point:
        """A point from a harness record (an e2e file's point or energy row)."""
        w, a, kv = row.precisions
        return cls(hardware, row.model, row.phase, row.batch, row.length, metric, value, source, row.dtype,
                   w, a, kv, row.suite, row.tp, row.pp, row.ep, row.microbatches)

    @property
    def layout(self) -> dict:
        """The workload fields of a parallel run (tp, pp, ep, microbatches); {} on one device."""
        fields = dict(tp=self.tp, pp=self.pp, ep=self.ep, microbatches=self.microbatches)
        return {k: v for k, v in fields.items() if v != 1}

    @property
    def precisions(self) -> tuple[Dtype, Dtype, Dtype]:
        """(weights, activations, KV cache) to predict the point with."""
        return (Dtype(self.weight_dtype or self.dtype), Dtype(self.activation_dtype or self.dtype),
                Dtype(self.kv_dtype or self.dtype))

    @property
    def label(self) -> str:
        what = "S" if self.phase == "prefill" else "C"
        where = "".join(f" {k}={v}" for k, v in self.layout.items())
        return (f"{self.model}{'' if self.dtype == 'bf16' else ' ' + self.dtype}{where} {self.phase} B={self.batch} "
                f"{what}={self.length}")


def load_points(root: Path | None = None) -> list[Point]:
    """Every measured latency and energy point under ``root``."""
    root = root or measurement_root()
    points = []
    for path in sorted(root.glob("*/**/e2e-*.json")):
        data = load_e2e(path)
        hardware = path.relative_to(root).parts[0]
        for row, metric, value in [*((r, "latency", r.latency_median_s) for r in data.points),
                                   *((r, "energy", r.energy_per_call_j) for r in data.energy
                                     if r.energy_per_call_j is not None)]:
            points.append(Point.of(hardware, row, metric, value, str(path)))
    return points


def _measured_architecture(model: str):
    """The harness runs full attention (it ignores sliding windows): predict what it ran."""
    name, arch, _ = registry.model(model)
    return name, arch.model_copy(update={"sliding_window": None})


def predict_point(point: Point, stack, profile_from: str | None = None, hardware=None) -> float:
    """Predicted seconds or joules of one measured point. ``profile_from`` predicts with
    another device's fitted profile (cross-hardware transfer); ``hardware`` (a spec) and a
    StackSpec ``stack`` predict with ones not (yet) in the registry."""
    hw = hardware or registry.hardware(point.hardware)
    name, arch = _measured_architecture(point.model)
    prep = prepare((name, arch), hw, stack, *point.precisions, tp=point.tp, profile_from=profile_from, ep=point.ep)
    if point.phase == "prefill":
        p = evaluate(prep, workload(batch=point.batch, prompt=point.length, output=1, **point.layout), require_fit=False)
        return p.ttft_s if point.metric == "latency" else p.prefill_energy_j
    p = evaluate(prep, workload(batch=point.batch, prompt=point.length, output=2, **point.layout), require_fit=False)
    return p.tpot_s if point.metric == "latency" else p.decode_step_energy_j


def errors(points: list[Point], stack: str, profile_from: str | None = None) -> np.ndarray:
    return np.array([(predict_point(p, stack, profile_from) - p.measured) / p.measured for p in points])


def transfers(points: list[Point], stack: str):
    """Cross-hardware transfer: each measured device's points predicted with every other
    measured device's fitted profile, as (target, source, the target's points, errors)."""
    hardware = sorted({p.hardware for p in points})
    for target in hardware:
        subset = [p for p in points if p.hardware == target]
        for source in hardware:
            if source != target:
                yield target, source, subset, errors(subset, stack, profile_from=source)


def row_name(point: Point) -> str:
    """The device, and for a point of a suite beyond the dense bf16 grid the suite
    ("h200-sxm fp8"): those runs are reported apart, never averaged into the dense figures."""
    return point.hardware if point.suite in (None, "dense") else f"{point.hardware} {point.suite}"


def summarise(points: list[Point], errs: np.ndarray, worst: int = 5) -> list[dict]:
    """One row per (hardware [suite], phase, metric): n, median/p90/max |error|, mean bias, worst points."""
    rows = []
    keys = sorted({(row_name(p), p.phase, p.metric) for p in points})
    for hardware, phase, metric in keys:
        idx = [i for i, p in enumerate(points) if (row_name(p), p.phase, p.metric) == (hardware, phase, metric)]
        e = errs[idx]
        order = np.argsort(-np.abs(e))[:worst]
        rows.append({"hardware": hardware, "phase": phase, "metric": metric, "n": len(idx),
                     "median_abs_error": float(np.median(np.abs(e))),
                     "p90_abs_error": float(np.percentile(np.abs(e), 90)),
                     "max_abs_error": float(np.abs(e).max()), "mean_bias": float(e.mean()),
                     "worst": [{"point": points[idx[j]].label, "error": float(e[j])} for j in order]})
    return rows


def session_of(point: Point) -> str:
    """The measurement session a point came from: its file's folder under the device folder."""
    parts = Path(point.source).parts
    return parts[-2] if parts[-2] != point.hardware else "run-1"


def summarise_sessions(points: list[Point], errs: np.ndarray) -> list[dict]:
    """Latency errors per (hardware, session, phase): sessions differ in host speed."""
    rows = []
    for key in sorted({(p.hardware, session_of(p), p.phase) for p in points if p.metric == "latency"}):
        idx = [i for i, p in enumerate(points) if p.metric == "latency" and (p.hardware, session_of(p), p.phase) == key]
        e = np.abs(errs[idx])
        rows.append({"hardware": key[0], "session": key[1], "phase": key[2], "n": len(idx),
                     "median_abs_error": float(np.median(e)), "p90_abs_error": float(np.percentile(e, 90))})
    return rows

