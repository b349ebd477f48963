"""`llama-bench -o json|jsonl|csv` as runs (ggml-org/llama.cpp tools/llama-bench).

Each row is one test of one sequence (batch 1): ``n_prompt`` tokens of prompt processing,
then ``n_gen`` generated one at a time, after ``n_depth`` tokens already in the KV cache;
``avg_ns`` is the mean wall time of a repetition (avg_ts = 1e9 (n_prompt + n_gen) / t).
  pp (n_gen = 0):     prompt S = n_prompt, output 1, ttft_s = avg_ns / 1e9
  tg (n_prompt = 0):  prompt S = max(n_depth, 1), output n_gen + 1, tpot_s = avg_ns / 1e9 / n_gen
  pg (both):          prompt S = n_prompt, output n_gen + 1, e2e_s = avg_ns / 1e9
A pp or pg test at n_depth > 0 (a prompt on top of a filled cache) is refused: the
simulator's prefill starts from an empty cache. Weights: the quantization named in
``model_type`` (Q4_0 -> q4_0, Q8_0 -> q8_0, F16 -> fp16, BF16 -> bf16, F32 -> fp32); KV
cache: ``type_k``. The model and device are not in the file: --model and --hardware.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from simulator.calibration.importers.common import number, required
from simulator.calibration.importers.runs import Run, run_from
from simulator.errors import SpecError

WEIGHTS = {"Q4_0": "q4_0", "Q8_0": "q8_0", "F16": "fp16", "BF16": "bf16", "F32": "fp32"}
CACHE = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}
FIELDS = ("n_prompt", "n_gen", "avg_ns")


def matches(data) -> bool:
    rows = data if isinstance(data, list) else [data]
    return bool(rows) and all(isinstance(r, dict) and all(k in r for k in FIELDS) for r in rows)


def read_rows(path: Path) -> list[dict] | None:
    """llama-bench's CSV (a header with its field names) or JSONL rows, else None."""
    text = Path(path).read_text(encoding="utf-8")
    first = text.lstrip().split("\n", 1)[0]
    if Path(path).suffix.lower() == ".csv" and all(k in first for k in FIELDS):
        rows = list(csv.DictReader(text.splitlines()))
        ints = {"n_prompt", "n_gen", "n_depth", "avg_ns"}
        return [{k: (int(float(v)) if k in ints and v not in ("", None) else v) for k, v in r.items()} for r in rows]
    if Path(path).suffix.lower() == ".jsonl" and first.startswith("{") and all(f'"{k}"' in first for k in FIELDS):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return None


def _weights(model_type: str, path, where: str) -> str:
    found = re.search(r"\b(Q4_0|Q8_0|BF16|F16|F32)\b", model_type or "")
    if not found:
        raise SpecError(str(path), f"{where}model_type", f"the weight format of {model_type!r} has no simulator "
                                                          f"equivalent (Q4_0, Q8_0, F16, BF16, F32): pass --weight-dtype")
    return WEIGHTS[found.group(1)]


def _row(r: dict, path, where: str, defaults: dict) -> dict:
    n_prompt, n_gen = (int(number(required(r, k, path, where), path, where + k)) for k in ("n_prompt", "n_gen"))
    depth = int(r.get("n_depth") or 0)
    t_s = number(required(r, "avg_ns", path, where), path, where + "avg_ns") / 1e9
    if n_prompt and depth:
        raise SpecError(str(path), f"{where}n_depth", "expected 0 for a prompt test (a prompt on top of a filled "
                                                       "KV cache is not modelled)")
    row = {"batch": 1, "session": f"llama-bench {r.get('build_commit', '')}".strip()}
    if "weight_dtype" not in defaults:
        row["weight_dtype"] = _weights(r.get("model_type", ""), path, where)
    if r.get("type_k") in CACHE and "kv_dtype" not in defaults:
        row["kv_dtype"] = CACHE[r["type_k"]]
    if n_gen == 0:
        return {**row, "prompt": n_prompt, "output": 1, "ttft_s": t_s}
    if n_prompt == 0:
        return {**row, "prompt": max(depth, 1), "output": n_gen + 1, "tpot_s": t_s / n_gen}
    return {**row, "prompt": n_prompt, "output": n_gen + 1, "e2e_s": t_s}


def runs(data, path, defaults: dict) -> list[Run]:
    rows = data if isinstance(data, list) else [data]
    return [run_from(_row(r, path, f"rows.{i}.", defaults), path, f"rows.{i}", defaults) for i, r in enumerate(rows)]
