"""Error bands from validation residuals, derived once and committed (validation/measurements/bands.json).

A residual is (predicted - measured) / measured of one latency point (prefill: TTFT; decode:
TPOT). Each group of residuals is kept as its 5th and 95th percentiles and its size n:
  devices      each measured device with its own fitted profile, by phase, variant (the dtype,
               "-moe" appended for a mixture of experts) and region (prefill by B x S tokens,
               decode by batch and context), and the ranges its validated runs cover (batch,
               lengths, dtypes, whether any model is a MoE)
  uncalibrated each measured device class, its devices predicted with the stack's class (or
               default) profile: what a device of that class without a fitted entry gets
  borrowed     each measured class, each device predicted with another measured device's
               fitted profile (--profile-from, what-if copies)
  published    each stack of validation/published, its TTFT and TPOT residuals (B / TPOT and
               B S / TTFT converted: r = 1 / (1 + r_rate) - 1)
``python -m tools.bands`` rewrites the file (after any change to the physics, a profile or the
measurements); tests/test_confidence.py checks it is current.
"""
from __future__ import annotations

import bisect
import functools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

QUANTILES = (5.0, 95.0)          # percent: the band holds the middle 90% of a group's residuals
MIN_POINTS = 10                  # a region with fewer points falls back to its phase's band
PREFILL_TOKENS_EDGES = (1024, 8192, 32768)     # B x S: host-launch-bound, middle, compute-bound, long
DECODE_BATCH_EDGES = (4, 32)
DECODE_CONTEXT_EDGES = (1024, 16384)
MEASURED_STACK = "pytorch-ref"   # the stack validation/harness measures
GENERATED_BY = ("python -m tools.bands (simulator/accuracy/bands.py) from validation/measurements/*/**/e2e-*.json "
                "and validation/published/*.yaml; do not edit by hand")


def bands_path() -> Path:
    from simulator.specs.measurement import measurement_root

    return measurement_root() / "bands.json"


def region(phase: str, batch: int, length: int) -> str:
    """A point's region key: "prefill:t<i>" by B x S, "decode:b<i>c<j>" by batch and context."""
    if phase == "prefill":
        return f"prefill:t{bin_index(batch * length, PREFILL_TOKENS_EDGES)}"
    return f"decode:b{bin_index(batch, DECODE_BATCH_EDGES)}c{bin_index(length, DECODE_CONTEXT_EDGES)}"


def bin_index(value: int, edges: tuple[int, ...]) -> int:
    """How many edges ``value`` passes (its bin; edges ascending)."""
    return bisect.bisect_left(edges, value)


def _span(edges: tuple[int, ...], i: int) -> str:
    lo = 1 if i == 0 else edges[i - 1] + 1
    return f"{lo:,}+" if i == len(edges) else f"{lo:,}-{edges[i]:,}"


def region_text(key: str) -> str:
    """"prefill:t1" -> "prefill of 1,025-8,192 tokens (B x S)"."""
    phase, code = key.split(":")
    if phase == "prefill":
        return f"prefill of {_span(PREFILL_TOKENS_EDGES, int(code[1:]))} tokens (B x S)"
    b, c = code[1:].split("c")
    return f"decode at batch {_span(DECODE_BATCH_EDGES, int(b))}, context {_span(DECODE_CONTEXT_EDGES, int(c))}"


def quantiles(residuals) -> dict:
    """{"low", "high": the QUANTILES of the residuals, "n"}."""
    r = np.asarray(residuals, dtype=float)
    lo, hi = np.percentile(r, QUANTILES)
    return {"low": round(float(lo), 6), "high": round(float(hi), 6), "n": int(r.size)}


def _grouped(keys, residuals) -> dict:
    groups = defaultdict(list)
    for key, r in zip(keys, residuals):
        groups[key].append(r)
    return {k: quantiles(v) for k, v in sorted(groups.items()) if v}


def _validated_ranges(points, is_moe) -> dict:
    """What a device's validated latency points cover, per phase and overall."""
    out = {"dtypes": sorted({p.dtype for p in points}), "moe": any(is_moe(p.model) for p in points)}
    for phase in ("prefill", "decode"):
        sel = [p for p in points if p.phase == phase]
        if sel:
            out[phase] = {"batch_max": max(p.batch for p in sel), "length_max": max(p.length for p in sel),
                          "tokens_max": max(p.batch * p.length for p in sel)}
    return out


