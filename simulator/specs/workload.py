"""Workload: batch, prompt and output lengths, and the precision of each tensor class."""
from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from simulator.specs.base import Dtype, Strict
from simulator.specs.quant import WeightFormat, parse_weight_format


class Workload(Strict):
    """B sequences, each a prompt of ``prompt`` tokens followed by ``output`` generated tokens."""

    batch: int = Field(8, gt=0)
    prompt: int = Field(1024, gt=0)
    output: int = Field(128, gt=0)
    weight_dtype: str = "bf16"          # a weight format: dtype[-g<group>] (specs/quant.py)
    activation_dtype: Dtype = Dtype.bf16
    kv_dtype: Dtype = Dtype.bf16
    tp: int = Field(1, gt=0)              # tensor-parallel devices per replica
    pp: int = Field(1, gt=0)              # pipeline stages per replica
    dp: int = Field(1, gt=0)              # data-parallel replicas; the batch is split over them
    ep: int = Field(1, gt=0)              # expert-parallel devices: experts split over them, attention
                                          # data parallel (each holds 1/ep of the batch)
    microbatches: int = Field(1, gt=0)    # pipeline microbatches per replica batch
    draft_model: str | None = None        # speculative decoding: the draft model's name or path
    draft_tokens: int = Field(4, gt=0)    # tokens the draft proposes per iteration
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
    def _divisible(self):
        if self.batch % (self.dp * self.ep):
            raise ValueError(f"dp: {self.dp} replicas x {self.ep} expert-parallel devices must divide the batch "
                             f"of {self.batch}")
        if self.replica_batch % self.microbatches:
            raise ValueError(f"microbatches: {self.microbatches} must divide the replica batch of "
                             f"{self.replica_batch}")
        return self


def workload(**fields) -> Workload:
    """Build a Workload from arguments; a bad value raises WorkloadError naming the field."""
    from pydantic import ValidationError

    from simulator.errors import WorkloadError

    try:
        return Workload(**fields)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        if not e["loc"]:                       # a cross-field check: "field: message"
            field, _, message = e["msg"].removeprefix("Value error, ").partition(": ")
            raise WorkloadError(field, message) from None
        field = ".".join(str(p) for p in e["loc"])
        if e["type"] == "enum":
            raise WorkloadError(field, f"expected one of {e['ctx']['expected']}, got {e['input']!r}") from None
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] != "value_error":
            message = f"{message.lower()}, got {e['input']!r}"
        raise WorkloadError(field, message) from None
