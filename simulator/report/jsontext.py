"""JSON output of the commands: always valid JSON (RFC 8259 has no NaN or Infinity). A
quantity that is missing or unbounded (no decode step, no price, no power figures, a
target not set) is ``null``."""
from __future__ import annotations

import dataclasses
import enum
import json
import math


def plain(value):
    """``value`` as JSON-ready data: dataclasses and pydantic models as dicts, enums as
    their values, non-finite floats as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def json_text(value) -> str:
    return json.dumps(plain(value), indent=2, allow_nan=False)
