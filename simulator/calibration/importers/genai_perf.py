"""GenAI-Perf ``profile_export_genai_perf.json`` and AIPerf ``profile_export_aiperf.json``
as runs (triton-inference-server/perf_analyzer genai-perf; ai-dynamo/aiperf).

Both hold one statistics object per metric at the top level, ``{"unit": ..., "avg": ...,
"p50": ...}``: ``time_to_first_token``, ``inter_token_latency`` (= (request latency -
TTFT) / (output tokens - 1): the simulator's TPOT), ``request_latency``,
``input_sequence_length``, ``output_sequence_length``; and ``input_config`` with the
concurrency (AIPerf: ``loadgen.concurrency``; GenAI-Perf: ``concurrency``) and the model
(``endpoint.model_names`` / ``model``). One file is one run: batch B = the concurrency, prompt
and output the mean lengths, times the median (p50; avg when there is none).
"""
from __future__ import annotations

from simulator.calibration.importers.common import model_for_hf_id, number, seconds
from simulator.calibration.importers.runs import Run, run_from
from simulator.errors import SpecError


def matches(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("time_to_first_token"), dict) \
        and "unit" in data["time_to_first_token"]


def _time_s(data: dict, key: str, path) -> float | None:
    stats = data.get(key)
    if not isinstance(stats, dict):
        return None
    stat = "p50" if stats.get("p50") is not None else "avg"
    if stats.get(stat) is None:
        return None
    return seconds(stats[stat], stats.get("unit", ""), path, f"{key}.{stat}")


def _mean_tokens(data: dict, key: str, path) -> int | None:
    stats = data.get(key)
    return round(number(stats["avg"], path, f"{key}.avg")) if isinstance(stats, dict) and "avg" in stats else None


def _config(data: dict) -> tuple:
    """(concurrency, model id) from input_config, either tool's layout."""
    cfg = data.get("input_config") or {}
    concurrency = (cfg.get("loadgen") or {}).get("concurrency", cfg.get("concurrency"))
    names = (cfg.get("endpoint") or {}).get("model_names") or cfg.get("model") or []
    items = (cfg.get("models") or {}).get("items") if isinstance(cfg.get("models"), dict) else None
    if not names and items:
        names = [items[0].get("name")]
    return concurrency, (names[0] if isinstance(names, list) and names else names or None)


def runs(data: dict, path, defaults: dict) -> list[Run]:
    concurrency, model_id = _config(data)
    row = {"batch": concurrency, "prompt": _mean_tokens(data, "input_sequence_length", path),
           "output": _mean_tokens(data, "output_sequence_length", path),
           "ttft_s": _time_s(data, "time_to_first_token", path),
           "tpot_s": _time_s(data, "inter_token_latency", path), "e2e_s": _time_s(data, "request_latency", path)}
    if model_id and "model" not in defaults:
        found = model_for_hf_id(model_id)
        if found is None:
            raise SpecError(str(path), "input_config.model", f"no model spec has the source {model_id!r}: "
                                                             f"pass --model NAME")
        row["model"] = found
    return [run_from(row, path, "profile", defaults)]