def variant(dtype: str, moe: bool) -> str:
    """A group's model variant: the dtype, "-moe" appended for a mixture of experts."""
    return f"{dtype}-moe" if moe else dtype


def _device_bands(points, errs, is_moe) -> dict:
    """Per device: its validated ranges, its (phase, variant) bands and (phase, variant, region) bands."""
    out = {}
    for hw in sorted({p.hardware for p in points}):
        idx = [i for i, p in enumerate(points) if p.hardware == hw]
        pts, e = [points[i] for i in idx], errs[idx]
        kinds = [variant(p.dtype, is_moe(p.model)) for p in pts]
        out[hw] = {"stack": MEASURED_STACK, "validated": _validated_ranges(pts, is_moe),
                   "phases": _grouped([f"{p.phase}/{k}" for p, k in zip(pts, kinds)], e),
                   "regions": _grouped([f"{region(p.phase, p.batch, p.length)}/{k}" for p, k in zip(pts, kinds)], e)}
    return out


def _by_class_phase(points, errs, kind_of) -> dict:
    keys = [(kind_of(p.hardware), p.phase) for p in points]
    out: dict = defaultdict(dict)
    for (kind, phase), q in _grouped(keys, errs).items():
        out[kind][phase] = {**q, "devices": sorted({p.hardware for p, k in zip(points, keys) if k == (kind, phase)})}
    return dict(out)


def _published_bands() -> dict:
    """Per stack of the published runs: TTFT and TPOT residuals."""
    from simulator.accuracy.published import compare

    phase_of = {"prefill_tokens_per_s": ("prefill", True), "ttft_s": ("prefill", False),
                "decode_tokens_per_s": ("decode", True)}
    groups: dict = defaultdict(lambda: defaultdict(list))
    sources: dict = defaultdict(set)
    for c in compare():
        if c.error is None or c.point.metric not in phase_of:
            continue
        phase, is_rate = phase_of[c.point.metric]
        stack = _stack_of(c.file)
        groups[stack][phase].append(1.0 / (1.0 + c.error) - 1.0 if is_rate else c.error)
        sources[stack].add(c.file)
    return {stack: {**{ph: quantiles(r) for ph, r in phases.items()}, "sources": sorted(sources[stack])}
            for stack, phases in sorted(groups.items())}


@functools.lru_cache(maxsize=None)
def _stack_of(file_stem: str) -> str:
    from simulator.accuracy.published import load, published_root

    return load(published_root() / f"{file_stem}.yaml").stack


def derive() -> dict:
    """Every band group from the committed measurements and published runs (30-60 s: about
    4,000 predictions)."""
    from simulator.accuracy.measured import errors, load_points
    from simulator.specs import registry

    points = [p for p in load_points() if p.metric == "latency"]
    stack = registry.stack(MEASURED_STACK)
    kind_of = functools.lru_cache(maxsize=None)(lambda name: registry.hardware(name).kind)
    is_moe = functools.lru_cache(maxsize=None)(lambda name: registry.model(name)[1].is_moe)
    own = errors(points, MEASURED_STACK)
    unfitted = errors(points, stack.model_copy(update={"devices": {}}))
    borrowed_pts, borrowed_errs = [], []
    devices = sorted({p.hardware for p in points})
    for target in devices:
        subset = [p for p in points if p.hardware == target]
        for source in devices:
            if source != target and kind_of(source) == kind_of(target):
                borrowed_pts += subset
                borrowed_errs += list(errors(subset, MEASURED_STACK, profile_from=source))
    return {"generated_by": GENERATED_BY, "quantiles_percent": list(QUANTILES), "min_points": MIN_POINTS,
            "devices": _device_bands(points, own, is_moe),
            "uncalibrated": {MEASURED_STACK: _by_class_phase(points, unfitted, kind_of)},
            "borrowed": {MEASURED_STACK: _by_class_phase(borrowed_pts, np.array(borrowed_errs), kind_of)},
            "published": _published_bands()}


def write(path: Path | None = None) -> Path:
    path = path or bands_path()
    path.write_text(json.dumps(derive(), indent=1, sort_keys=True) + "\n")
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str, _mtime: float) -> dict:
    return json.loads(Path(path).read_text())


EMPTY = {"devices": {}, "uncalibrated": {}, "borrowed": {}, "published": {}}


def load() -> dict:
    """The committed bands (re-read when the file changes); no groups when there is no file
    (a data root without one: predictions then carry no band)."""
    path = bands_path()
    try:
        return _load(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        return EMPTY
