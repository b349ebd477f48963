"""End-to-end runs, one scenario a row: the input of `llmsim calibrate --from-runs`.

A run names a model (registry name, spec or config.json path), a device (name or spec
path), the workload (batch B, prompt S, output N tokens; optional tp, pp and dtypes) and
one or more measured metrics, in the simulator's semantics (README, "What the numbers
mean"): ``ttft_s`` (s, the prefill pass), ``tpot_s`` (s, mean decode step over tokens
2..N), ``e2e_s`` (s, = TTFT + (N - 1) TPOT), ``output_tokens_per_s`` (B N / e2e, all
devices together). Times are seconds; every metric is finite and > 0.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import Field, model_validator

from simulator.errors import SpecError
from simulator.specs import registry
from simulator.specs.base import Strict
from simulator.specs.workload import Positive

METRICS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s")
INTEGER_FIELDS = ("batch", "prompt", "output", "tp", "pp")
MetricValue = Field(None, gt=0)


class Run(Strict):
    """One measured scenario (fields as in the module docstring)."""

    model: str
    hardware: str
    batch: Positive
    prompt: Positive
    output: Positive
    tp: Positive = 1
    pp: Positive = 1
    weight_dtype: str | None = None
    activation_dtype: str | None = None
    kv_dtype: str | None = None
    ttft_s: float | None = MetricValue
    tpot_s: float | None = MetricValue
    e2e_s: float | None = MetricValue
    output_tokens_per_s: float | None = MetricValue
    session: str = ""            # a label: runs of one session share a host, a build, a day
    source: str = ""             # where the row came from (file and line); set by the readers

    @model_validator(mode="after")
    def _measures_something(self):
        if all(getattr(self, m) is None for m in METRICS):
            raise ValueError(f"expected at least one of {', '.join(METRICS)}")
        if self.tpot_s is not None and self.output < 2:
            raise ValueError("tpot_s needs output >= 2 (TPOT is the mean step over tokens 2..N)")
        return self

    def measured(self) -> dict[str, float]:
        """{metric: value} of the metrics this run measured."""
        return {m: getattr(self, m) for m in METRICS if getattr(self, m) is not None}


def run_from(data: dict, path: Path | str, where: str, defaults: dict | None = None) -> Run:
    """A Run from one row's fields (``defaults`` fill fields the row leaves out); a bad field
    raises SpecError(path, "<where>: <field>", what was expected)."""
    row = {**(defaults or {}), **{k: v for k, v in data.items() if v is not None}}
    try:
        run = registry.validate(Run, row, path)
    except SpecError as err:
        raise SpecError(str(path), f"{where}: {err.field}" if err.field else where, err.message) from None
    return run.model_copy(update={"source": f"{Path(path).name}:{where}"})


def _csv_value(field: str, text: str):
    """A CSV cell as the value its field takes: integers for the workload's counts, numbers
    for the metrics, text otherwise (validation says what is wrong with a bad one)."""
    text = text.strip()
    if text == "":
        return None
    try:
        if field in INTEGER_FIELDS:
            return int(text)
        if field in METRICS:
            return float(text)
    except ValueError:
        return text                 # the schema names the field and what it expected
    return text


def read_csv(path: Path, defaults: dict | None = None) -> list[Run]:
    """One run per CSV row under a header of Run field names."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise SpecError(str(path), "", "empty CSV file (expected a header of run fields)")
        runs = []
        for row in reader:
            if None in row:
                raise SpecError(str(path), f"line {reader.line_num}", "more cells than header fields")
            runs.append(run_from({k: _csv_value(k, v) for k, v in row.items()}, path, f"line {reader.line_num}",
                                 defaults))
    return runs


def read_jsonl(path: Path, defaults: dict | None = None) -> list[Run]:
    """One run per non-empty line, each a JSON object of Run fields."""
    runs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise SpecError(str(path), f"line {n}", f"not JSON ({err.msg})") from None
        if not isinstance(data, dict):
            raise SpecError(str(path), f"line {n}", "expected a JSON object of run fields")
        runs.append(run_from(data, path, f"line {n}", defaults))
    return runs
