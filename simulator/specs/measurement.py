"""The files the measurement harness writes and the simulator reads: one schema for both sides.

``micro-*.json`` (schema ``llmsim-harness-micro/1``: microbenchmarks, which calibration fits
from), ``collectives-*.json`` (``llmsim-harness-collectives/1``: collective microbenchmarks, the
collective model's calibration source) and ``e2e-*.json`` (``llmsim-harness-e2e/1``: end-to-end
points, which accuracy compares with; a parallel point carries its tp, pp, ep and microbatches).
validation/harness validates each document before it writes it; calibration and accuracy read
files only through :func:`load_micro`, :func:`load_collectives` and :func:`load_e2e`. Field meanings and
units are in validation/harness/README.md; times are seconds, energies joules, sizes bytes.

Each record types the fields the simulator reads and keeps every other field the harness
records (``extra="allow"``), so every committed file loads unchanged. A run that stopped early
writes fewer sections: sections default to empty, and a fit that needs one says so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.errors import SpecError

MICRO_SCHEMA = "llmsim-harness-micro/1"
E2E_SCHEMA = "llmsim-harness-e2e/1"
COLLECTIVES_SCHEMA = "llmsim-harness-collectives/1"


class Record(BaseModel):
    """A harness record: the typed fields below, the harness's other fields kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Timed(Record):
    latency_s: float = Field(gt=0)             # median seconds per call
    latency_min_s: float | None = None


class MatmulRow(Timed):
    """x[M, K] @ W[N, K].t()."""

    m: int = Field(gt=0)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    flops: float = Field(ge=0)                 # 2 M N K
    bytes: float = Field(ge=0)


class AttentionRow(Timed):
    phase: Literal["prefill", "decode"]
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    batch: int = Field(gt=0)
    seq_len: int | None = Field(None, gt=0)        # prefill: S
    context_len: int | None = Field(None, ge=0)    # decode: C (attends over C + 1 positions)
    flops: float = Field(ge=0)
    bytes: float = Field(ge=0)

    @model_validator(mode="after")
    def _length_of_its_phase(self):
        if (self.seq_len if self.phase == "prefill" else self.context_len) is None:
            raise ValueError(f"a {self.phase} row needs {'seq_len' if self.phase == 'prefill' else 'context_len'}")
        return self


class ElementwiseRow(Timed):
    op: str
    numel: int = Field(gt=0)
    bytes: float = Field(ge=0)                 # read + written
    inputs_l2_resident: bool


class CopyRow(Timed):
    bytes: int = Field(gt=0)
    bytes_moved: int = Field(gt=0)


class GpuLaunch(Record):
    graph_per_kernel_s: float = Field(ge=0)
    eager_per_kernel_s: float = Field(ge=0)
    one_kernel_graph_replay_s: float = Field(ge=0)


class CpuLaunch(Record):
    """The harness's CPU path: ops are synchronous, each pays one dispatch cost."""

    dispatch_per_op_s: float = Field(ge=0)


class PowerLoop(Record):
    """A loop of one call, back to back, under the energy counter (idle power included;
    no energy where the counter failed)."""

    time_per_call_s: float = Field(gt=0)
    energy_per_call_j: float | None = Field(None, gt=0)
    power_mean_w: float | None = None
    flops_per_call: float = Field(0.0, ge=0)
    bytes_per_call: float = Field(0.0, ge=0)
    bytes_moved_per_call: float = Field(0.0, ge=0)


def _measured(*loops: PowerLoop | None) -> bool:
    return all(loop is not None and loop.energy_per_call_j is not None for loop in loops)


class Power(Record):
    """The power loops (a run stopped early, or without a power counter, has fewer)."""

    matmul: PowerLoop | None = None                           # the 8192^3 GEMM
    copy_loop: PowerLoop | None = Field(None, alias="copy")   # a 2 GiB copy

    @property
    def complete(self) -> bool:
        return _measured(self.matmul, self.copy_loop)


