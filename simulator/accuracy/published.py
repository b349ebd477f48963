"""Published measurements by others (validation/published/*.yaml), re-predicted.

A file names its source, what the source leaves vague, the stack and model, precisions,
and a list of points: hardware, metric, batch (default 1), prompt, output, tp, value.
Metrics: decode_tokens_per_s (B / TPOT), prefill_tokens_per_s (B S / TTFT),
output_tokens_per_s_per_device (B N / e2e / devices), ttft_s.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import Field

from simulator.specs import registry
from simulator.specs.base import Strict

METRICS = ("decode_tokens_per_s", "prefill_tokens_per_s", "output_tokens_per_s_per_device", "ttft_s")


class PublishedPoint(Strict):
    hardware: str
    metric: str
    value: float = Field(gt=0)
    batch: int = Field(1, gt=0)
    prompt: int = Field(1, gt=0)
    output: int = Field(1, gt=0)
    tp: int = Field(1, gt=0)
    model: str | None = None
    weight_dtype: str | None = None
    activation_dtype: str | None = None
    kv_dtype: str | None = None
    note: str = ""


class PublishedCalibration(Strict):
    """How the file's points become a stack: `llmsim calibrate --published FILE` fits
    ``params`` (calibration/knobs.py; NAME or NAME@PREFIX) on top of the file's stack from
    every point and writes hardware_specs/stacks/<stack>.yaml, cross-validated by ``cv``."""

    stack: str
    params: list[str]
    cv: str = "run"
    per_profile: bool = False
    why: str = ""


class PublishedFile(Strict):
    source: str
    vague: str = ""
    stack: str
    model: str
    weight_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    points: list[PublishedPoint]
    calibration: PublishedCalibration | None = None


@dataclasses.dataclass(frozen=True)
class Comparison:
    file: str
    point: PublishedPoint
    model: str
    predicted: float | None
    index: int = 0                  # the point's place in the file (points.INDEX)

    @property
    def error(self) -> float | None:
        return None if self.predicted is None else (self.predicted - self.point.value) / self.point.value


def published_root() -> Path:
    return registry.data_root() / "validation" / "published"


def load(path: Path) -> PublishedFile:
    data = registry.read_yaml(path)
    spec = registry.validate(PublishedFile, data, path)
    for i, point in enumerate(spec.points):
        if point.metric not in METRICS:
            from simulator.errors import SpecError
            raise SpecError(str(path), f"points.{i}.metric", f"expected one of {', '.join(METRICS)}")
    return spec


def _metric(p, metric: str) -> float | None:
    if p.ttft_s is None:
        return None
    return {"decode_tokens_per_s": lambda: p.batch / p.tpot_s,
            "prefill_tokens_per_s": lambda: p.batch * p.prompt / p.ttft_s,
            "output_tokens_per_s_per_device": lambda: p.output_tokens_per_s / p.devices,
            "ttft_s": lambda: p.ttft_s}[metric]()


def compare(root: Path | None = None) -> list[Comparison]:
    import simulator

    out = []
    for path in sorted((root or published_root()).glob("*.yaml")):
        spec = load(path)
        for index, point in enumerate(spec.points):
            model = point.model or spec.model
            p = simulator.predict(model=model, hardware=point.hardware, stack=spec.stack, batch=point.batch,
                                  prompt=point.prompt, output=point.output, tp=point.tp,
                                  weight_dtype=point.weight_dtype or spec.weight_dtype,
                                  activation_dtype=point.activation_dtype or spec.activation_dtype,
                                  kv_dtype=point.kv_dtype or spec.kv_dtype)
            out.append(Comparison(path.stem, point, model, _metric(p, point.metric), index))
    return out


def as_runs(spec: PublishedFile, path: Path) -> list:
    """The file's points as end-to-end runs (calibration.importers.runs.Run), each metric in
    the simulator's terms: decode_tokens_per_s -> tpot_s = B / value; prefill_tokens_per_s ->
    ttft_s = B S / value; output_tokens_per_s_per_device -> output_tokens_per_s = value x
    devices (tp); ttft_s as it is."""
    from simulator.calibration.importers.runs import run_from

    runs = []
    for i, point in enumerate(spec.points):
        metric = {"decode_tokens_per_s": ("tpot_s", point.batch / point.value),
                  "prefill_tokens_per_s": ("ttft_s", point.batch * point.prompt / point.value),
                  "output_tokens_per_s_per_device": ("output_tokens_per_s", point.value * point.tp),
                  "ttft_s": ("ttft_s", point.value)}[point.metric]
        runs.append(run_from({"model": point.model or spec.model, "hardware": point.hardware, "batch": point.batch,
                              "prompt": point.prompt, "output": point.output, "tp": point.tp,
                              "weight_dtype": point.weight_dtype or spec.weight_dtype,
                              "activation_dtype": point.activation_dtype or spec.activation_dtype,
                              "kv_dtype": point.kv_dtype or spec.kv_dtype, metric[0]: metric[1]},
                             path, f"points.{i}"))
    return runs


def calibrate_file(path: Path):
    """The file's calibration (calibration.from_runs.Calibration) as its ``calibration``
    block says, and the block."""
    from simulator.calibration.from_runs import calibrate_from_runs, parse_use
    from simulator.errors import SpecError

    spec = load(path)
    if spec.calibration is None:
        raise SpecError(str(path), "calibration", "no calibration block (stack, params, cv) to fit by")
    block = spec.calibration
    cal = calibrate_from_runs(as_runs(spec, path), registry.stack(spec.stack), [parse_use(p) for p in block.params],
                              block.cv, block.per_profile)
    return cal, spec


def cross_validated(root: Path | None = None) -> dict[str, dict]:
    """{published file stem: the fitted stack's name, CV scheme, per-metric CV errors and
    {"points.I": held-out error}} for every file with a calibration block, read from the
    stack file that `calibrate --published` wrote (tests/test_from_runs.py refits one)."""
    out = {}
    for path in sorted((root or published_root()).glob("*.yaml")):
        spec = load(path)
        if spec.calibration is None or spec.calibration.stack not in registry.stack_index():
            continue
        record = registry.stack(spec.calibration.stack).calibration
        cv = record.get("cross_validation", {})
        points = {}
        for h in cv.get("held_out", []):
            where = h["run"].split(":", 1)[1]                  # points.I
            metric = spec.points[int(where.split(".")[1])].metric
            points[where] = _as_published(h["error"], metric)
        out[path.stem] = {"stack": spec.calibration.stack, "scheme": cv.get("scheme"), "errors": cv.get("errors", []),
                          "points": points}
    return out


def _as_published(error: float | None, metric: str) -> float | None:
    """A run's relative error on its time (TPOT, TTFT) as the error on the published rate
    (tokens/s = B / TPOT or B S / TTFT): 1 / (1 + e) - 1; rates and ttft_s as they are."""
    if error is None or metric not in ("decode_tokens_per_s", "prefill_tokens_per_s"):
        return error
    return 1.0 / (1.0 + error) - 1.0


def run_fitted() -> dict[str, dict]:
    """{stack name: CV scheme, per-metric CV errors, runs it was fitted on} of every registry
    stack fitted by `calibrate --from-runs` from run files (not validation/published: those
    are cross_validated's), read from the stack's ``calibration`` record."""
    out = {}
    for name in sorted(registry.stack_index()):
        record = registry.stack(name).calibration or {}
        sources = record.get("runs_from") or []
        if not sources or any(Path(s).parent.name == "published" for s in sources):
            continue
        cv = record.get("cross_validation", {})
        out[name] = {"scheme": cv.get("scheme"), "errors": cv.get("errors", []), "runs_from": sources,
                     "runs": (record.get("fitted_on") or {}).get("runs")}
    return out


def run_fitted_lines() -> list[str]:
    """run_fitted as report lines: per stack and metric, the cross-validated median |error|."""
    return [f"  {name} (leave one {f['scheme']} out, {f['runs']} runs): {e['metric']} n={e['n']}, median |error| "
            f"{100 * e['median_abs_error']:.1f}%, p90 {100 * e['p90_abs_error']:.1f}%"
            for name, f in run_fitted().items() for e in f["errors"]]
