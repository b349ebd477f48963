"""Error bands of serving predictions, from the serving residuals (derived once and committed:
validation/measurements/bands-serving.json; ``python -m tools.serving_bands`` rewrites it).

A residual is (predicted - measured) / measured of one serving metric of one run:
  measured   the harness's continuous-batching runs (accuracy/serving.py), per stack
             (pytorch-ref) and device: TTFT p50, TTFT p90, TPOT p50, output tokens/s
  published  the published serving benchmarks (accuracy/published_serving.py), per stack:
             TTFT, TPOT and throughput, each statistic the source gives pooled
Each group keeps its smallest and largest residual and its size n (a dozen runs: the band is
the range seen, not a percentile). A serving prediction takes, for each metric, the band of
its stack on its device when the profile it is predicted with was fitted on that device;
else its stack's published band; else the widest band of any group, with the reason that no
serving run of this stack (on this device) was measured.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from simulator.accuracy.serving import METRICS, SHORT

FAMILY = {"ttft_p50_s": "ttft", "ttft_p90_s": "ttft", "tpot_p50_s": "tpot", "output_tokens_per_s": "throughput"}
MEASURED_STACK = "pytorch-ref"      # the stack the serving harness runs
GENERATED_BY = ("python -m tools.serving_bands (simulator/accuracy/serving_bands.py) from validation/measurements/"
                "*/*/serving-*.json and validation/published/serving/*.yaml; do not edit by hand")


def bands_path() -> Path:
    from simulator.specs.measurement import measurement_root

    return measurement_root() / "bands-serving.json"


def _band(errors: list[float]) -> dict:
    return {"low": min(errors), "high": max(errors), "n": len(errors)}


def derive() -> dict:
    """The bands of the committed runs (module docstring)."""
    from simulator.accuracy import published_serving, serving

    measured: dict = {}
    for row in serving.compare_all():
        for key in METRICS:
            e = row.get(f"error_{key}")
            if e is not None:
                measured.setdefault(row["hardware"], {}).setdefault(key, []).append(e)
    published: dict = {}
    for row in published_serving.compare_all():
        if row["error"] is not None:
            published.setdefault(row["stack"], {}).setdefault(published_serving.family(row["metric"]), []).append(row["error"])
    return {"generated_by": GENERATED_BY,
            "measured": {MEASURED_STACK: {hw: {k: _band(v) for k, v in m.items()} for hw, m in sorted(measured.items())}},
            "published": {st: {f: _band(v) for f, v in sorted(m.items())} for st, m in sorted(published.items())}}


def write(path: Path | None = None) -> Path:
    path = path or bands_path()
    path.write_text(json.dumps(derive(), indent=1, sort_keys=True) + "\n")
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def confidence(stack_name: str, hardware_name: str, fitted_here: bool) -> dict | None:
    """{"source", "error_band": {metric: [low, high]}, "n", "reasons"} for a serving prediction
    of ``stack_name`` on ``hardware_name`` (``fitted_here``: its profile was fitted on this
    device), or None without a bands file."""
    doc = _load(str(bands_path()))
    if doc is None:
        return None
    own = doc["measured"].get(stack_name, {}).get(hardware_name) if fitted_here else None
    if own:
        return {"source": f"{stack_name} serving runs measured on {hardware_name}",
                "error_band": {k: [own[k]["low"], own[k]["high"]] for k in METRICS if k in own},
                "n": max(b["n"] for b in own.values()), "reasons": []}
    pub = doc["published"].get(stack_name)
    if pub:
        return {"source": f"published serving benchmarks of {stack_name} (validation/published/serving)",
                "error_band": {k: [pub[FAMILY[k]]["low"], pub[FAMILY[k]]["high"]] for k in METRICS if FAMILY[k] in pub},
                "n": max(b["n"] for b in pub.values()),
                "reasons": [f"no serving run of {stack_name} was measured on {hardware_name}; the band is that of "
                            f"others' published benchmarks of {stack_name}"]}
    groups = [m for st in doc["measured"].values() for m in st.values()]
    groups += [{k: fam[FAMILY[k]] for k in METRICS if FAMILY[k] in fam} for fam in doc["published"].values()]
    band = {k: [min(g[k]["low"] for g in groups if k in g), max(g[k]["high"] for g in groups if k in g)]
            for k in METRICS if any(k in g for g in groups)}
    return {"source": "the widest band of every validated serving group", "error_band": band,
            "n": sum(max(b["n"] for b in g.values()) for g in groups if g),
            "reasons": [f"no serving run of {stack_name} on {hardware_name} (with a profile fitted on it) was "
                        f"validated; the band is the widest of every validated serving group"]}


def lines(conf: dict | None) -> list[str]:
    """The table's lines: the band of each metric in percent, its source and reasons."""
    if not conf:
        return []
    parts = [f"{SHORT[k]} {100 * lo:+.0f}%..{100 * hi:+.0f}%" for k, (lo, hi) in conf["error_band"].items()]
    out = [f"error band ({conf['source']}, n={conf['n']}; predicted - measured): " + ", ".join(parts)]
    return out + [f"  {r}" for r in conf["reasons"]]
