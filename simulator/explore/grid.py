"""The grid file of ``llmsim sweep``: which models, devices, stacks, precisions,
parallelism, what-if factors and (batch, prompt, output) values to cross.

    models: [llama-3.1-8b, mistral-7b]     # names, or spec / config.json paths (relative to the file)
    hardware: [h100-sxm, a100-sxm-80gb]    # names or spec paths
    stacks: [pytorch-ref]                  # default: pytorch-ref
    batch: {from: 1, to: 256, factor: 2}   # a number, a list, or a range with step or factor
    prompt: {from: 128, to: 8192, step: 128}
    output: [128, 512]
    weight_dtype: [bf16, fp8, int4-g128]   # weight formats; default bf16
    activation_dtype: [bf16]               # default bf16
    kv_dtype: [bf16]                       # default bf16
    tp: [1, 2]                             # tensor-parallel devices; default 1
    pp: [1]                                # pipeline stages; default 1
    dp: [1]                                # data-parallel replicas; default 1
    ep: [1]                                # expert-parallel devices; default 1
    microbatches: [1]                      # pipeline microbatches; default 1
    draft_model: [none, llama-3.2-1b]      # speculative decoding's draft (none: off); default none
    draft_tokens: [4]                      # tokens drafted per iteration; default 4
    acceptance: [0.7]                      # probability each drafted token is accepted; default 0.7
    whatif:                                # scale the devices' facts (simulator/whatif.py)
      bandwidth: {from: 0.5, to: 4, factor: 2}
      peak: [1, 2]

Every list is crossed with every other (draft_tokens and acceptance only with a draft). Each
batch value must split evenly over dp x ep replicas and their microbatches. Errors name
the file and the field (SpecError). These are ``simulator.predict``'s options: a sweep row
equals ``predict`` with the same ones.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BeforeValidator, Field

from simulator.engine.batch import Layout
from simulator.explore.axes import Grid
from simulator.errors import SpecError, UnknownNameError
from simulator.specs import registry
from simulator.specs.base import Dtype, Strict
from simulator.specs.quant import parse_weight_format
from simulator.specs.workload import INT64_MAX
from simulator.explore.whatif import FACTORS, Factors

MAX_AXIS_VALUES = 1_000_000


def _range(spec: dict, integer: bool) -> list:
    """{from, to, step} (arithmetic) or {from, to, factor} (geometric), both ends included."""
    keys = set(spec)
    if keys - {"from", "to", "step", "factor"} or not {"from", "to"} <= keys or ("step" in keys) == ("factor" in keys):
        raise ValueError("expected a range {from: A, to: B, step: S} or {from: A, to: B, factor: F}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in spec.values()):
        raise ValueError(f"expected finite numbers in the range, got {spec}")
    start, stop = spec["from"], spec["to"]
    if not 0 < start <= stop:
        raise ValueError(f"expected 0 < from <= to, got from {start}, to {stop}")
    if "step" in spec:
        step = spec["step"]
        if step <= 0:
            raise ValueError(f"expected a step > 0, got {step}")
        count = math.floor((stop - start) / step + 1e-9) + 1
        values = (start + i * step for i in range(count))
    else:
        factor = spec["factor"]
        if factor <= 1:
            raise ValueError(f"expected a factor > 1, got {factor}")
        count = math.floor(math.log(stop / start) / math.log(factor) + 1e-9) + 1
        values = (start * factor ** i for i in range(count))
    if count > MAX_AXIS_VALUES:
        raise ValueError(f"{count:,} values; at most {MAX_AXIS_VALUES:,} per axis")
    if integer:
        return sorted({round(v) for v in values})
    return [float(f"{v:.12g}") for v in values]


def _axis(integer: bool):
    def parse(value):
        if isinstance(value, dict):
            return _range(value, integer)
        return value if isinstance(value, list) else [value]
    return BeforeValidator(parse)


def _listify(value):
    return value if isinstance(value, list) else [value]


def _weight_format(value: str) -> str:
    parse_weight_format(value)
    return value


IntAxis = Annotated[list[Annotated[int, Field(gt=0)]], _axis(True), Field(min_length=1)]
MAX_FACTOR = 1e6     # a what-if factor scales a datasheet figure; a million-fold keeps every product finite
FactorAxis = Annotated[list[Annotated[float, Field(gt=0, le=MAX_FACTOR)]], _axis(False), Field(min_length=1)]
Names = Annotated[list[str], BeforeValidator(_listify), Field(min_length=1)]
Drafts = Annotated[list[str | None], BeforeValidator(_listify), Field(min_length=1)]
Acceptances = Annotated[list[Annotated[float, Field(ge=0, le=1)]], _axis(False), Field(min_length=1)]
Dtypes = Annotated[list[Dtype], BeforeValidator(_listify), Field(min_length=1)]
WeightFormats = Annotated[list[Annotated[str, BeforeValidator(_weight_format)]], BeforeValidator(_listify),
                          Field(min_length=1)]


class WhatIfFile(Strict):
    bandwidth: FactorAxis = [1.0]
    capacity: FactorAxis = [1.0]
    sram: FactorAxis = [1.0]
    peak: FactorAxis = [1.0]
    power: FactorAxis = [1.0]


class GridFile(Strict):
    models: Names
    hardware: Names
    stacks: Names = ["pytorch-ref"]
    batch: IntAxis = [8]
    prompt: IntAxis = [1024]
    output: IntAxis = [128]
    weight_dtype: WeightFormats = ["bf16"]
    activation_dtype: Dtypes = [Dtype.bf16]
    kv_dtype: Dtypes = [Dtype.bf16]
    tp: IntAxis = [1]
    pp: IntAxis = [1]
    dp: IntAxis = [1]
    ep: IntAxis = [1]
    microbatches: IntAxis = [1]
    draft_model: Drafts = [None]
    draft_tokens: IntAxis = [4]
    acceptance: Acceptances = [0.7]
    whatif: WhatIfFile = WhatIfFile()


@dataclasses.dataclass(frozen=True)
class Group:
    """One (model, device variant, stack, precisions, layout, draft model): one prepare."""

    model: str
    hardware: str
    factors: Factors
    stack: str
    weight_dtype: str
    activation_dtype: Dtype
    kv_dtype: Dtype
    layout: Layout = Layout()        # tp, pp, dp, ep, microbatches; draft_tokens > 0 with a draft model
    draft_model: str | None = None


def _check_keys(path: str, data: dict, allowed, where: str = "") -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of {', '.join(allowed)}"
            raise SpecError(path, f"{where}{key}", f"unknown key{hint}")


def _resolve(path: Path, field: str, names: list[str], lookup) -> list[str]:
    """Registry names stay; other entries are paths, relative to the grid file. Each must load."""
    resolved = []
    for i, name in enumerate(names):
        local = path.parent / name
        try:
            is_local = not Path(name).is_absolute() and local.is_file()
        except (OSError, ValueError):          # a name too long for the file system, or with a NUL
            is_local = False
        if is_local:
            name = str(local.resolve())
        try:
            lookup(name)
        except UnknownNameError as err:
            raise SpecError(str(path), f"{field}.{i}", str(err)) from None
        resolved.append(name)
    return resolved


def parse_grid(data: dict, path: str | Path = "<grid>") -> Grid:
    """A Grid from the parsed mapping of a grid file."""
    path = Path(path)
    _check_keys(str(path), data, GridFile.model_fields)
    if isinstance(data.get("whatif"), dict):
        _check_keys(str(path), data["whatif"], FACTORS, "whatif.")
    spec = registry.validate(GridFile, data, path)
    models = _resolve(path, "models", spec.models, registry.model)
    hardware = _resolve(path, "hardware", spec.hardware, registry.hardware)
    stacks = _resolve(path, "stacks", spec.stacks, registry.stack)
    drafts = [None if d is None or str(d).lower() == "none" else d for d in spec.draft_model]
    drafts = [d if d is None else _resolve(path, "draft_model", [d], registry.model)[0] for d in drafts]
    w = spec.whatif
    factors = [Factors(*combo) for combo in itertools.product(*(getattr(w, f) for f in FACTORS))]
    speculation = [(d, k, a) for d in drafts for k, a in itertools.product(spec.draft_tokens, spec.acceptance)]
    speculation = list(dict.fromkeys((d, k, a) if d else (None, 0, 0.0) for d, k, a in speculation))
    parallel = itertools.product(spec.tp, spec.pp, spec.dp, spec.ep, spec.microbatches)
    layouts = [(Layout(*degrees, k, a), d) for degrees in parallel for d, k, a in speculation]
    groups = tuple(Group(m, h, f, s, wd, ad, kd, layout, d)
                   for m, h, f, s, wd, ad, kd, (layout, d) in itertools.product(
                       models, hardware, factors, stacks, spec.weight_dtype, spec.activation_dtype, spec.kv_dtype,
                       layouts))
    _check_batch_split(path, spec)
    axis = functools.partial(np.array, dtype=np.int64)
    return Grid(str(path), groups, axis(spec.batch), axis(spec.prompt), axis(spec.output))


def _check_batch_split(path: Path, spec: GridFile) -> None:
    """Every batch value splits evenly over dp x ep replicas and each replica's microbatches,
    and B x (S + N) tokens in flight stay within int64 (what the kernels count in)."""
    most = max(spec.batch) * (max(spec.prompt) + max(spec.output))
    if most > INT64_MAX:
        raise SpecError(str(path), "batch", f"expected batch x (prompt + output) within int64, got "
                                            f"{max(spec.batch)} x ({max(spec.prompt)} + {max(spec.output)})")
    for i, b in enumerate(spec.batch):
        for dp, ep, m in itertools.product(spec.dp, spec.ep, spec.microbatches):
            if b % (dp * ep * m):
                raise SpecError(str(path), f"batch.{i}", f"expected a batch that dp x ep x microbatches = "
                                f"{dp} x {ep} x {m} divides, got {b}")


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; SpecError names the file and field of any problem."""
    path = Path(path)
    return parse_grid(registry.read_yaml(path), path)
