"""Run files for `llmsim calibrate --from-runs`, in whichever format a tool wrote them:
the simulator's own rows (``.jsonl``, ``.csv``: importers/runs.py), `vllm bench serve`
--save-result JSON, `llama-bench -o json|jsonl|csv`, GenAI-Perf / AIPerf profile exports and
Hugging Face ``generate()`` timings (``llmsim-hf-generate/1``), and published points
(validation/published/*.yaml, accuracy/published.py). The format is told from the
content; ``defaults`` (from --model, --hardware, ...) fill fields a file does not carry.
"""
from __future__ import annotations

from pathlib import Path

from simulator.calibration.importers import genai_perf, hf_generate, llama_bench, vllm_bench
from simulator.calibration.importers.common import read_json
from simulator.calibration.importers.runs import Run, read_csv, read_jsonl
from simulator.errors import SpecError

JSON_FORMATS = (("vllm bench serve", vllm_bench), ("llama-bench", llama_bench), ("genai-perf/aiperf", genai_perf),
                ("hf generate", hf_generate))


def load_runs(path: Path | str, defaults: dict | None = None) -> list[Run]:
    """Every run in one file (a one-line SpecError naming the file, row and field if not)."""
    path, defaults = Path(path), defaults or {}
    if not path.is_file():
        raise SpecError(str(path), "", "no such run file")
    rows = llama_bench.read_rows(path)
    if rows is not None:
        return llama_bench.runs(rows, path, defaults)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):                 # published points (validation/published/*.yaml)
        from simulator.accuracy.published import as_runs, load
        return as_runs(load(path), path)
    if suffix == ".csv":
        return read_csv(path, defaults)
    if suffix == ".jsonl":
        return read_jsonl(path, defaults)
    if suffix != ".json":
        raise SpecError(str(path), "", "expected a .jsonl, .csv, .json or published .yaml run file")
    data = read_json(path)
    for _, module in JSON_FORMATS:
        if module.matches(data):
            return module.runs(data, path, defaults)
    raise SpecError(str(path), "", "not a known run format (expected the llmsim run rows, vllm bench serve "
                                   "--save-result, llama-bench -o json, genai-perf/aiperf profile export, or "
                                   "llmsim-hf-generate/1)")
