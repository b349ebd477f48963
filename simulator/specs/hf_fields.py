"""Typed readers of Hugging Face config fields, shared by every family's normaliser.

Integers are JSON integers in [minimum, 2^31 - 1], booleans JSON true/false (the string
"false" is an error, not true), strings come from a list, fractions are numbers in (0, 1].
Every problem is a SpecError naming the config field; an absent required field is Missing.
"""
from __future__ import annotations

from typing import Any

from simulator.errors import SpecError
from simulator.specs.base import shown
from simulator.specs.model import MAX_SIZE, MODEL

REQUIRED = object()
# hidden_act / activation_function spellings -> the Architecture's activation
ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "relu": "relu", "gelu_new": "gelu",
               "gelu_fast": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_python": "gelu"}


class Missing(KeyError):
    """A required config field is absent (or null)."""


def bad(key: str, message: str) -> SpecError:
    return SpecError(MODEL, key, message)


def integer(cfg: dict, key: str, default: Any = REQUIRED, minimum: int = 1, maximum: int = MAX_SIZE):
    """A config integer in [minimum, maximum]; an absent or null field is ``default``
    (Missing when required). Booleans, floats, strings, lists are rejected."""
    value = cfg.get(key)
    if value is None:
        if default is REQUIRED:
            raise Missing(key)
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        what = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f"at least {minimum}"
        raise bad(key, f"expected a {what} integer, got {shown(value)}")
    if value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise bad(key, f"expected {kind}, got {value}")
    if value > maximum:
        raise bad(key, f"expected at most {maximum} (2^31-1), got {value}")
    return value


def required(cfg: dict, key: str) -> int:
    """A required positive integer field."""
    return integer(cfg, key)


def first_integer(cfg: dict, *keys: str, default: Any = REQUIRED) -> int:
    """The first of ``keys`` present (families spell one field two ways: n_layer, num_hidden_layers)."""
    for key in keys:
        if cfg.get(key) is not None:
            return integer(cfg, key)
    if default is REQUIRED:
        raise Missing(keys[-1])
    return default


def boolean(cfg: dict, key: str, default: bool) -> bool:
    """A config boolean: JSON true/false only (the string "false" is not false)."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(key, f"expected true or false (a JSON boolean), got {shown(value)}")
    return value


def choice(cfg: dict, key: str, default: str, choices: dict[str, str]) -> str:
    """A config string among ``choices`` (a mapping of accepted spellings to canonical names)."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise bad(key, f"expected one of {', '.join(sorted(choices))}, got {shown(value)}")
    return choices[value]


def fraction(cfg: dict, key: str, default: float) -> float:
    """A number in (0, 1] (rotary_pct, partial_rotary_factor)."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise bad(key, f"expected a number in (0, 1], got {shown(value)}")
    return float(value)


def string_list(cfg: dict, key: str) -> list[str] | None:
    """A list of strings (layer_types), or None when absent."""
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(key, f"expected a list of strings, got {shown(value)}")
    return value


def head_dim(cfg: dict, hidden: int, heads: int, heads_key: str, hidden_key: str) -> int:
    """``head_dim`` when the config gives it, else hidden / heads (which must divide)."""
    explicit = integer(cfg, "head_dim", None)
    if explicit is not None:
        return explicit
    if hidden % heads:
        raise bad(heads_key, f"the {heads} heads must divide {hidden_key} ({hidden}) when head_dim is not given")
    return hidden // heads


def max_positions(cfg: dict, *keys: str) -> int | None:
    for key in keys:
        value = integer(cfg, key, None)
        if value is not None:
            return value
    return None


LLAMA_FIELDS = frozenset({"hidden_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads",
                          "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "hidden_act",
                          "attention_bias", "mlp_bias", "sliding_window", "quantization_config"})


def llama_like(cfg: dict, family: str, qkv_bias_default: bool, tied_default: bool = False,
               activation_key: str = "hidden_act") -> dict:
    """Architecture fields of a Llama-shaped decoder (pre-norm RMSNorm, rotary, gated MLP)."""
    hidden = required(cfg, "hidden_size")
    heads = required(cfg, "num_attention_heads")
    dim = head_dim(cfg, hidden, heads, "num_attention_heads", "hidden_size")
    window = integer(cfg, "sliding_window", None) if boolean(cfg, "use_sliding_window", True) else None
    bias = boolean(cfg, "attention_bias", qkv_bias_default)
    return dict(
        family=family, hidden_size=hidden, num_layers=required(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=integer(cfg, "num_key_value_heads", heads), head_dim=dim,
        ffn_size=required(cfg, "intermediate_size"), vocab_size=required(cfg, "vocab_size"),
        tied_embeddings=boolean(cfg, "tie_word_embeddings", tied_default), gated_mlp=True,
        activation=choice(cfg, activation_key, "silu", ACTIVATIONS),
        norm="rmsnorm", qkv_bias=bias, out_bias=boolean(cfg, "attention_bias", False),
        mlp_bias=boolean(cfg, "mlp_bias", False), rotary_dim=dim, sliding_window=window,
        max_positions=max_positions(cfg, "max_position_embeddings"),
    )


LOCAL_LAYER_TYPES = ("sliding_attention", "chunked_attention")   # layer_types entries of local layers


def alternating_layer_types(layers: int, every: int, local: str = "sliding_attention") -> list[str]:
    """transformers' default layer_types: layer i (from 0) attends fully when i + 1 is a
    multiple of ``every`` (Gemma 2 and gpt-oss: 2, Gemma 3: sliding_window_pattern 6, Llama 4:
    no_rope_layer_interval 4), locally otherwise."""
    return [local if (i + 1) % every else "full_attention" for i in range(layers)]


def local_attention(cfg: dict, window: int | None, default_types: list[str] | None) -> dict:
    """The Architecture's sliding_window, global_layers and chunked_attention of a model with
    local-attention span ``window``: per layer from ``layer_types`` when the config gives it,
    else ``default_types`` (None: every layer local, as Mistral). No window, or no local layer:
    full attention throughout."""
    types = string_list(cfg, "layer_types") or default_types
    if window is None or types is None:
        return dict(sliding_window=window, global_layers=0, chunked_attention=False)
    layers = required(cfg, "num_hidden_layers")
    if len(types) != layers:
        raise bad("layer_types", f"expected one entry per layer ({layers}, num_hidden_layers), got {len(types)}")
    for t in types:
        if t != "full_attention" and t not in LOCAL_LAYER_TYPES:
            raise bad("layer_types", f"expected full_attention, sliding_attention or chunked_attention, got {t!r}")
    local = {t for t in types if t != "full_attention"}
    if len(local) > 1:
        raise bad("layer_types", "sliding and chunked local layers in one model are not supported")
    if not local:
        return dict(sliding_window=None, global_layers=0, chunked_attention=False)
    return dict(sliding_window=window, global_layers=types.count("full_attention"),
                chunked_attention=local == {"chunked_attention"})
