"""What the importers share: reading a JSON document, seconds from a unit name, the
registry model a Hugging Face id names, and a field that must be present."""
from __future__ import annotations

import json
from pathlib import Path

from simulator.errors import SpecError
from simulator.specs import registry

MAX_BYTES = 64 * 2**20            # a benchmark export of at most 64 MiB (vLLM's detailed results are large)
TUNED = ("-instruct", "-chat", "-it")   # fine-tuned variants share the base model's architecture
SECONDS_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
               "ns": 1e-9}


def read_json(path: Path):
    """The JSON value of a file (one line SpecError when it is not JSON or too large)."""
    if Path(path).stat().st_size > MAX_BYTES:
        raise SpecError(str(path), "", f"larger than {MAX_BYTES // 2**20} MiB")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpecError(str(path), "", f"not a JSON file ({getattr(err, 'msg', err)})") from None


def seconds(value, unit: str, path, field: str) -> float:
    """``value`` in ``unit`` (s, ms, us, ns) as seconds."""
    factor = SECONDS_PER.get(str(unit).strip().lower())
    if factor is None:
        raise SpecError(str(path), field, f"unknown time unit {unit!r} (expected one of {', '.join(SECONDS_PER)})")
    return number(value, path, field) * factor


def number(value, path, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(str(path), field, f"expected a number, got {value!r:.60}")
    return float(value)


def required(data: dict, key: str, path, where: str = ""):
    if not isinstance(data, dict) or data.get(key) is None:
        raise SpecError(str(path), f"{where}{key}", "required field is missing")
    return data[key]


def model_for_hf_id(hf_id: str) -> str | None:
    """The registry model whose spec's source is the Hugging Face repository ``hf_id``
    (``org/name``, or a local path ending in it; an -Instruct/-chat/-it variant falls back to
    its base), or None."""
    tail = "/".join(str(hf_id).rstrip("/").split("/")[-2:]).lower()
    found = _model_with_source(tail)
    if found is None and tail.endswith(TUNED):     # a tuned variant has its base model's config
        found = _model_with_source(next(tail[: -len(t)] for t in TUNED if tail.endswith(t)))
    return found


def _model_with_source(tail: str) -> str | None:
    for name in registry.model_index():
        try:
            _, _, spec = registry.model(name)
        except Exception:                 # a broken spec elsewhere is not this file's problem
            continue
        source = (getattr(spec, "source", "") or "").lower().rstrip("/")
        if source.endswith(tail) or f"/{tail}/" in source:
            return name
    return None
