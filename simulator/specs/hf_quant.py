"""A checkpoint's ``quantization_config`` (Hugging Face field names verbatim) as a weight
format name of specs/quant.py: what the weights take in memory unless ``--weight-dtype`` says
otherwise. Sources: transformers' utils/quantization_config.py (AwqConfig, GPTQConfig,
FineGrainedFP8Config, Mxfp4Config, BitsAndBytesConfig) and compressed-tensors'
QuantizationArgs (num_bits, type, strategy, group_size).

The decoder layers' weights take that format; the embedding and LM head stay 16-bit, as AWQ
and GPTQ checkpoints keep them (graph/lower.py: an AWQ 8B Llama weighs 5.7 GB). gpt-oss also
keeps attention and the router at bf16 (modules_to_not_convert), which is not modelled (they
are 1% of its weights). FP8's block scales (one fp32 per 128 x 128 weights, 0.002 bits a
weight) are not counted.
"""
from __future__ import annotations

from typing import Any

from simulator.specs.base import shown
from simulator.specs.hf_fields import bad

FIELD = "quantization_config"
METHODS = ("awq", "gptq", "compressed-tensors", "fp8", "mxfp4", "bitsandbytes")


def _bits(cfg: dict, key: str, allowed: tuple[int, ...], where: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or value not in allowed:
        raise bad(f"{where}.{key}", f"expected one of {', '.join(map(str, allowed))}, got {shown(value)}")
    return value


def _group(cfg: dict, key: str, where: str) -> int:
    """A group size: a positive integer, or -1 / null / absent for one scale per output channel (0)."""
    value = cfg.get(key)
    if value is None or value == -1:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise bad(f"{where}.{key}", f"expected a positive group size or -1, got {shown(value)}")
    return value


def _int_format(bits: int, group: int) -> str:
    return f"int{bits}" + (f"-g{group}" if group else "")


def _awq_gptq(q: dict) -> str:
    """AWQ and GPTQ: ``bits``-bit integers, one fp16 scale per ``group_size`` weights (AWQ's 4-bit
    zero points, 1/32 bit a weight at group 128, are not counted)."""
    return _int_format(_bits(q, "bits", (4, 8), FIELD), _group(q, "group_size", FIELD))


def _compressed_tensors(q: dict) -> str:
    """compressed-tensors: the weights of the first config group (num_bits, type int/float, group_size)."""
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise bad(f"{FIELD}.config_groups", f"expected a mapping of quantization groups, got {shown(groups)}")
    name, group = next(iter(groups.items()))
    where = f"{FIELD}.config_groups.{name}.weights"
    weights = group.get("weights") if isinstance(group, dict) else None
    if not isinstance(weights, dict):
        raise bad(where, f"expected the weights' quantization arguments, got {shown(weights)}")
    bits = _bits(weights, "num_bits", (4, 8), where)
    kind = weights.get("type", "int")
    if kind not in ("int", "float"):
        raise bad(f"{where}.type", f"expected int or float, got {shown(kind)}")
    size = _group(weights, "group_size", where)
    if kind == "float":
        return "fp8" if bits == 8 else ("nvfp4" if size == 16 else "fp4" + (f"-g{size}" if size else ""))
    return _int_format(bits, size)


def _bitsandbytes(q: dict) -> str:
    """bitsandbytes: 8-bit (LLM.int8) or 4-bit NF4/FP4 with one scale per 64 weights (default blocksize)."""
    if q.get("load_in_4bit") is True:
        return "int4-g64"
    if q.get("load_in_8bit") is True:
        return "int8"
    raise bad(FIELD, "expected load_in_4bit or load_in_8bit to be true")


def weight_format(q: Any) -> str:
    """The weight format name (quant.parse_weight_format) of a quantization_config mapping."""
    if not isinstance(q, dict):
        raise bad(FIELD, f"expected a mapping, got {shown(q)}")
    method = q.get("quant_method")
    if method in ("awq", "gptq"):
        return _awq_gptq(q)
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    if method == "fp8":
        return "fp8"
    if method == "mxfp4":
        return "mxfp4"
    if method == "bitsandbytes":
        return _bitsandbytes(q)
    raise bad(f"{FIELD}.quant_method", f"expected one of {', '.join(METHODS)}, got {shown(method)}")
