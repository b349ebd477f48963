"""Shared pieces of the spec models: a strict frozen base class and unit-checked field types."""
from __future__ import annotations

import datetime
import enum
import reprlib
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict

from simulator import units
from simulator.errors import SpecError

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 40, 40


def shown(value: object) -> str:
    """A value as an error message quotes it: a bounded repr (a few items of a few levels),
    cut to 40 characters. A plain repr of aliased YAML could expand exponentially."""
    text = _REPR.repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


SPEC = "<spec>"     # the path of a problem found while validating; registry.validate puts the file's


def problem(field: str, message: str) -> SpecError:
    """A cross-field problem, raised from a model validator (pydantic passes a non-ValueError
    on unchanged): ``field`` is the dotted path from the top of the file."""
    return SpecError(SPEC, field, message)


class Strict(BaseModel):
    """Frozen, unknown fields forbidden, floats finite (no NaN or infinity); YAML names are the
    field aliases."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Dtype(str, enum.Enum):
    """Numeric formats. ``bits`` is the storage width of one element."""

    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    int8 = "int8"
    int4 = "int4"
    fp4 = "fp4"

    @property
    def bits(self) -> int:
        return {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8,
                "int8": 8, "int4": 4, "fp4": 4}[self.value]

    @property
    def bytes(self) -> float:
        return self.bits / 8.0


def _quantity(dimension: str, positive: bool = True):
    def check(value: object) -> float:
        si = units.parse(value, dimension)
        if positive and si <= 0:
            raise ValueError(f"expected a positive quantity in {units.example_unit(dimension)}, got '{value}'")
        if si < 0:
            raise ValueError(f"expected a non-negative quantity in {units.example_unit(dimension)}, got '{value}'")
        return si

    return BeforeValidator(check)


Bytes = Annotated[float, _quantity("bytes")]
Bandwidth = Annotated[float, _quantity("bandwidth")]
Flops = Annotated[float, _quantity("flops")]
Power = Annotated[float, _quantity("power")]
PowerOrZero = Annotated[float, _quantity("power", positive=False)]
Seconds = Annotated[float, _quantity("time")]
SecondsOrZero = Annotated[float, _quantity("time", positive=False)]
EnergyPerByte = Annotated[float, _quantity("energy_per_byte", positive=False)]
EnergyPerOp = Annotated[float, _quantity("energy_per_op", positive=False)]
Frequency = Annotated[float, _quantity("frequency")]
TransferRate = Annotated[float, _quantity("transfer_rate")]
Usd = Annotated[float, _quantity("usd")]
UsdPerHour = Annotated[float, _quantity("usd_per_hour")]


def _iso_date(value: object) -> object:
    """YAML reads 2024-03-13 as a date; keep it as its ISO string."""
    return value.isoformat() if isinstance(value, datetime.date) else value


class Provenance(Strict):
    """Where the numbers of a spec file come from."""

    sources: list[str]
    date: Annotated[str, BeforeValidator(_iso_date)]
    notes: str = ""


DeviceKind = Literal["cpu", "gpu", "tpu", "fpga", "asic", "pim"]     # the hardware classes (specs/hardware.py)
DEVICE_KINDS: tuple[str, ...] = get_args(DeviceKind)
