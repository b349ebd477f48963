"""A calibration (calibration/from_runs.py) as a stack YAML that `--stack PATH` reads: the
base stack's file with each fitted profile's knobs applied, and a ``calibration`` record of
the parameters (value, 1-sigma, bounds, meaning), the ranges of the runs it was fitted on,
the cross-validation scheme and its errors, beside the in-sample ones."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import yaml

from simulator.calibration.from_runs import Calibration, addresses, summary
from simulator.calibration.profile import ratio
from simulator.specs import registry

BASE_ONLY = ("calibration",)          # a base's own record is not the new stack's


def base_path(base: str) -> Path:
    """The file of a stack given by registry name or path."""
    return registry.stack_index().get(base) or Path(base)


def _sig(x: float) -> float:
    return float(f"{x:.4g}") + 0.0 if np.isfinite(x) else None


def parameters(cal: Calibration) -> list[dict]:
    """Each fitted slot: name, unit, value, 1-sigma (null where the runs cannot tell it),
    bounds, whether the fit ended on a bound, and what it means."""
    p = cal.problem
    return [{"name": s.label, "unit": s.knob.unit, "value": _sig(x), "sigma": _sig(sd),
             "bounds": [_sig(lo), _sig(hi)], "at_bound": bool(b), "profiles": list(s.group or ["all"]),
             "meaning": s.knob.meaning}
            for s, x, sd, b, lo, hi in zip(p.slots, cal.fit.x, cal.fit.sigma, cal.fit.at_bound, p.lower, p.upper)]


def fitted_ranges(cal: Calibration) -> dict:
    """What the runs span: models, devices, and the ranges of batch, prompt, output, tp."""
    runs = cal.problem.obs.runs
    span = {f: [min(getattr(r, f) for r in runs), max(getattr(r, f) for r in runs)]
            for f in ("batch", "prompt", "output", "tp", "pp")}
    return {"runs": len(runs), "models": sorted({r.model for r in runs}),
            "hardware": sorted({r.hardware for r in runs}), **span,
            "metrics": sorted(set(cal.problem.obs.metric))}


def _rounded(rows: list[dict]) -> list[dict]:
    return [{k: (ratio(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]


def held_out(cal: Calibration) -> list[dict]:
    """Each observation's cross-validated prediction: run source, metric, measured,
    predicted by the fit without its fold, and the relative error."""
    obs = cal.problem.obs
    return [{"run": obs.runs[i].source, "metric": m, "measured": _sig(v), "predicted": _sig(v * (1 + e)),
             "error": _sig(e)} for i, m, v, e in zip(obs.run_of, obs.metric, obs.value, cal.cv)]


def record(cal: Calibration, sources: list[str], base: str) -> dict:
    """The stack's ``calibration`` mapping."""
    return {"method": "llmsim calibrate --from-runs: least squares on log(predicted / measured) "
                      "through the predict path; 1-sigma from the Jacobian",
            "base": base, "runs_from": sources, "parameters": parameters(cal), "fitted_on": fitted_ranges(cal),
            "cross_validation": {"scheme": cal.scheme, "errors": _rounded(summary(cal.problem, cal.cv)),
                                 "held_out": held_out(cal)},
            "in_sample": _rounded(summary(cal.problem, cal.in_sample))}


def stack_document(cal: Calibration, name: str, base: str, sources: list[str], notes: str = "") -> dict:
    """The new stack file's mapping: the base's fields, the fitted profiles, name,
    provenance and the calibration record."""
    from simulator.calibration.knobs import adjusted_raw

    raw = {k: v for k, v in registry.read_yaml(base_path(base)).items() if k not in BASE_ONLY}
    p = cal.problem
    profiles = addresses(p.base)
    for address, slots in p.targets.items():
        if not slots:
            continue
        values = {s.knob: float(cal.fit.x[p.slots.index(s)]) for s in slots}
        section, _, key = address.partition(".")
        holder = raw if not key else raw.setdefault(section, {})
        written = holder.get(key or "default")
        if written is None and address in p.origin:          # a device entry the fit added
            section0, _, key0 = p.origin[address].partition(".")
            written = (raw.get(section0) or {}).get(key0) if key0 else raw.get("default")
        holder[key or "default"] = adjusted_raw(dict(written or {}), profiles[address], values, p.factors[address])
    cv = "; ".join(f"{r['metric']} median |error| {100 * r['median_abs_error']:.1f}% (n={r['n']})"
                   for r in summary(p, cal.cv))
    raw.update(name=name, description=f"calibrated from end-to-end runs on top of {base} ({p.base.description})",
               provenance={"sources": [*sources, f"base stack: {base}"],
                           "date": datetime.date.today().isoformat(),
                           "notes": (f"{notes} " if notes else "") + f"Fitted by `llmsim calibrate --from-runs` "
                                    f"on {len(p.obs.runs)} runs; cross-validated (leave one {cal.scheme} out): {cv}."},
               calibration=record(cal, sources, base))
    return raw


def stack_text(document: dict) -> str:
    """The YAML text (a JSON round trip first: shared mappings would come out as anchors)."""
    header = "# Fitted by `llmsim calibrate --from-runs` (rerun it to refresh; do not edit by hand).\n"
    return header + yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, width=100)
