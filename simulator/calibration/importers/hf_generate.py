"""Hugging Face transformers ``generate()`` timings, schema ``llmsim-hf-generate/1`` (ours;
README, "Calibrating a stack from end-to-end runs"):

  {"schema": "llmsim-hf-generate/1", "model": NAME, "hardware": NAME,
   "weight_dtype": "bf16", "environment": {...free-form: versions, GPU, date...},
   "runs": [{"batch": B, "prompt": S, "output": N,
             "prefill_s": [...],      # each repeat: generate(max_new_tokens=1, min_new_tokens=1), s
             "generate_s": [...]}]}   # each repeat: generate(max_new_tokens=N, min_new_tokens=N), s

Each timing is wall time around the call with the device synchronized before and after.
TTFT = median(prefill_s); e2e = median(generate_s); TPOT = (e2e - TTFT) / (N - 1).
A run's own model / hardware / dtypes override the file's.
"""
from __future__ import annotations

import statistics

from simulator.calibration.importers.common import number, required
from simulator.calibration.importers.runs import Run, run_from
from simulator.errors import SpecError

SCHEMA = "llmsim-hf-generate/1"
FILE_FIELDS = ("model", "hardware", "weight_dtype", "activation_dtype", "kv_dtype", "session")


def matches(data) -> bool:
    return isinstance(data, dict) and data.get("schema") == SCHEMA


def _median_s(run: dict, key: str, path, where: str) -> float:
    values = required(run, key, path, where)
    if not isinstance(values, list) or not values:
        raise SpecError(str(path), f"{where}{key}", "expected a non-empty list of seconds")
    times = [number(v, path, f"{where}{key}.{i}") for i, v in enumerate(values)]
    if min(times) <= 0:
        raise SpecError(str(path), f"{where}{key}", "expected times > 0 s")
    return statistics.median(times)


def runs(data: dict, path, defaults: dict) -> list[Run]:
    shared = {k: data[k] for k in FILE_FIELDS if data.get(k) is not None}
    out = []
    for i, run in enumerate(required(data, "runs", path)):
        where = f"runs.{i}."
        if not isinstance(run, dict):
            raise SpecError(str(path), f"runs.{i}", "expected a mapping of one run's fields")
        ttft, e2e = _median_s(run, "prefill_s", path, where), _median_s(run, "generate_s", path, where)
        n = run.get("output")
        row = {**shared, **{k: run[k] for k in ("model", "hardware", "batch", "prompt", "output", *FILE_FIELDS)
                            if run.get(k) is not None}, "ttft_s": ttft, "e2e_s": e2e}
        if isinstance(n, int) and n >= 2:
            if e2e <= ttft:
                raise SpecError(str(path), f"{where}generate_s", f"expected generate of {n} tokens to take longer "
                                                                 f"than the prefill ({e2e:.4g} s <= {ttft:.4g} s)")
            row["tpot_s"] = (e2e - ttft) / (n - 1)
        out.append(run_from(row, path, f"runs.{i}", defaults))
    return out
