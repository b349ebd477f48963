"""`llmsim validate --live`: calibrate this CPU afresh (quick microbenchmarks, nothing
written to the registry), measure a handful of small end-to-end points of the reference stack,
and report how far the fresh profile's predictions are from them. About a minute or two on
two cores; never part of the test run (a shared machine's timings move too much)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from simulator.specs import registry
from simulator.accuracy.measured import Point, predict_point
from simulator.specs.measurement import E2EPoint

LIVE_MODEL = "smollm-135m"


def measure_points(cpu, probe, log) -> list[Point]:
    """The harness's quick grid of the live model in each compute dtype, as validation points."""
    from simulator.calibration.thismachine import compute_dtypes

    hw_name = probe.spec["name"]
    (cfg,) = cpu.model_configs([LIVE_MODEL])
    points = []
    for dtype in compute_dtypes(probe.spec):
        rows, _ = cpu.measure_model(cfg, dtype.value, cpu.QUICK_GRID, log, probe.est_flop_per_s)
        points += [Point.of(hw_name, r, "latency", r.latency_median_s, "live") for r in map(E2EPoint.model_validate, rows)]
    return points


def run_live(stack_name: str, registry_hardware: str | None, log=lambda m: None) -> tuple[list[Point], dict]:
    """(measured points, {column: predicted seconds}) - the fresh profile's predictions, and
    the registry entry's where ``registry_hardware`` names one."""
    from simulator.calibration import thismachine
    from simulator.calibration.calibrate import fit_device
    from simulator.calibration.profile import profile_from_fields

    cpu = thismachine.harness_cpu()
    probe = thismachine.probe(log=log)
    hw = registry.validate(registry._HARDWARE, probe.spec, "this machine (probed)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = thismachine.measure_micro(probe, Path(tmp), quick=True, log=log)
        fields, _ = fit_device(hw, list(paths.values()))
    base = registry.stack(stack_name)
    fresh = base.model_copy(update={"devices": {**base.devices, hw.name: profile_from_fields(fields)}})
    points = measure_points(cpu, probe, log)
    predicted = {"fresh profile": np.array([predict_point(p, fresh, hardware=hw) for p in points])}
    if registry_hardware:
        named = registry.hardware(registry_hardware)
        predicted[f"{named.name} ({stack_name})"] = np.array([predict_point(p, stack_name, hardware=named)
                                                              for p in points])
    return points, predicted


def live_report(stack_name: str, registry_hardware: str | None, log=lambda m: None) -> tuple[str, dict]:
    from simulator.report.table import render

    points, predicted = run_live(stack_name, registry_hardware, log)
    measured = np.array([p.measured for p in points])
    errors = {col: pred / measured - 1.0 for col, pred in predicted.items()}
    rows = [[p.label, f"{p.measured * 1e3:.1f}"] + [c for col in predicted for c in
                                                      (f"{predicted[col][i] * 1e3:.1f}", f"{100 * errors[col][i]:+.0f}%")]
            for i, p in enumerate(points)]
    head = ["point", "measured ms"] + [h for col in predicted for h in (f"{col} ms", "error")]
    table = render(head, rows, align_right=set(range(1, len(head))))
    summary = [f"  {col}: {phase} median |error| {100 * np.median(np.abs(e[idx])):.1f}% (n={len(idx)})"
               for col, e in errors.items() for phase in ("prefill", "decode")
               for idx in [[i for i, p in enumerate(points) if p.phase == phase]] if idx]
    data = {"points": [dict(label=p.label, measured_s=p.measured, **{col: float(predicted[col][i]) for col in predicted})
                       for i, p in enumerate(points)]}
    return (f"live: {len(points)} points of {LIVE_MODEL} measured now on this machine\n\n{table}\n\n"
            + "\n".join(summary)), data
