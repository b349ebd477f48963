"""A Hugging Face ``config.json`` (field names verbatim) normalised to one Architecture: the
one config parser (model specs, raw configs, the harness's models).

Every field the normaliser reads has a strict type and a range: integers are JSON integers in
[1, 2^31 - 1] (counts that may be absent, such as n_shared_experts, in [0, 2^31 - 1]), booleans
are JSON true/false (the string "false" is an error, not true), strings come from a list. Every
problem is a SpecError naming the config field.
"""
from __future__ import annotations

from typing import Any, Callable

from pydantic import ValidationError

from simulator.errors import SpecError
from simulator.specs.base import shown
from simulator.specs.model import MAX_SIZE, MODEL, Architecture

# Hugging Face fields that exist in real configs but do not change the cost of inference.
IGNORED_HF_FIELDS = frozenset({
    "architectures", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
    "transformers_version", "initializer_range", "use_cache", "pretraining_tp", "rms_norm_eps",
    "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "rope_scaling", "attention_dropout",
    "dropout", "hidden_dropout", "attn_pdrop", "embd_pdrop", "resid_pdrop", "activation_dropout",
    "layerdrop", "init_std", "scale_attn_weights", "summary_activation", "summary_first_dropout",
    "summary_proj_to_labels", "summary_type", "summary_use_proj", "task_specific_params",
    "tokenizer_class", "use_sliding_window", "max_window_layers", "prefix", "_name_or_path",
    "_remove_final_layer_norm", "bos_token", "eos_token", "model_type", "max_position_embeddings",
    "n_positions", "n_ctx", "keys_to_ignore_at_inference", "gradient_checkpointing",
    "qkv_bias", "use_return_dict", "use_mrope", "output_attentions", "output_hidden_states",
})



_REQUIRED = object()


class _Missing(KeyError):
    """A required config field is absent (or null)."""


def _bad(key: str, message: str):
    return SpecError(MODEL, key, message)


def _show(value: Any) -> str:
    return shown(value)


def _int(cfg: dict, key: str, default: Any = _REQUIRED, minimum: int = 1, maximum: int = MAX_SIZE):
    """A config integer in [minimum, maximum]; an absent or null field is ``default``
    (KeyError when required). Booleans, floats, strings, lists are rejected."""
    value = cfg.get(key)
    if value is None:
        if default is _REQUIRED:
            raise _Missing(key)
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        what = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f"at least {minimum}"
        raise _bad(key, f"expected a {what} integer, got {_show(value)}")
    if value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise _bad(key, f"expected {kind}, got {value}")
    if value > maximum:
        raise _bad(key, f"expected at most {maximum} (2^31-1), got {value}")
    return value


def _bool(cfg: dict, key: str, default: bool) -> bool:
    """A config boolean: JSON true/false only (the string "false" is not false)."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(key, f"expected true or false (a JSON boolean), got {_show(value)}")
    return value


def _choice(cfg: dict, key: str, default: str, choices: dict[str, str]) -> str:
    """A config string among ``choices`` (a mapping of accepted spellings to canonical names)."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise _bad(key, f"expected one of {', '.join(sorted(choices))}, got {_show(value)}")
    return choices[value]


_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "relu": "relu"}


def _head_dim(cfg: dict, hidden: int, heads: int, heads_key: str, hidden_key: str) -> int:
    """``head_dim`` when the config gives it, else hidden / heads (which must divide)."""
    explicit = _int(cfg, "head_dim", None)
    if explicit is not None:
        return explicit
    if hidden % heads:
        raise _bad(heads_key, f"the {heads} heads must divide {hidden_key} ({hidden}) when head_dim is not given")
    return hidden // heads


def _get(cfg: dict, key: str) -> int:
    """A required positive integer field."""
    return _int(cfg, key)


def _max_positions(cfg: dict, *keys: str) -> int | None:
    for key in keys:
        value = _int(cfg, key, None)
        if value is not None:
            return value
    return None


