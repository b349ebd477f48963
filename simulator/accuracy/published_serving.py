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

import numpy as np

from simulator.errors import SpecError

METRICS = {   # published name -> (run metric, statistic or None for a scalar)
    "requests_per_s": ("requests_per_s", None),
    "output_tokens_per_s": ("output_tokens_per_s", None),
    "ttft_mean_s": ("ttft_s", "mean"), "ttft_p50_s": ("ttft_s", "p50"), "ttft_p99_s": ("ttft_s", "p99"),
    "tpot_mean_s": ("tpot_s", "mean"), "tpot_p50_s": ("tpot_s", "p50"), "tpot_p99_s": ("tpot_s", "p99"),
}
CONFIG = ("stack", "model", "hardware", "tp", "weight_dtype", "activation_dtype", "kv_dtype")
POLICY = ("max_batched_tokens", "max_seqs", "block_size", "kv_memory_fraction")
TOP = {"source", "vague", "prompt", "output", "requests", "seed", "policy", "points", *CONFIG}


def root() -> Path:
    from simulator.accuracy.published import published_root

    return published_root() / "serving"


def _positive(path, field, value, whole=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (whole and int(value) != value):
        raise SpecError(path, field, f"expected a positive {'whole number' if whole else 'number'}, got {value!r}")
    return int(value) if whole else float(value)


def _lengths(path, field, value):
    from simulator.serving.requests import parse_lengths

    if isinstance(value, int) and not isinstance(value, bool):
        value = str(_positive(path, field, value, True))
    if isinstance(value, str) and not value.startswith("file:"):
        try:
            return parse_lengths(value, field)
        except SpecError as err:
            raise SpecError(path, field, err.expected) from None
    raise SpecError(path, field, f"expected a whole number of tokens, uniform:LO:HI or lognormal:MEAN:SD, got {value!r}")


def load(path: Path) -> dict:
    """The file, checked: every field known, every number positive, every point a load and at
    least one published metric (SpecError naming the file and field otherwise)."""
    from simulator.specs.registry import read_yaml

    doc = read_yaml(Path(path))
    if not isinstance(doc, dict):
        raise SpecError(path, "", "expected a mapping of source, stack, model, hardware, prompt, output, points")
    unknown = sorted(set(doc) - TOP)
    if unknown:
        raise SpecError(path, unknown[0], f"unknown field; expected one of {', '.join(sorted(TOP))}")
    for field in ("source", "stack", "model", "hardware", "prompt", "output", "points"):
        if field not in doc:
            raise SpecError(path, field, "required")
    policy = doc.get("policy") or {}
    bad = sorted(set(policy) - set(POLICY)) if isinstance(policy, dict) else ["policy"]
    if bad:
        raise SpecError(path, f"policy.{bad[0]}" if bad[0] != "policy" else "policy",
                        f"expected a mapping of {', '.join(POLICY)}")
    out = {"path": Path(path), "prompt": _lengths(path, "prompt", doc["prompt"]),
           "output": _lengths(path, "output", doc["output"]),
           "requests": _positive(path, "requests", doc.get("requests", 1000), True),
           "seed": int(doc.get("seed", 0)), "policy": dict(policy),
           "config": {k: doc[k] for k in CONFIG if k in doc}, "points": []}
    if not isinstance(doc["points"], list) or not doc["points"]:
        raise SpecError(path, "points", "expected a list of points")
    for i, p in enumerate(doc["points"]):
        where = f"points[{i}]"
        if not isinstance(p, dict) or ("concurrency" in p) == ("rate" in p):
            raise SpecError(path, where, "expected a mapping with one of concurrency or rate, and published metrics")
        extra = sorted(set(p) - {"concurrency", "rate", *METRICS})
        if extra:
            raise SpecError(path, f"{where}.{extra[0]}", f"unknown metric; expected one of {', '.join(METRICS)}")
        values = {k: _positive(path, f"{where}.{k}", v) for k, v in p.items() if k in METRICS}
        if not values:
            raise SpecError(path, where, f"expected at least one published metric ({', '.join(METRICS)})")
        if "concurrency" in p:
            load_ = ("concurrency", _positive(path, f"{where}.concurrency", p["concurrency"], True))
        elif p["rate"] in ("inf", float("inf")):
            load_ = ("rate", math.inf)
        else:
            load_ = ("rate", _positive(path, f"{where}.rate", p["rate"]))
        out["points"].append((load_, values))
    return out


def compare_file(path: Path) -> list[dict]:
    """One row per published metric of every point: the file's configuration, the load, the
    published and predicted values and the error."""
    from simulator.serving.policy import Policy
    from simulator.serving.requests import generate
    from simulator.serving.simulate import engine, serve

    f = load(path)
    cfg = dict(f["config"])
    model, hardware, stack = cfg.pop("model"), cfg.pop("hardware"), cfg.pop("stack")
    policy = Policy(**f["policy"])
    eng = engine(model, hardware, stack, policy, **cfg)
    rows = []
    for (kind, value), published in f["points"]:
        if kind == "concurrency":
            run = serve(eng, generate(f["requests"], None, f["prompt"], f["output"], f["seed"]), concurrency=value)
        else:
            rate = None if math.isinf(value) else value
            run = serve(eng, generate(f["requests"], rate, f["prompt"], f["output"], f["seed"]), rate)
        for name, target in published.items():
            metric, stat = METRICS[name]
            got = run.metrics[metric] if stat is None else run.metrics[metric][stat]
            rows.append({"file": f["path"].name, "model": model, "hardware": hardware, "stack": stack,
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
