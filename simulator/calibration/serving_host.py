"""Host seconds of the reference stack's eager mixed pass and of its scheduler, fitted from the
serving microbenchmark (validation/harness/serving_micro.py: every ``mixed-iterations-*.json``
under a device's folder, pooled; never from the serving runs):

  host_s      = pass + L x (layer + decode_layer [D > 0] + fresh_chunk_layer x F
                + cached_chunk_layer x K + concat_layer [groups > 1])
  wall_s      = roofline.combine(device_s, host_s, p): the p-norm of the device's work and
                the host's launches (p the overlap exponent; the max as p grows)
  scheduler_s = scheduler + scheduler_per_running x R
D decode entries, F chunks from position 0, K chunks over cached positions,
groups = [D > 0] + F + K, L layers, R requests running after the step. Each host term is a
set of launches the harness makes (MixedBatch.forward): per iteration the inputs, masks and
LM head; per layer the dense kernels, the decode group's scatter, gather and masked
attention, each chunk's own attention call with its transposes, and the concat of the
groups' outputs; each launch's cost is the host's, so the coefficients are seconds of host
work. device_s is the simulator's own (kernels/iteration.iteration_device_s under the
profile fitted so far, prefill step overhead included). The launches overlap the device's
work only in part where the two are alike (a chunk of a few hundred tokens beside the
decodes): p says how much. The host terms start from the points whose device seconds are
under FLOOR_SHARE of the measured time (non-negative least squares), then the six terms and
p are fitted together over every point: least squares on relative error (soft L1), each
term >= 0, p in [P_MIN, P_MAX]; the measured time is a point's mean over the micro's rounds
where it has one, else its median. The scheduler's two numbers: a line through
Scheduler.step + finish.

first_shape (s): what a pass adds the first time its process runs its token count (the
GEMMs' first use of that row count), from validation/harness/serving_shapes.py's files
(``serving-shapes-*.json``; none: no term): per model, each new pass's and (beside decodes:
without, it adds a decode group) new-token-count pass's wall seconds less the least of its
two repeats, at the profile's host speed (divided
by host_scale, serving/host_state.py's formula, of that model's host probe under the terms
just fitted); the median over every sample of every model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.calibration import fits as F
from simulator.calibration.profile import quantity

TERMS = ("pass", "layer", "decode_layer", "fresh_chunk_layer", "cached_chunk_layer", "concat_layer")
SCHEDULER = ("scheduler", "scheduler_per_running")
FLOOR_SHARE = 0.4
P_MIN, P_MAX = 1.0, 30.0
STACK = "pytorch-ref"                # the stack whose kernel structure the harness runs


def micro_files(hardware_name: str) -> list[Path]:
    from simulator.specs.measurement import measurement_root

    return sorted((measurement_root() / hardware_name).glob("*/mixed-iterations-*.json"))


def shape_files(hardware_name: str) -> list[Path]:
    from simulator.specs.measurement import measurement_root

    return sorted((measurement_root() / hardware_name).glob("*/serving-shapes-*.json"))


def design(rows: list[dict]) -> np.ndarray:
    """The TERMS columns of each micro row (module docstring)."""
    out = []
    for r in rows:
        d, f, k, layers = r["decode"], r["fresh_chunks"], r["cached_chunks"], r["layers"]
        groups = (d > 0) + f + k
        out.append([1.0, layers, layers * (d > 0), layers * f, layers * k, layers * (groups > 1)])
    return np.array(out, dtype=float)


def row_entries(r: dict) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of a micro row's entries (serving_micro.entries: decode entries at
    context .. context + D - 1, F chunks from 0, K chunks from cached_start)."""
    d, c, f, k = r["decode"], r["context"], r["fresh_chunks"], r["cached_chunks"]
    starts = [c + i for i in range(d)] + [0] * f + [r["cached_start"]] * k
    lengths = [1] * d + [r["fresh_length"]] * f + [r["cached_length"]] * k
    return np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64)


def device_s(rows: list[dict], hardware, fields: dict) -> np.ndarray:
    """Each row's device seconds (iteration.iteration_device_s) with the device entry
    ``fields`` (the profile fitted so far) in the STACK's place for ``hardware``."""
    from simulator.calibration.profile import profile_from_fields
    from simulator.engine.kernels.iteration import decode_cache, iteration_device_s
    from simulator.graph.ops import N_FEATURES
    from simulator.serving.policy import Policy
    from simulator.serving.simulate import engine
    from simulator.specs import registry

    base = registry.stack(STACK)
    stack = base.model_copy(update={"devices": {**base.devices, hardware.name: profile_from_fields(fields)}})
    feats, scratch = np.zeros(N_FEATURES), np.zeros(N_FEATURES)
    models, out = {}, []
    for r in rows:
        if r["model"] not in models:
            eng = engine(r["model"], hardware, stack, Policy(decode_graphs=False))
            models[r["model"]] = (eng.model, decode_cache(eng.model[0].shape[0], 256))
        model, cache = models[r["model"]]
        starts, lengths = row_entries(r)
        counts = np.ones(len(starts), dtype=np.int64)
        out.append(iteration_device_s(model, cache, counts, starts, lengths, len(starts), feats, scratch)[0])
    return np.array(out)