def _llama_like(cfg: dict, family: str, qkv_bias_default: bool) -> dict:
    hidden = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    head_dim = _head_dim(cfg, hidden, heads, "num_attention_heads", "hidden_size")
    window = _int(cfg, "sliding_window", None) if _bool(cfg, "use_sliding_window", True) else None
    bias = _bool(cfg, "attention_bias", qkv_bias_default)
    return dict(
        family=family, hidden_size=hidden, num_layers=_get(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=_int(cfg, "num_key_value_heads", heads), head_dim=head_dim,
        ffn_size=_get(cfg, "intermediate_size"), vocab_size=_get(cfg, "vocab_size"),
        tied_embeddings=_bool(cfg, "tie_word_embeddings", False), gated_mlp=True,
        activation=_choice(cfg, "hidden_act", "silu", _ACTIVATIONS),
        norm="rmsnorm", qkv_bias=bias, out_bias=_bool(cfg, "attention_bias", False),
        mlp_bias=_bool(cfg, "mlp_bias", False), rotary_dim=head_dim, sliding_window=window,
        max_positions=_max_positions(cfg, "max_position_embeddings"),
    )


def _gptj(cfg: dict) -> dict:
    hidden = _get(cfg, "n_embd")
    heads = _get(cfg, "n_head")
    if hidden % heads:
        raise _bad("n_head", f"the {heads} heads must divide n_embd ({hidden})")
    return dict(
        family="gptj", hidden_size=hidden, num_layers=_get(cfg, "n_layer"), num_heads=heads,
        num_kv_heads=heads, head_dim=hidden // heads, ffn_size=_int(cfg, "n_inner", None) or 4 * hidden,
        vocab_size=_get(cfg, "vocab_size"), tied_embeddings=_bool(cfg, "tie_word_embeddings", False),
        gated_mlp=False, activation="gelu", norm="layernorm", mlp_bias=True, lm_head_bias=True,
        rotary_dim=_int(cfg, "rotary_dim", None) or hidden // heads, parallel_block=True,
        max_positions=_max_positions(cfg, "n_positions", "n_ctx", "max_position_embeddings"),
    )


def _opt(cfg: dict) -> dict:
    hidden = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    if _int(cfg, "word_embed_proj_dim", hidden) != hidden:
        raise _bad("word_embed_proj_dim", "only OPT models with word_embed_proj_dim == hidden_size are supported")
    if hidden % heads:
        raise _bad("num_attention_heads", f"the {heads} heads must divide hidden_size ({hidden})")
    bias = _bool(cfg, "enable_bias", True)
    positions = _get(cfg, "max_position_embeddings")
    return dict(
        family="opt", hidden_size=hidden, num_layers=_get(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=hidden // heads, ffn_size=_get(cfg, "ffn_dim"),
        vocab_size=_get(cfg, "vocab_size"), tied_embeddings=_bool(cfg, "tie_word_embeddings", True),
        gated_mlp=False, activation=_choice(cfg, "activation_function", "relu", _ACTIVATIONS), norm="layernorm",
        qkv_bias=bias, out_bias=bias, mlp_bias=bias, positions="learned", rotary_dim=0,
        learned_positions=positions + 2, max_positions=positions,  # OPT offsets positions by 2
    )


def _mixtral(cfg: dict) -> dict:
    base = _llama_like(cfg, "mixtral", False)
    return {**base, "num_experts": _get(cfg, "num_local_experts"), "experts_per_token": _get(cfg, "num_experts_per_tok"),
            "expert_ffn_size": base["ffn_size"]}


def _qwen_moe(cfg: dict, family: str) -> dict:
    cfg = {**cfg, "intermediate_size": cfg.get("intermediate_size") or cfg.get("moe_intermediate_size")}
    base = _llama_like(cfg, family, family == "qwen2_moe")
    shared = _int(cfg, "shared_expert_intermediate_size", 0, minimum=0)
    only = cfg.get("mlp_only_layers")
    if only is not None and not isinstance(only, list):
        raise _bad("mlp_only_layers", f"expected a list of layer indices, got {_show(only)}")
    if only:
        raise _bad("mlp_only_layers", "only models whose every layer is MoE are supported (an empty list)")
    return {**base, "num_experts": _get(cfg, "num_experts"), "experts_per_token": _get(cfg, "num_experts_per_tok"),
            "expert_ffn_size": _get(cfg, "moe_intermediate_size"), "shared_ffn_size": shared,
            "shared_expert_gate": bool(shared), "moe_every": _int(cfg, "decoder_sparse_step", 1),
            "qk_norm": family == "qwen3_moe"}


def _qwen3(cfg: dict) -> dict:
    return {**_llama_like(cfg, "qwen3", False), "qk_norm": True}


def _deepseek_v3(cfg: dict) -> dict:
    hidden = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    rope, nope, v = _get(cfg, "qk_rope_head_dim"), _get(cfg, "qk_nope_head_dim"), _get(cfg, "v_head_dim")
    expert_ffn = _get(cfg, "moe_intermediate_size")
    shared = _int(cfg, "n_shared_experts", 0, minimum=0)
    if shared * expert_ffn > MAX_SIZE:
        raise _bad("n_shared_experts", "n_shared_experts x moe_intermediate_size must be at most 2^31-1")
    return dict(
        family="deepseek_v3", hidden_size=hidden, num_layers=_get(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=nope + rope, ffn_size=_get(cfg, "intermediate_size"),
        vocab_size=_get(cfg, "vocab_size"), tied_embeddings=_bool(cfg, "tie_word_embeddings", False),
        gated_mlp=True, activation=_choice(cfg, "hidden_act", "silu", {"silu": "silu", "swish": "silu"}),
        norm="rmsnorm", rotary_dim=rope,
        num_experts=_get(cfg, "n_routed_experts"), experts_per_token=_get(cfg, "num_experts_per_tok"),
        expert_ffn_size=expert_ffn, shared_ffn_size=shared * expert_ffn,
        dense_layers=_int(cfg, "first_k_dense_replace", 0, minimum=0), moe_every=_int(cfg, "moe_layer_freq", 1),
        q_lora_rank=_int(cfg, "q_lora_rank", 0, minimum=0), kv_lora_rank=_get(cfg, "kv_lora_rank"),
        qk_rope_head_dim=rope, qk_nope_head_dim=nope, v_head_dim=v,
        max_positions=_max_positions(cfg, "max_position_embeddings"),
    )


# model_type -> (normaliser, config fields it reads)
_LLAMA_FIELDS = {"hidden_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads",
                 "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "hidden_act",
                 "attention_bias", "mlp_bias", "sliding_window"}
_QWEN_MOE_FIELDS = {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                    "decoder_sparse_step", "mlp_only_layers", "norm_topk_prob", "router_aux_loss_coef",
                    "output_router_logits"}
FAMILIES: dict[str, tuple[Callable[[dict], dict], frozenset]] = {
    "llama": (lambda c: _llama_like(c, "llama", False), frozenset(_LLAMA_FIELDS)),
    "mistral": (lambda c: _llama_like(c, "mistral", False), frozenset(_LLAMA_FIELDS)),
    "qwen2": (lambda c: _llama_like(c, "qwen2", True), frozenset(_LLAMA_FIELDS)),
    "gptj": (_gptj, frozenset({"n_embd", "n_head", "n_layer", "n_inner", "rotary_dim", "vocab_size",
                               "tie_word_embeddings", "activation_function", "rotary"})),
    "mixtral": (_mixtral, frozenset(_LLAMA_FIELDS | {"num_local_experts", "num_experts_per_tok",
                                                     "router_aux_loss_coef", "output_router_logits"})),
    "qwen3": (_qwen3, frozenset(_LLAMA_FIELDS)),
    "qwen2_moe": (lambda c: _qwen_moe(c, "qwen2_moe"), frozenset(_LLAMA_FIELDS | _QWEN_MOE_FIELDS)),
    "qwen3_moe": (lambda c: _qwen_moe(c, "qwen3_moe"), frozenset(_LLAMA_FIELDS | _QWEN_MOE_FIELDS)),
    "deepseek_v3": (_deepseek_v3, frozenset({
        "hidden_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "intermediate_size",
        "vocab_size", "tie_word_embeddings", "hidden_act", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
        "q_lora_rank", "kv_lora_rank", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
        "moe_intermediate_size", "first_k_dense_replace", "moe_layer_freq", "n_group", "topk_group",
        "topk_method", "scoring_func", "norm_topk_prob", "routed_scaling_factor", "num_nextn_predict_layers",
        "ep_size", "aux_loss_alpha", "seq_aux", "attention_bias", "quantization_config"})),
    "opt": (_opt, frozenset({"hidden_size", "num_attention_heads", "num_hidden_layers", "ffn_dim",
                             "vocab_size", "tie_word_embeddings", "activation_function",
                             "word_embed_proj_dim", "do_layer_norm_before", "enable_bias",
                             "layer_norm_elementwise_affine"})),
}


def _model_type(config: dict) -> str:
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise _bad("model_type", f"expected one of {', '.join(sorted(FAMILIES))}, got {_show(model_type)}")
    return model_type


def unknown_fields(config: dict) -> list[str]:
    """Config fields that neither the model's family reads nor are known to be irrelevant."""
    model_type = config.get("model_type")
    family = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    used = family[1] if family else frozenset()
    return sorted(str(k) for k in config if k not in used and k not in IGNORED_HF_FIELDS)


# Architecture field -> the config field it comes from, per family (for error messages)
_HF_NAMES = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
             "num_kv_heads": "num_key_value_heads", "ffn_size": "intermediate_size",
             "experts_per_token": "num_experts_per_tok", "expert_ffn_size": "moe_intermediate_size",
             "dense_layers": "first_k_dense_replace", "moe_every": "decoder_sparse_step",
             "shared_ffn_size": "shared_expert_intermediate_size", "max_positions": "max_position_embeddings",
             "sliding_window": "sliding_window", "num_experts": "num_experts"}
_FAMILY_NAMES = {
    "gptj": {"hidden_size": "n_embd", "num_layers": "n_layer", "num_heads": "n_head", "num_kv_heads": "n_head",
             "ffn_size": "n_inner", "max_positions": "n_positions"},
    "opt": {"ffn_size": "ffn_dim", "learned_positions": "max_position_embeddings"},
    "mixtral": {"num_experts": "num_local_experts", "expert_ffn_size": "intermediate_size"},
    "deepseek_v3": {"num_experts": "n_routed_experts", "moe_every": "moe_layer_freq",
                    "shared_ffn_size": "n_shared_experts", "num_kv_heads": "num_attention_heads",
                    "head_dim": "qk_nope_head_dim"},
}


def config_field(family: str, field: str) -> str:
    """The Hugging Face config field an Architecture field comes from."""
    return _FAMILY_NAMES.get(family, {}).get(field) or _HF_NAMES.get(field, field)


def normalise(config: dict, path: str = MODEL, prefix: str = "") -> Architecture:
    """Hugging Face config dict -> Architecture. Raises SpecError(path, prefix + config field,
    what was expected) for a missing, mistyped, out-of-range or inconsistent field."""
    def error(field: str, message: str) -> SpecError:
        return SpecError(path, f"{prefix}{field}", message)

    if not isinstance(config, dict):
        raise error("", "expected a mapping of Hugging Face config fields")
    try:
        model_type = _model_type(config)
        fields = FAMILIES[model_type][0](config)
        return Architecture(**fields)
    except _Missing as exc:
        raise error(exc.args[0], "required field is missing") from None
    except SpecError as exc:
        family = config.get("model_type")
        field = exc.field if exc.path == MODEL and exc.field in config else config_field(str(family), exc.field)
        raise error(field, exc.message) from None
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        field = config_field(str(config.get("model_type")), ".".join(str(p) for p in e["loc"]))
        raise error(field, e["msg"].removeprefix("Value error, ").lower()) from None
