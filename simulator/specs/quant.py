"""Weight storage formats: a dtype, optionally in groups that share one scale.

``<dtype>[-g<group>]``: e.g. ``int4-g128`` stores 4-bit weights with one fp16 scale per 128
of them: 4 + 16/128 = 4.125 bits per weight. Aliases from llama.cpp: ``q4_0`` = int4-g32
(4.5 bits), ``q8_0`` = int8-g32 (8.5 bits). Microscaling formats have 8-bit scales: ``mxfp4`` =
fp4 in groups of 32 with an E8M0 scale (4.25 bits; OCP MX spec v1.0), ``nvfp4`` = fp4 in groups of
16 with an E4M3 scale (4.5 bits; NVIDIA Blackwell). Weight-only formats dequantize to the activation
dtype on the fly, so the matmuls run at the activation dtype's peak; W8A8 and FP8 set the
activation dtype too.
"""
from __future__ import annotations

import dataclasses
import re

from simulator.specs.base import Dtype

SCALE_BITS = 16                     # one fp16 scale per group
ALIASES = {"q4_0": "int4-g32", "q8_0": "int8-g32", "mxfp4": "fp4-g32", "nvfp4": "fp4-g16"}
ALIAS_SCALE_BITS = {"mxfp4": 8, "nvfp4": 8}     # 8-bit shared scales (E8M0, E4M3)
_FORMAT = re.compile(r"^(?P<dtype>[a-z0-9]+)(?:-g(?P<group>\d+))?$")


@dataclasses.dataclass(frozen=True)
class WeightFormat:
    name: str
    dtype: Dtype
    group_size: int = 0              # weights sharing one scale; 0 = no group scales
    scale_bits: int = SCALE_BITS     # bits of each group's scale

    @property
    def bits(self) -> float:
        """Storage bits per weight, scales included."""
        return self.dtype.bits + (self.scale_bits / self.group_size if self.group_size else 0.0)

    @property
    def bytes(self) -> float:
        return self.bits / 8.0


def parse_weight_format(text: str) -> WeightFormat:
    """'int4-g128' -> WeightFormat; raises ValueError saying what is expected."""
    expected = ("expected a dtype (fp32, bf16, fp16, fp8, int8, int4, fp4), optionally with a group "
                "size such as int4-g128, or q4_0 / q8_0 / mxfp4 / nvfp4")
    match = _FORMAT.match(ALIASES.get(text, text)) if isinstance(text, str) else None
    if not match or match["dtype"] not in Dtype.__members__:
        raise ValueError(f"{expected}, got {text!r}")
    group = int(match["group"] or 0)
    if match["group"] is not None and group <= 0:
        raise ValueError(f"group size must be positive, got {text!r}")
    return WeightFormat(text, Dtype(match["dtype"]), group, ALIAS_SCALE_BITS.get(text, SCALE_BITS))