def overlapped_s(device: np.ndarray, host: np.ndarray, p: float) -> np.ndarray:
    """roofline.combine(device, host, p) of each row."""
    from simulator.engine.kernels.roofline import combine

    return np.array([combine(float(d), float(h), p) for d, h in zip(device, host)])


def fit_mixed(rows: list[dict], hardware, fields: dict) -> F.Fit:
    from scipy.optimize import least_squares, nnls

    wall = np.array([r.get("wall_mean_s", r["wall_s"]) for r in rows])
    X, dev = design(rows), device_s(rows, hardware, fields)
    keep = dev < FLOOR_SHARE * wall
    x0, _ = nnls(X[keep], wall[keep])
    start = np.r_[np.maximum(x0, 1e-7), 4.0]

    def residual(theta):
        return overlapped_s(dev, X @ theta[:-1], theta[-1]) / wall - 1.0

    lower, upper = np.r_[np.zeros(len(TERMS)), P_MIN], np.r_[np.full(len(TERMS), np.inf), P_MAX]
    res = least_squares(residual, start, bounds=(lower, upper), loss="soft_l1", f_scale=0.05)
    params = {k: float(v) for k, v in zip(TERMS, res.x)} | {"overlap_exponent": float(res.x[-1])}
    return F.Fit("mixed-pass host", params, residual(res.x))


def probe_scale(model_doc: dict, hardware, fields: dict, params: dict) -> float:
    """host_scale (serving/host_state.py) of a serving-shapes model's host probe: the probe's
    host seconds ((m^p - d^p)^(1/p) of its median wall m and device seconds d) over the host
    seconds the fitted terms ``params`` give that pass."""
    probe = model_doc["host_probe"]
    row = dict(model=model_doc["model"], layers=model_doc["layers"], decode=int(probe["decode"]),
               context=int(probe["context"]), fresh_chunks=0, fresh_length=0, cached_chunks=0, cached_start=0,
               cached_length=0)
    d = float(device_s([row], hardware, fields)[0])
    host = float(design([row])[0] @ np.array([params[k] for k in TERMS]))
    m, p = float(np.median(list(probe["before_s"]) + list(probe["after_s"]))), params["overlap_exponent"]
    return (max(m ** p - d ** p, 0.0) ** (1.0 / p) if p > 0.0 else m) / host


def fit_first_shape(docs: list[dict], hardware, fields: dict, params: dict) -> F.Fit:
    """first_shape (module docstring) over the serving-shapes files ``docs``."""
    samples = []
    for doc in docs:
        for m in doc["models"]:
            scale = probe_scale(m, hardware, fields, params)
            for r in m["shapes"]:
                base = min(r["repeat_s"])
                new = [r["new_s"]] + ([r["new_t_s"]] if r["decode"] > 0 else [])   # D = 0's new_t adds a decode group
                samples += [(t - base) / scale for t in new]
    value = max(float(np.median(samples)), 0.0)
    return F.Fit("first use of a token count", {"first_shape": value}, np.array(samples) / value - 1.0
                 if value > 0 else np.zeros(len(samples)))


def fit_scheduler(rows: list[dict]) -> F.Fit:
    R = np.array([r["running"] for r in rows], float)
    t = np.array([r["step_s"] + r["finish_s"] for r in rows])
    c = np.linalg.lstsq(np.c_[np.ones_like(R), R], t, rcond=None)[0].clip(0.0)
    return F.Fit("serving scheduler", {k: float(v) for k, v in zip(SCHEDULER, c)}, (c[0] + c[1] * R) / t - 1.0)


def serving_host_fields(hardware, fields: dict) -> tuple[dict, list[F.Fit], list[str]]:
    """({"mixed_host": {term: "x s"}, "mixed_overlap_exponent": p}, fits, sources) from every
    micro file of the device pooled (each session's host as it ran, so no one session's host
    speed decides them), device seconds under the entry ``fields``; or ({}, [], [])."""
    import json

    from simulator.calibration.files import relative_source

    files = micro_files(hardware.name)
    if not files:
        return {}, [], []
    docs = [json.loads(f.read_text()) for f in files]
    mixed = fit_mixed([r for d in docs for r in d["mixed"]], hardware, fields)
    sched = fit_scheduler([r for d in docs for r in d["scheduler"]])
    values = {k: v for k, v in mixed.params.items() if k in TERMS} | sched.params
    fits, shapes = [mixed, sched], shape_files(hardware.name)
    if shapes:
        first = fit_first_shape([json.loads(f.read_text()) for f in shapes], hardware, fields, mixed.params)
        values |= first.params
        fits.append(first)
    return ({"mixed_host": {k: quantity(v, "s") for k, v in values.items()},
             "mixed_overlap_exponent": round(mixed.params["overlap_exponent"], 4)}, fits,
            [relative_source(f) for f in files + shapes])


def with_serving_host(fields: dict, fits: list, hardware) -> tuple[dict, list]:
    """calibrate's hook: the device entry with the mixed-pass host fields and their source."""
    more, more_fits, sources = serving_host_fields(hardware, fields)
    if not more:
        return fields, fits
    return {**fields, **more, "fitted_from": "; ".join([fields.get("fitted_from", ""), *sources])}, fits + more_fits
