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
(serving/host_state.py; ``host_scale`` in its row, None without a probe), and one that also
timed the harness's CPU task during the run in segments of that speed (host_segments;
``host_segmented`` in its row).
Requests the harness did not finish (a run stopped at its time cap) are left out of the
measured percentiles and counted.
The rates of one file ran in one process, in order, so the token counts its passes had run
(iteration.new_shapes: a pass of a new count pays the profile's first_shape) carry from one
rate's simulation to the next, starting from those of the harness's warm-up (warm_up_tokens)
and its host probe's pass.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simulator.errors import SpecError
from simulator.serving.metrics import per_request
from simulator.serving.policy import Policy, Request, serve_wave
from simulator.serving.requests import Lengths, Requests, generate, parse_lengths

NOT_RUNS = ("serving-shapes-",)     # serving_shapes.py's microbenchmark (calibration/serving_host.py reads it)
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


WIDE_WARM_UP_SINCE = "2026-12-02T05:11:47+00:00"   # harness commit 8c7f2fe: the warm-up's second wave
WARM_UP_PROMPTS, WARM_UP_SEED_OFFSET, WARM_UP_OUTPUT = 48, 1000, 16


def warm_up_tokens(doc: dict) -> list[int]:
    """The token counts of the passes validation/harness/serving.warm_up ran before a file's
    first rate (restated from the harness, which records them as ``warm_up_tokens`` since it
    does): 8 requests of the longest prompt admitted at once, 8 tokens each; then, in files
    from WIDE_WARM_UP_SINCE on, 48 prompts drawn as the runs draw theirs (seed + 1000, within
    the slot cache) arriving one a step, 16 tokens each. The longest prompt is the first
    rate's (before WIDE_WARM_UP_SINCE) or the 48 prompts'. None for a file the harness did not
    write."""
    if "warm_up_tokens" in doc:
        return [int(t) for t in doc["warm_up_tokens"]]
    if doc.get("harness") != "serving":         # not the harness's file: no warm-up known
        return []
    policy, first = Policy(**doc["policy"]), doc["points"][0]
    wide = doc["environment"]["date_utc"] >= WIDE_WARM_UP_SINCE
    if wide:
        drawn = generate(WARM_UP_PROMPTS, None, parse_lengths(doc["prompt"], "prompt"),
                         Lengths("fixed", WARM_UP_OUTPUT), first["seed"] + WARM_UP_SEED_OFFSET).prompt
        prompts = [min(int(x), doc["slot_max_len"] - 17) for x in drawn]
        waves = [([Request(0.0, max(prompts), 8) for _ in range(8)], 8),
                 ([Request(0.0, q, WARM_UP_OUTPUT) for q in prompts], 1)]
    else:
        waves = [([Request(0.0, max(first["requests"]["prompt"]), 8) for _ in range(8)], 8)]
    return [t for reqs, per_step in waves for t in serve_wave(policy, reqs, per_step, doc["pool_blocks"])]


def compare_file(path: Path, hardware: str, stack: str = "pytorch-ref") -> list[dict]:
    """One row per measured rate: model, rate, requests, unfinished, measured and predicted
    METRICS, their errors, and whether the simulation calls the rate saturated."""
    from simulator.engine.kernels.iteration import new_shapes
    from simulator.serving.host_state import host_scale, host_segments, scaled
    from simulator.serving.simulate import engine, serve

    try:
        doc = json.loads(Path(path).read_text())
        policy = Policy(**doc["policy"])
        model, points = doc["model"], doc["points"]
        seen = new_shapes(policy.max_batched_tokens)
        for t in warm_up_tokens(doc):
            seen[min(t, policy.max_batched_tokens)] = 1
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
        if point.get("host_probe"):
            seen[min(int(point["host_probe"]["decode"]), policy.max_batched_tokens)] = 1
        segments = host_segments(eng, point)
        run = serve(eng if segments is not None else scaled(eng, scale) if scale else eng, reqs, point["rate"],
                    seen=seen, segments=segments)
        measured = _observed(arrival, first, last, output)
        predicted = _observed(run.requests.arrival_s, run.first_s, run.last_s, run.requests.output)
        row = {"model": model, "hardware": hardware, "session": Path(path).parent.name, "rate": point["rate"],
               "requests": len(arrival),
               "unfinished": int((~np.isfinite(last)).sum()), "saturated_predicted": run.metrics["saturated"],
               "host_scale": scale, "host_segmented": segments is not None}
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

    return [(p, p.parents[1].name) for p in sorted((root or measurement_root()).glob("*/*/serving-*.json"))
            if not p.name.startswith(NOT_RUNS)]


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
