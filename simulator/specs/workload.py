"""Workload: batch, prompt and output lengths, and the precision of each tensor class."""
from __future__ import annotations

from pydantic import Field

from simulator.specs.base import Dtype, Strict


class Workload(Strict):
    """B sequences, each a prompt of ``prompt`` tokens followed by ``output`` generated tokens."""

    batch: int = Field(8, gt=0)
    prompt: int = Field(1024, gt=0)
    output: int = Field(128, gt=0)
    weight_dtype: Dtype = Dtype.bf16
    activation_dtype: Dtype = Dtype.bf16
    kv_dtype: Dtype = Dtype.bf16


def workload(**fields) -> Workload:
    """Build a Workload from arguments; a bad value raises WorkloadError naming the field."""
    from pydantic import ValidationError

    from simulator.errors import WorkloadError

    try:
        return Workload(**fields)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        field = ".".join(str(p) for p in e["loc"])
        if e["type"] == "enum":
            raise WorkloadError(field, f"expected one of {e['ctx']['expected']}, got {e['input']!r}") from None
        raise WorkloadError(field, f"{e['msg'].lower()}, got {e['input']!r}") from None
