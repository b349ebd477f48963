"""Workload: batch, prompt and output lengths, and the precision of each tensor class.

Every integer is a strict int in [1, 2^63 - 1] (int64, what the kernels take); batch x (prompt +
output) tokens in flight must fit int64 too. Checks against a model and a device (pipeline
stages vs layers, tensor parallelism vs heads, context vs max_position_embeddings, a dtype the
device has a peak for) live in specs/consistency.py.
"""
from __future__ import annotations

import operator
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from simulator.errors import WorkloadError
from simulator.specs.base import Dtype, Strict, shown
from simulator.specs.quant import WeightFormat, parse_weight_format

INT64_MAX = 2**63 - 1


def _integer(value: object) -> object:
    """An int (or numpy integer) as int; a bool, float or string is not an integer here."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"expected an integer, got {shown(value)}") from None


Positive = Annotated[int, BeforeValidator(_integer), Field(gt=0, le=INT64_MAX)]


class Workload(Strict):
    """B sequences, each a prompt of ``prompt`` tokens followed by ``output`` generated tokens."""

    batch: Positive = 8
    prompt: Positive = 1024
    output: Positive = 128
    weight_dtype: str = "bf16"          # a weight format: dtype[-g<group>] (specs/quant.py)
    activation_dtype: Dtype = Dtype.bf16
    kv_dtype: Dtype = Dtype.bf16
    tp: Positive = 1                    # tensor-parallel devices per replica
    pp: Positive = 1                    # pipeline stages per replica
    dp: Positive = 1                    # data-parallel replicas; the batch is split over them
    ep: Positive = 1                    # expert-parallel devices: experts split over them, attention
                                        # data parallel (each holds 1/ep of the batch)
    microbatches: Positive = 1          # pipeline microbatches per replica batch
    draft_model: str | None = None      # speculative decoding: the draft model's name or path
    draft_tokens: Positive = 4          # tokens the draft proposes per iteration
    acceptance: float = Field(0.7, ge=0, le=1)  # probability the target accepts each drafted token

    @field_validator("weight_dtype")
    @classmethod
    def _known_format(cls, value: str) -> str:
        parse_weight_format(value)
        return value

    @property
    def weight_format(self) -> WeightFormat:
        return parse_weight_format(self.weight_dtype)

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.dp * self.ep

    @property
    def replica_batch(self) -> int:
        return self.batch // (self.dp * self.ep)

    @property
    def microbatch(self) -> int:
        return self.replica_batch // self.microbatches

    @model_validator(mode="after")
    def _consistent(self):
        """Cross-field checks; they raise WorkloadError (not a ValueError, so pydantic passes it on)."""
        if self.prompt + self.output > INT64_MAX:
            raise WorkloadError("output", f"prompt + output must be below 2^63, got {self.prompt} + {self.output}")
        if self.batch * (self.prompt + self.output) > INT64_MAX:
            raise WorkloadError("batch", f"batch x (prompt + output) tokens must be below 2^63, got "
                                         f"{self.batch} x {self.prompt + self.output}")
        if self.devices > INT64_MAX:
            raise WorkloadError("tp", "tp x pp x dp x ep devices must be below 2^63")
        if self.batch % (self.dp * self.ep):
            raise WorkloadError("dp", f"{self.dp} replicas x {self.ep} expert-parallel devices must divide the "
                                      f"batch of {self.batch}")
        if self.replica_batch % self.microbatches:
            raise WorkloadError("microbatches", f"{self.microbatches} must divide the replica batch of "
                                                f"{self.replica_batch}")
        if self.draft_model is not None and not self.draft_model:
            raise WorkloadError("draft_model", "expected a model name or path, got ''")
        return self


def _describe(e: dict) -> str:
    """One pydantic error as what was expected, and what came."""
    if e["type"] == "enum":
        return f"expected one of {e['ctx']['expected']}, got {e['input']!r}"
    message = e["msg"].removeprefix("Value error, ")
    if e["type"] == "value_error":
        return message
    return f"{message.lower()}, got {shown(e['input'])}"


def workload(**fields) -> Workload:
    """Build a Workload from arguments; a bad value raises WorkloadError naming the field."""
    try:
        return Workload(**fields)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        raise WorkloadError(".".join(str(p) for p in e["loc"]), _describe(e)) from None