class EnergyLoops(Record):
    tiny_kernels: PowerLoop | None = None      # the device awake, next to no work
    gemv: PowerLoop | None = None
    gemm_m256: PowerLoop | None = None
    attention_prefill: PowerLoop | None = None
    attention_decode: PowerLoop | None = None

    @property
    def complete(self) -> bool:
        return _measured(self.tiny_kernels, self.gemv, self.gemm_m256, self.attention_prefill, self.attention_decode)


class EagerCall(Record):
    eager_per_call_s: float = Field(ge=0)


class HostLayer(Record):
    per_layer_s: float
    kernels_per_layer: int = Field(gt=0)


class PassPoint(Record):
    """One whole pass of a model: a prefill of B x S or a decode step at position C."""

    phase: Literal["prefill", "decode"]
    batch: int = Field(gt=0)
    prompt_len: int | None = Field(None, gt=0)
    context_len: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _length_of_its_phase(self):
        if self.length is None:
            raise ValueError(f"a {self.phase} point needs {'prompt_len' if self.phase == 'prefill' else 'context_len'}")
        return self

    @property
    def length(self) -> int | None:
        """The prompt (prefill) or the context position (decode)."""
        return self.prompt_len if self.phase == "prefill" else self.context_len


class SyntheticPoint(PassPoint):
    latency_s: float = Field(gt=0)


class Synthetic(Record):
    """Whole passes of a synthetic model of none of the validated shapes."""

    config: dict[str, Any]                     # its Hugging Face config
    kernels_per_layer: int = Field(gt=0)
    points: list[SyntheticPoint]


class IdlePower(Record):
    idle_power_w: float | None = None


class Environment(Record):
    harness_version: str
    date_utc: str
    device: str | None = None                  # "cpu" on the CPU path (GPU files predate the field)
    dtype: str | None = None                   # the compute dtype (GPU files predate the field: bf16)
    idle_power: IdlePower | None = None


class Skipped(Record):
    reason: str


class MicroFile(Record):
    """``micro-*.json``: the microbenchmarks of one device and one compute dtype."""

    schema_name: Literal["llmsim-harness-micro/1"] = Field(alias="schema")
    environment: Environment
    run: dict[str, Any] = {}
    matmul: list[MatmulRow] = []
    attention: list[AttentionRow] = []
    elementwise: list[ElementwiseRow] = []
    copies: list[CopyRow] = Field([], alias="copy")
    launch: GpuLaunch | CpuLaunch | None = None
    power: Power | None = None                 # without a power counter: absent or only an error
    energy: EnergyLoops | None = None          # absent in runs before the section existed
    eager: dict[str, EagerCall] | None = None
    host_layer: HostLayer | None = None
    synthetic: Synthetic | None = None
    skipped: list[Skipped] = []

    @property
    def dtype(self) -> str:
        return self.environment.dtype or "bf16"

    @property
    def from_cpu(self) -> bool:
        """A file of the harness's CPU path: ops are synchronous, one dispatch cost each."""
        return isinstance(self.launch, CpuLaunch)


class ModelPoint(PassPoint):
    """A pass of a named model at its precisions. ``dtype`` is the run's one dtype (files
    before the per-part fields: weights, activations and KV cache all in it); where the parts
    differ (FP8 W8A8: fp8 weights and matmul inputs, bf16 KV cache) they are named apart."""

    model: str
    dtype: str = "bf16"                        # GPU files predate the field
    weight_dtype: str | None = None            # None: dtype
    activation_dtype: str | None = None        # None: dtype
    kv_dtype: str | None = None                # None: dtype
    suite: str | None = None                   # the harness suite that measured it (dense, fp8, long, moe)
    tp: int = Field(1, gt=0)                   # tensor-parallel devices (parallel_e2e.py; 1 before the field)
    pp: int = Field(1, gt=0)                   # pipeline stages
    ep: int = Field(1, gt=0)                   # expert-parallel devices (attention data parallel)
    microbatches: int = Field(1, gt=0)         # pipeline microbatches of the pass

    @property
    def precisions(self) -> tuple[str, str, str]:
        """(weights, activations, KV cache)."""
        return (self.weight_dtype or self.dtype, self.activation_dtype or self.dtype, self.kv_dtype or self.dtype)


