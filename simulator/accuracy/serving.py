"""Serving predictions against measured continuous-batching runs (the harness's serving
mode, validation/harness/serving.py: files ``serving-<model>.json`` under
validation/measurements/<hardware>/<session>/).

Each measured rate is re-simulated with the same requests (arrival times, prompt and output
lengths as recorded), the same policy (token budget, max seqs, block size; decode-only
iterations eager when the file says decode_graphs false) on the hardware the folder names,
stack pytorch-ref. Compared per rate: TTFT p50 and p90, TPOT p50 (s) and output tokens/s
over the run (first arrival to last token); error = (predicted - measured) / measured.
A run recorded with a host probe (the harness's fixed pass timed before and after it) is
simulated with the host terms scaled to the host's speed the probe measured
(serving/host_state.py; ``host_scale`` in its row, None without a probe).
Requests the harness did not finish (a run stopped at its time cap) are left out of the
measured percentiles and counted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simulator.errors import SpecError
from simulator.serving.metrics import per_request
from simulator.serving.policy import Policy
from simulator.serving.requests import Requests

METRICS = ("ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "output_tokens_per_s")
SHORT = {"ttft_p50_s": "TTFT p50", "ttft_p90_s": "TTFT p90", "tpot_p50_s": "TPOT p50", "output_tokens_per_s": "tokens/s"}


def _times(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _observed(arrival, first, last, output) -> dict:
    t = per_request(arrival, first, last, output)
    done = np.isfinite(last)

    def pct(x, q):
        x = x[np.isfinite(x)]
        return float(np.percentile(x, q)) if x.size else None

    span = float(np.nanmax(last) - arrival.min()) if done.any() else 0.0
    return {"ttft_p50_s": pct(t["ttft_s"], 50), "ttft_p90_s": pct(t["ttft_s"], 90),
            "tpot_p50_s": pct(t["tpot_s"], 50),
            "output_tokens_per_s": float(output[done].sum()) / span if span > 0 else None}


def compare_file(path: Path, hardware: str, stack: str = "pytorch-ref") -> list[dict]:
    """One row per measured rate: model, rate, requests, unfinished, measured and predicted
    METRICS, their errors, and whether the simulation calls the rate saturated."""
    from simulator.serving.host_state import host_scale, scaled
    from simulator.serving.simulate import engine, serve

    try:
        doc = json.loads(Path(path).read_text())
        policy = Policy(**doc["policy"])
        model, points = doc["model"], doc["points"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(str(path), "", f"expected a serving measurement file ({type(exc).__name__})") from None
    eng = engine(model, hardware, stack, policy)
    rows = []
    for point in points:
        r = point["requests"]
        arrival, output = _times(r["arrival_s"]), np.array(r["output"], dtype=np.int64)
        first, last = _times(r["first_s"]), _times(r["last_s"])
        reqs = Requests(arrival, np.array(r["prompt"], dtype=np.int64), output, np.ones(len(arrival), dtype=np.int64))
        scale = host_scale(eng, point["host_probe"]) if point.get("host_probe") else None
        run = serve(scaled(eng, scale) if scale else eng, reqs, point["rate"])
        measured = _observed(arrival, first, last, output)
        predicted = _observed(run.requests.arrival_s, run.first_s, run.last_s, run.requests.output)
        row = {"model": model, "hardware": hardware, "session": Path(path).parent.name, "rate": point["rate"],
               "requests": len(arrival),
               "unfinished": int((~np.isfinite(last)).sum()), "saturated_predicted": run.metrics["saturated"],
               "host_scale": scale}
        for key in METRICS:
            m, p = measured[key], predicted[key]
            row[f"measured_{key}"], row[f"predicted_{key}"] = m, p
            row[f"error_{key}"] = (p - m) / m if m and p is not None else None
        rows.append(row)
    return rows


def measured_files(root: Path | None = None) -> list[tuple[Path, str]]:
    """(file, hardware name) of every committed serving measurement (under ``root``, else the
    data root's validation/measurements)."""
    from simulator.specs.measurement import measurement_root

    return [(p, p.parents[1].name) for p in sorted((root or measurement_root()).glob("*/*/serving-*.json"))]


def compare_all(root: Path | None = None, hardware: list[str] | None = None) -> list[dict]:
    """compare_file over every committed serving file (of the ``hardware`` devices when given)."""
    return [row for path, hw in measured_files(root) if not hardware or hw in hardware
            for row in compare_file(path, hw)]


def summary(rows: list[dict]) -> dict:
    """Median and max |error| of each metric over the rows."""
    out = {}
    for key in METRICS:
        errors = np.array([abs(r[f"error_{key}"]) for r in rows if r[f"error_{key}"] is not None])
        out[key] = {"n": int(errors.size), "median_abs_error": float(np.median(errors)) if errors.size else None,
                    "max_abs_error": float(errors.max()) if errors.size else None}
    return out
