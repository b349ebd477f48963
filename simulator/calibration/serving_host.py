"""Host seconds of the reference stack's eager mixed pass and of its scheduler, fitted from the
serving microbenchmark (validation/harness/serving_micro.py: every ``mixed-iterations-*.json``
under a device's folder, pooled; never from the serving runs):

  host_s      = pass + L x (layer + decode_layer [D > 0] + fresh_chunk_layer x F
                + cached_chunk_layer x K + concat_layer [groups > 1])
  scheduler_s = scheduler + scheduler_per_running x R
D decode entries, F chunks from position 0, K chunks over cached positions,
groups = [D > 0] + F + K, L layers, R requests running after the step. Each term is a set of
launches the harness makes (MixedBatch.forward): per iteration the inputs, masks and LM head;
per layer the dense kernels, the decode group's scatter, gather and masked attention, each
chunk's own attention call with its transposes, and the concat of the groups' outputs; each
launch's cost is the host's, so the coefficients are seconds of host work. The pass is
timed to its device synchronize, so a point counts only where the device cannot be what
bounds it: its floor max(2 N T / peak, 2 N / bandwidth) (N active parameters, T tokens,
bf16) under FLOOR_SHARE of the measured time (a point's mean over the micro's rounds where
it has one, else its median). Least squares on relative error (soft L1),
every coefficient >= 0. The scheduler's two numbers: a line through Scheduler.step + finish.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.calibration import fits as F
from simulator.calibration.profile import quantity

TERMS = ("pass", "layer", "decode_layer", "fresh_chunk_layer", "cached_chunk_layer", "concat_layer")
SCHEDULER = ("scheduler", "scheduler_per_running")
FLOOR_SHARE = 0.4


def micro_files(hardware_name: str) -> list[Path]:
    from simulator.specs.measurement import measurement_root

    return sorted((measurement_root() / hardware_name).glob("*/mixed-iterations-*.json"))


def design(rows: list[dict]) -> np.ndarray:
    """The TERMS columns of each micro row (module docstring)."""
    out = []
    for r in rows:
        d, f, k, layers = r["decode"], r["fresh_chunks"], r["cached_chunks"], r["layers"]
        groups = (d > 0) + f + k
        out.append([1.0, layers, layers * (d > 0), layers * f, layers * k, layers * (groups > 1)])
    return np.array(out, dtype=float)


def device_floor_s(rows: list[dict], hardware) -> np.ndarray:
    """max(2 N T / peak, 2 N / bandwidth) of each row's model (bf16 weights)."""
    from simulator.api import resolve_model
    from simulator.engine.bind import peak_for
    from simulator.graph.transformer import active_parameter_count, build
    from simulator.specs.base import Dtype

    peak = peak_for(hardware.peak_flops(), Dtype.bf16, hardware.name)
    bandwidth = hardware.main_memory.bandwidth_bytes_per_s
    params = {}
    out = []
    for r in rows:
        if r["model"] not in params:
            params[r["model"]] = active_parameter_count(build(resolve_model(r["model"])[1]))
        n = params[r["model"]]
        out.append(max(2.0 * n * r["tokens"] / peak, 2.0 * n / bandwidth))
    return np.array(out)


def fit_mixed(rows: list[dict], hardware) -> F.Fit:
    from scipy.optimize import least_squares, nnls

    wall = np.array([r.get("wall_mean_s", r["wall_s"]) for r in rows])
    keep = device_floor_s(rows, hardware) < FLOOR_SHARE * wall
    X, y = design(rows)[keep], wall[keep]
    x0, _ = nnls(X, y)
    res = least_squares(lambda c: X @ c / y - 1.0, np.maximum(x0, 1e-7), bounds=(0.0, np.inf), loss="soft_l1",
                        f_scale=0.05)
    return F.Fit("mixed-pass host", {k: float(v) for k, v in zip(TERMS, res.x)}, X @ res.x / y - 1.0)


def fit_scheduler(rows: list[dict]) -> F.Fit:
    R = np.array([r["running"] for r in rows], float)
    t = np.array([r["step_s"] + r["finish_s"] for r in rows])
    c = np.linalg.lstsq(np.c_[np.ones_like(R), R], t, rcond=None)[0].clip(0.0)
    return F.Fit("serving scheduler", {k: float(v) for k, v in zip(SCHEDULER, c)}, (c[0] + c[1] * R) / t - 1.0)


def serving_host_fields(hardware) -> tuple[dict, list[F.Fit], list[str]]:
    """({"mixed_host": {term: "x s"}}, fits, sources) from every micro file of the device
    pooled (each session's host as it ran, so no one session's host speed decides them),
    or ({}, [], [])."""
    import json

    from simulator.calibration.files import relative_source

    files = micro_files(hardware.name)
    if not files:
        return {}, [], []
    docs = [json.loads(f.read_text()) for f in files]
    mixed = fit_mixed([r for d in docs for r in d["mixed"]], hardware)
    sched = fit_scheduler([r for d in docs for r in d["scheduler"]])
    values = {**mixed.params, **sched.params}
    return ({"mixed_host": {k: quantity(v, "s") for k, v in values.items()}}, [mixed, sched],
            [relative_source(f) for f in files])


def with_serving_host(fields: dict, fits: list, hardware) -> tuple[dict, list]:
    """calibrate's hook: the device entry with the mixed-pass host fields and their source."""
    more, more_fits, sources = serving_host_fields(hardware)
    if not more:
        return fields, fits
    return {**fields, **more, "fitted_from": "; ".join([fields.get("fitted_from", ""), *sources])}, fits + more_fits
