"""`vllm bench serve` / benchmarks/benchmark_serving.py ``--save-result`` JSON as runs.

Fields read (vllm-project/vllm benchmarks/benchmark_serving.py, its ``result_json``):
``model_id``, ``num_prompts``, ``max_concurrency``, ``request_rate``, ``completed``,
``total_input_tokens``, ``total_output_tokens``, ``median_ttft_ms``, ``median_tpot_ms``,
``median_e2el_ms`` (``mean_*`` when no median). ``--metadata KEY=VALUE`` pairs land at the
top level; ``hardware``, ``model``, ``tp``, ``pp`` and the dtypes are read from there.

One file is one run: batch B = max_concurrency (all num_prompts at once when it is unset and
the rate is inf), prompt and output the mean tokens per completed request. The measured
TTFT and TPOT are medians over requests. A run at a finite request rate is a serving load,
not a batch, and is refused.
"""
from __future__ import annotations

from simulator.calibration.importers.common import model_for_hf_id, number, required
from simulator.calibration.importers.runs import Run, run_from
from simulator.errors import SpecError

METADATA = ("hardware", "model", "tp", "pp", "weight_dtype", "activation_dtype", "kv_dtype", "session")


def matches(data) -> bool:
    return isinstance(data, dict) and "model_id" in data and ("median_ttft_ms" in data or "mean_ttft_ms" in data)


def _stat_s(data: dict, metric: str, path) -> float | None:
    for stat in ("median", "mean"):
        key = f"{stat}_{metric}_ms"
        if data.get(key) is not None:
            return number(data[key], path, key) / 1e3
    return None


def runs(data: dict, path, defaults: dict) -> list[Run]:
    rate = data.get("request_rate", "inf")
    if str(rate) != "inf":
        raise SpecError(str(path), "request_rate", f"expected inf (all requests at once; a batch), got {rate!r}: "
                                                   f"a run at a finite rate is a serving load")
    completed = number(required(data, "completed", path), path, "completed")
    if completed <= 0:
        raise SpecError(str(path), "completed", "no request completed")
    batch = data.get("max_concurrency") or required(data, "num_prompts", path)
    row = {k: data[k] for k in METADATA if data.get(k) is not None}
    for k in ("tp", "pp"):
        if k in row:
            row[k] = int(row[k]) if str(row[k]).isdigit() else row[k]
    if "model" not in row:
        found = model_for_hf_id(data["model_id"])
        if found:
            row["model"] = found
    row.update(batch=batch, prompt=round(number(required(data, "total_input_tokens", path), path,
                                                "total_input_tokens") / completed),
               output=round(number(required(data, "total_output_tokens", path), path,
                                   "total_output_tokens") / completed),
               ttft_s=_stat_s(data, "ttft", path), tpot_s=_stat_s(data, "tpot", path),
               e2e_s=_stat_s(data, "e2el", path))
    if "model" not in row and "model" not in defaults:
        raise SpecError(str(path), "model_id", f"no model spec has the source {data['model_id']!r}: "
                                               f"pass --model NAME (or --metadata model=NAME to vllm bench)")
    return [run_from(row, path, "result", defaults)]