class E2EPoint(ModelPoint):
    latency_median_s: float = Field(gt=0)


class EnergyPoint(ModelPoint):
    energy_per_call_j: float | None = None     # None where the counter failed


class E2EFile(Record):
    """``e2e-*.json``: end-to-end points (and energy) of one device."""

    schema_name: Literal["llmsim-harness-e2e/1"] = Field(alias="schema")
    environment: Environment
    run: dict[str, Any] = {}
    self_check: dict[str, Any] | None = None
    models: list[Record] = []
    points: list[E2EPoint] = []
    energy: list[EnergyPoint] = []
    skipped: list[Record] = []
    errors: list[Record] = []


class CollectiveRow(Record):
    """One collective of ``bytes`` (nccl-tests' size: module docstring of
    validation/harness/parallel_collectives.py) over ``world_size`` ranks."""

    op: Literal["all_reduce", "all_gather", "all_to_all", "send_recv"]
    graphed: bool                              # replayed inside a CUDA graph
    bytes: int = Field(gt=0)
    world_size: int = Field(gt=0)
    latency_median_s: float = Field(gt=0)      # per call
    latency_min_s: float | None = None
    busbw_bytes_per_s: float = Field(ge=0)


class CollectivesFile(Record):
    """``collectives-*.json``: collective microbenchmarks of one device kind at one world size."""

    schema_name: Literal["llmsim-harness-collectives/1"] = Field(alias="schema")
    environment: Environment
    run: dict[str, Any] = {}
    collectives: list[CollectiveRow] = []
    skipped: list[Record] = []
    errors: list[Record] = []


def measurement_root() -> Path:
    """validation/measurements/: one folder per hardware spec name, sessions below it."""
    from simulator.specs import registry

    return registry.data_root() / "validation" / "measurements"


def _read(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(str(path), "", f"cannot read {what} JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), "", f"expected a {what} JSON object from validation/harness")
    return data


def _validate(model: type[BaseModel], data: dict, path: Path | str, schema: str):
    from simulator.specs import registry

    if data.get("schema") != schema:
        raise SpecError(str(path), "schema", f"expected {schema!r} (a file from validation/harness)")
    return registry.validate(model, data, path)


def load_micro(path: Path | str) -> MicroFile:
    """A microbenchmark file, checked against the schema (a SpecError names the field)."""
    return _validate(MicroFile, _read(Path(path), "microbenchmark"), path, MICRO_SCHEMA)


def load_e2e(path: Path | str) -> E2EFile:
    """An end-to-end file, checked against the schema (a SpecError names the field)."""
    return _validate(E2EFile, _read(Path(path), "end-to-end"), path, E2E_SCHEMA)


def load_collectives(path: Path | str) -> CollectivesFile:
    """A collective microbenchmark file, checked against the schema (a SpecError names the field)."""
    return _validate(CollectivesFile, _read(Path(path), "collectives"), path, COLLECTIVES_SCHEMA)


def check(doc: dict) -> None:
    """Raise unless ``doc`` (a document the harness is about to write) fits its schema."""
    model = {MICRO_SCHEMA: MicroFile, E2E_SCHEMA: E2EFile, COLLECTIVES_SCHEMA: CollectivesFile}.get(doc.get("schema"))
    if model is None:
        raise ValueError(f"schema: expected {MICRO_SCHEMA!r}, {E2E_SCHEMA!r} or {COLLECTIVES_SCHEMA!r}, "
                         f"got {doc.get('schema')!r}")
    model.model_validate(doc)
