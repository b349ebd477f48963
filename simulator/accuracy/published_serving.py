"""Published serving benchmarks of others (validation/published/serving/*.yaml), re-simulated.

A file states one configuration and its points, each point a load and what was published:

  source, vague      where the numbers come from; what the source leaves unstated and what
                     is assumed for it
  stack, model, hardware, tp, weight_dtype, activation_dtype, kv_dtype   as predict takes them
  prompt, output     tokens per request: a whole number, or a distribution as `serving
                     --prompt-dist` takes it (uniform:LO:HI, lognormal:MEAN:SD)
  requests, seed     requests a run (the benchmark's prompt count); the simulation's seed
  policy             Policy fields where the engine's configuration is stated or assumed
                     (max_batched_tokens, max_seqs, block_size, kv_memory_fraction)
  points             each {concurrency: N} (a closed loop of N clients, the benchmark's
                     max-concurrency) or {rate: R} (Poisson arrivals at R/s; `inf`: every
                     request at 0 s, as vLLM's `--request-rate inf` sends them), plus one or
                     more published METRICS

Each point is simulated once (serving/simulate.py, the engine `llmsim serving` runs) and
compared: error = (predicted - published) / published. Nothing is fitted to these points.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from simulator.errors import SpecError
from simulator.specs.base import Strict

METRICS = {   # published name -> (run metric, statistic or None for a scalar)
    "requests_per_s": ("requests_per_s", None),
    "output_tokens_per_s": ("output_tokens_per_s", None),
    "ttft_mean_s": ("ttft_s", "mean"), "ttft_p50_s": ("ttft_s", "p50"), "ttft_p99_s": ("ttft_s", "p99"),
    "tpot_mean_s": ("tpot_s", "mean"), "tpot_p50_s": ("tpot_s", "p50"), "tpot_p99_s": ("tpot_s", "p99"),
}
Published = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Point(Strict):
    """One load and what was published at it (module docstring)."""

    concurrency: int | None = Field(None, gt=0)
    rate: Literal["inf"] | Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    requests_per_s: Published | None = None
    output_tokens_per_s: Published | None = None
    ttft_mean_s: Published | None = None
    ttft_p50_s: Published | None = None
    ttft_p99_s: Published | None = None
    tpot_mean_s: Published | None = None
    tpot_p50_s: Published | None = None
    tpot_p99_s: Published | None = None

    @model_validator(mode="after")
    def _one_load_and_a_metric(self):
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("expected one of concurrency or rate")
        if not self.published():
            raise ValueError(f"expected at least one published metric ({', '.join(METRICS)})")
        return self

    def published(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in METRICS if getattr(self, k) is not None}

    def load(self) -> tuple[str, float]:
        """("concurrency", N) or ("rate", R/s; inf: every request at 0 s)."""
        if self.concurrency is not None:
            return "concurrency", self.concurrency
        return "rate", math.inf if self.rate == "inf" else self.rate


class PolicyFields(Strict):
    """The Policy fields a file may state (the rest keep the engine's defaults)."""

    max_batched_tokens: int | None = Field(None, gt=0)
    max_seqs: int | None = Field(None, gt=0)
    block_size: int | None = Field(None, gt=0)
    kv_memory_fraction: float | None = Field(None, gt=0, le=1)


class ServingFile(Strict):
    source: str
    vague: str = ""
    stack: str
    model: str
    hardware: str
    tp: int = Field(1, gt=0)
    weight_dtype: str | None = None
    activation_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    prompt: int | str               # tokens, or uniform:LO:HI / lognormal:MEAN:SD
    output: int | str
    requests: int = Field(1000, gt=0)
    seed: int = 0
    policy: PolicyFields = PolicyFields()
    points: list[Point] = Field(min_length=1)


def root() -> Path:
    from simulator.accuracy.published import published_root

    return published_root() / "serving"


def _lengths(path, field: str, value):
    """A length field as serving's Lengths (a whole number, uniform or lognormal text)."""
    from simulator.serving.requests import parse_lengths

    if isinstance(value, str) and value.startswith("file:"):
        raise SpecError(str(path), field, f"expected a whole number of tokens, uniform:LO:HI or lognormal:MEAN:SD, "
                                          f"got {value!r}")
    try:
        return parse_lengths(str(value), field)
    except SpecError as err:
        raise SpecError(str(path), field, err.expected) from None


def load(path: Path) -> tuple[ServingFile, object, object]:
    """(the file, its prompt and output Lengths), checked by the schema above: one line naming
    the file and field otherwise."""
    from simulator.specs.registry import read_yaml, validate

    spec = validate(ServingFile, read_yaml(Path(path)), path)
    return spec, _lengths(path, "prompt", spec.prompt), _lengths(path, "output", spec.output)


def compare_file(path: Path) -> list[dict]:
    """One row per published metric of every point: the file's configuration, the load, the
    published and predicted values and the error."""
    from simulator.serving.policy import Policy
    from simulator.serving.requests import generate
    from simulator.serving.simulate import engine, serve

    f, prompt, output = load(path)
    policy = Policy(**f.policy.model_dump(exclude_none=True))
    options = f.model_dump(include={"tp", "weight_dtype", "activation_dtype", "kv_dtype"}, exclude_none=True)
    eng = engine(f.model, f.hardware, f.stack, policy, **options)
    rows = []
    for point in f.points:
        kind, value = point.load()
        closed = kind == "concurrency"
        reqs = generate(f.requests, None if closed or math.isinf(value) else value, prompt, output, f.seed)
        run = serve(eng, reqs, concurrency=value) if closed else serve(eng, reqs, None if math.isinf(value) else value)
        for name, target in point.published().items():
            metric, stat = METRICS[name]
            got = run.metrics[metric] if stat is None else run.metrics[metric][stat]
            rows.append({"file": Path(path).name, "model": f.model, "hardware": f.hardware, "stack": f.stack,
                         "load": f"{kind} {value:g}", "metric": name, "published": target, "predicted": got,
                         "error": None if got is None else (got - target) / target,
                         "saturated": bool(run.metrics.get("saturated"))})
    return rows


def compare_all(folder: Path | None = None) -> list[dict]:
    """Every file under validation/published/serving, in name order."""
    return [r for p in sorted((folder or root()).glob("*.yaml")) for r in compare_file(p)]


def family(metric: str) -> str:
    """A published metric's family: "ttft", "tpot" or "throughput"."""
    return next((f for f in ("ttft", "tpot") if metric.startswith(f + "_")), "throughput")


def summary(rows: list[dict]) -> dict:
    """Per metric family (throughput, TTFT, TPOT): n and the median |error|."""
    out = {}
    for fam in ("throughput", "ttft", "tpot"):
        errs = [abs(r["error"]) for r in rows if r["error"] is not None and family(r["metric"]) == fam]
        out[fam] = {"n": len(errs), "median_abs_error": float(np.median(errs)) if errs else None}
    return out
