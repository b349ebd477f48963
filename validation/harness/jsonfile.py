"""Writing the harness's JSON files: each document is checked against the schema the
simulator reads it with (simulator/specs/measurement.py) before it replaces the file."""
from __future__ import annotations

import json
import os
from pathlib import Path

from simulator.specs.measurement import check


def write_json(path: Path, doc: dict) -> None:
    """Validate ``doc`` (a micro or e2e document, possibly of a run still going), then write it
    atomically (a timeout mid-run still leaves the last whole file)."""
    check(json.loads(json.dumps(doc, default=str)))
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)
