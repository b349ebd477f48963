"""What the report shows, gathered from the library's own API and nothing else: per device
``simulator.predict``'s Prediction (its ``confidence`` band when the engine gives one), the
fewest devices that hold the workload when one does not (``api.fewest_devices``, as
``llmsim compare`` does), the cost per million output tokens (explore.cost), the roofline
points (``api.roofline_data``), the time shares by operator kind (the ``predict --plot``
picture's ``phase_shares``), the validation evidence (evidence.py) and, when asked, the serving
curves (serving.py, what ``llmsim serving`` runs).
"""
from __future__ import annotations

import dataclasses

from simulator.api import fewest_devices, predict_workload, roofline_data, resolve_hardware, resolve_model
from simulator.engine.result import Prediction
from simulator.engine.roofline_points import RooflineData
from simulator.explore.cost import usd_per_million_tokens
from simulator.report.html.evidence import Evidence, evidence_for
from simulator.report.html.serving import serving_runs
from simulator.report.plots.breakdown import phase_shares
from simulator.specs.workload import Workload


@dataclasses.dataclass(frozen=True)
class DeviceView:
    """One device of the report: the scenario as asked, or on the fewest devices that hold it."""

    hardware: str                    # the name (or path) asked for
    label: str                       # "tpu-v5e", or "tpu-v5e x2 (tp 2, pp 1)"
    prediction: Prediction
    usd_per_million_output_tokens: float | None
    roofline: RooflineData | None    # None with a draft model (the roofline is one model's)
    phases: list                     # breakdown.phase_shares: [(phase, time s, {kind: fraction})]
    fits_as_asked: bool
    shown: Workload | None = None    # the workload predicted (None: nothing holds it)
    serving: list = dataclasses.field(default_factory=list)   # serving.serving_runs metrics, one per rate


@dataclasses.dataclass(frozen=True)
class ReportData:
    model: str
    stack: str
    workload: Workload
    devices: list[DeviceView]
    evidence: Evidence
    notes: list[str]
    rates: list[float] = dataclasses.field(default_factory=list)   # the serving curves' rates (requests/s)


def device_view(model, name: str, stack: str, w: Workload) -> tuple[DeviceView, str | None]:
    """The device's view, and a note when it is not shown as asked (on the fewest devices
    that hold the workload, or nowhere when none do)."""
    hw = resolve_hardware(name)
    asked = predict_workload(model, hw, stack, w)
    shown = w if asked.memory.fits else fewest_devices(model, hw, stack, w)
    p = asked if shown is None or shown is w else predict_workload(model, hw, stack, shown)
    label = hw.name if p is asked else f"{hw.name} x{p.devices} (tp {p.tp}, pp {p.pp})"
    note = (f"{hw.name}: the workload does not fit, and no tensor x pipeline split of this device holds it"
            if shown is None else None if shown is w else
            f"{hw.name}: does not fit as asked; shown as {label}, the fewest devices that hold it")
    fits = p.memory.fits
    cost = usd_per_million_tokens(hw, p.devices, p.e2e_s, p.batch * p.output) if fits else None
    roof = None if w.draft_model is not None else roofline_data(model, hw, stack, shown or w)
    return DeviceView(name, label, p, cost, roof, phase_shares(p) if fits else [], asked.memory.fits, shown), note


def report_data(model, hardware: list[str], stack: str, w: Workload, rates: list[float] | None = None) -> ReportData:
    """Everything one report (or one update of the web app) shows, for ``hardware`` (names or
    spec paths) under workload ``w``; with ``rates`` (requests/s) the serving curves too."""
    name = resolve_model(model)[0]
    views, notes = [], []
    for device in hardware:
        view, note = device_view(model, device, stack, w)
        notes += [note] if note else []
        if rates and view.shown is not None:
            runs, why = serving_runs(model, resolve_hardware(device), stack, view.shown, rates)
            view = dataclasses.replace(view, serving=runs)
            notes += [f"{view.label}: not served ({why})"] if why else []
        views.append(view)
    if w.draft_model is not None:
        notes.append("the roofline shows one model's operators: it is left out with a draft model")
    evidence = evidence_for([v.prediction.hardware for v in views], stack)
    return ReportData(name, stack, w, views, evidence, notes, list(rates or []))
