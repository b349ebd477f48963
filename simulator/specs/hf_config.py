"""A Hugging Face ``config.json`` (field names verbatim) normalised to one Architecture: the
one config parser (model specs, raw configs, the harness's models).

Every field the normaliser reads has a strict type and a range: integers are JSON integers in
[1, 2^31 - 1] (counts that may be absent, such as n_shared_experts, in [0, 2^31 - 1]), booleans
are JSON true/false (the string "false" is an error, not true), strings come from a list. Every
problem is a SpecError naming the config field. The typed readers live in hf_fields.py, the
families beyond this core in hf_families.py, quantization_config in hf_quant.py.
"""
from __future__ import annotations

import difflib
from typing import Callable

from pydantic import ValidationError

from simulator.errors import SpecError
from simulator.specs.base import shown
from simulator.specs.hf_families import NEW_FAMILIES, NEW_FIELD_NAMES, TEXT_WRAPPERS
from simulator.specs.hf_fields import (ACTIVATIONS, LLAMA_FIELDS, Missing, bad, boolean, choice, integer,
                                       llama_like, max_positions, required)
from simulator.specs.hf_quant import weight_format
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


def _gptj(cfg: dict) -> dict:
    hidden = required(cfg, "n_embd")
    heads = required(cfg, "n_head")
    if hidden % heads:
        raise bad("n_head", f"the {heads} heads must divide n_embd ({hidden})")
    return dict(
        family="gptj", hidden_size=hidden, num_layers=required(cfg, "n_layer"), num_heads=heads,
        num_kv_heads=heads, head_dim=hidden // heads, ffn_size=integer(cfg, "n_inner", None) or 4 * hidden,
        vocab_size=required(cfg, "vocab_size"), tied_embeddings=boolean(cfg, "tie_word_embeddings", False),
        gated_mlp=False, activation="gelu", norm="layernorm", mlp_bias=True, lm_head_bias=True,
        rotary_dim=integer(cfg, "rotary_dim", None) or hidden // heads, parallel_block=True,
        max_positions=max_positions(cfg, "n_positions", "n_ctx", "max_position_embeddings"),
    )


def _opt(cfg: dict) -> dict:
    hidden = required(cfg, "hidden_size")
    heads = required(cfg, "num_attention_heads")
    if integer(cfg, "word_embed_proj_dim", hidden) != hidden:
        raise bad("word_embed_proj_dim", "only OPT models with word_embed_proj_dim == hidden_size are supported")
    if hidden % heads:
        raise bad("num_attention_heads", f"the {heads} heads must divide hidden_size ({hidden})")
    bias = boolean(cfg, "enable_bias", True)
    positions = required(cfg, "max_position_embeddings")
    return dict(
        family="opt", hidden_size=hidden, num_layers=required(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=hidden // heads, ffn_size=required(cfg, "ffn_dim"),
        vocab_size=required(cfg, "vocab_size"), tied_embeddings=boolean(cfg, "tie_word_embeddings", True),
        gated_mlp=False, activation=choice(cfg, "activation_function", "relu", ACTIVATIONS), norm="layernorm",
        qkv_bias=bias, out_bias=bias, mlp_bias=bias, positions="learned", rotary_dim=0,
        learned_positions=positions + 2, max_positions=positions,  # OPT offsets positions by 2
    )


def _mixtral(cfg: dict) -> dict:
    base = llama_like(cfg, "mixtral", False)
    return {**base, "num_experts": required(cfg, "num_local_experts"), "experts_per_token": required(cfg, "num_experts_per_tok"),
            "expert_ffn_size": base["ffn_size"]}


def _qwen_moe(cfg: dict, family: str) -> dict:
    cfg = {**cfg, "intermediate_size": cfg.get("intermediate_size") or cfg.get("moe_intermediate_size")}
    base = llama_like(cfg, family, family == "qwen2_moe")
    shared = integer(cfg, "shared_expert_intermediate_size", 0, minimum=0)
    only = cfg.get("mlp_only_layers")
    if only is not None and not isinstance(only, list):
        raise bad("mlp_only_layers", f"expected a list of layer indices, got {shown(only)}")
    if only:
        raise bad("mlp_only_layers", "only models whose every layer is MoE are supported (an empty list)")
    return {**base, "num_experts": required(cfg, "num_experts"), "experts_per_token": required(cfg, "num_experts_per_tok"),
            "expert_ffn_size": required(cfg, "moe_intermediate_size"), "shared_ffn_size": shared,
            "shared_expert_gate": bool(shared), "moe_every": integer(cfg, "decoder_sparse_step", 1),
            "qk_norm": family == "qwen3_moe"}


def _qwen3(cfg: dict) -> dict:
    return {**llama_like(cfg, "qwen3", False), "qk_norm": True}


def _deepseek(cfg: dict, family: str) -> dict:
    """DeepSeek-V2 and V3: multi-head latent attention, routed and shared experts, dense first layers."""
    hidden = required(cfg, "hidden_size")
    heads = required(cfg, "num_attention_heads")
    rope, nope, v = required(cfg, "qk_rope_head_dim"), required(cfg, "qk_nope_head_dim"), required(cfg, "v_head_dim")
    expert_ffn = required(cfg, "moe_intermediate_size")
    shared = integer(cfg, "n_shared_experts", 0, minimum=0)
    if shared * expert_ffn > MAX_SIZE:
        raise bad("n_shared_experts", "n_shared_experts x moe_intermediate_size must be at most 2^31-1")
    return dict(
        family=family, hidden_size=hidden, num_layers=required(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=nope + rope, ffn_size=required(cfg, "intermediate_size"),
        vocab_size=required(cfg, "vocab_size"), tied_embeddings=boolean(cfg, "tie_word_embeddings", False),
        gated_mlp=True, activation=choice(cfg, "hidden_act", "silu", {"silu": "silu", "swish": "silu"}),
        norm="rmsnorm", rotary_dim=rope,
        num_experts=required(cfg, "n_routed_experts"), experts_per_token=required(cfg, "num_experts_per_tok"),
        expert_ffn_size=expert_ffn, shared_ffn_size=shared * expert_ffn,
        dense_layers=integer(cfg, "first_k_dense_replace", 0, minimum=0), moe_every=integer(cfg, "moe_layer_freq", 1),
        q_lora_rank=integer(cfg, "q_lora_rank", 0, minimum=0), kv_lora_rank=required(cfg, "kv_lora_rank"),
        qk_rope_head_dim=rope, qk_nope_head_dim=nope, v_head_dim=v,
        max_positions=max_positions(cfg, "max_position_embeddings"),
    )


# model_type -> (normaliser, config fields it reads)
_QWEN_MOE_FIELDS = {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                    "decoder_sparse_step", "mlp_only_layers", "norm_topk_prob", "router_aux_loss_coef",
                    "output_router_logits"}
_DEEPSEEK_FIELDS = frozenset({
    "hidden_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "intermediate_size",
    "vocab_size", "tie_word_embeddings", "hidden_act", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
    "q_lora_rank", "kv_lora_rank", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "moe_intermediate_size", "first_k_dense_replace", "moe_layer_freq", "n_group", "topk_group",
    "topk_method", "scoring_func", "norm_topk_prob", "routed_scaling_factor", "num_nextn_predict_layers",
    "ep_size", "aux_loss_alpha", "seq_aux", "attention_bias", "quantization_config"})
FAMILIES: dict[str, tuple[Callable[[dict], dict], frozenset]] = {
    "llama": (lambda c: llama_like(c, "llama", False), LLAMA_FIELDS),
    "mistral": (lambda c: llama_like(c, "mistral", False), LLAMA_FIELDS),
    "qwen2": (lambda c: llama_like(c, "qwen2", True), LLAMA_FIELDS),
    "gptj": (_gptj, frozenset({"n_embd", "n_head", "n_layer", "n_inner", "rotary_dim", "vocab_size",
                               "tie_word_embeddings", "activation_function", "rotary"})),
    "mixtral": (_mixtral, frozenset(LLAMA_FIELDS | {"num_local_experts", "num_experts_per_tok",
                                                     "router_aux_loss_coef", "output_router_logits"})),
    "qwen3": (_qwen3, LLAMA_FIELDS),
    "qwen2_moe": (lambda c: _qwen_moe(c, "qwen2_moe"), frozenset(LLAMA_FIELDS | _QWEN_MOE_FIELDS)),
    "qwen3_moe": (lambda c: _qwen_moe(c, "qwen3_moe"), frozenset(LLAMA_FIELDS | _QWEN_MOE_FIELDS)),
    "deepseek_v3": (lambda c: _deepseek(c, "deepseek_v3"), _DEEPSEEK_FIELDS),
    "deepseek_v2": (lambda c: _deepseek(c, "deepseek_v2"), _DEEPSEEK_FIELDS),
    "opt": (_opt, frozenset({"hidden_size", "num_attention_heads", "num_hidden_layers", "ffn_dim",
                             "vocab_size", "tie_word_embeddings", "activation_function",
                             "word_embed_proj_dim", "do_layer_norm_before", "enable_bias",
                             "layer_norm_elementwise_affine"})),
    **NEW_FAMILIES,
}
# model types of other architectures -> the supported family closest to them (for the error message)
NEAREST = {"phi": "phi3", "phimoe": "mixtral", "gemma": "gemma2", "olmo": "olmo2", "olmoe": "qwen3_moe",
           "mllama": "llama", "qwen2_vl": "qwen2", "qwen2_5_vl": "qwen2", "qwen3_next": "qwen3_moe",
           "starcoder2": "gpt_neox", "gpt_bigcode": "gpt2", "bloom": "falcon", "mpt": "gpt_neox",
           "stablelm": "gpt_neox", "cohere": "llama", "granite": "llama", "deepseek": "llama"}


def nearest_family(model_type: str) -> str:
    """The supported family closest to an unknown model_type: a known kinship, a shared prefix, else spelling."""
    if model_type in NEAREST:
        return NEAREST[model_type]
    prefixed = [f for f in FAMILIES if model_type.startswith(f) or f.startswith(model_type)]
    if prefixed:
        return max(prefixed, key=len)
    return (difflib.get_close_matches(model_type, list(FAMILIES), n=1, cutoff=0.0) or ["llama"])[0]


def _model_type(config: dict) -> str:
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type not in FAMILIES:
        raise bad("model_type", f"{shown(model_type)} is not a supported family; the nearest is "
                                f"{nearest_family(model_type)} (supported: {', '.join(sorted({*FAMILIES, *TEXT_WRAPPERS}))})")
    if not isinstance(model_type, str):
        raise bad("model_type", f"expected one of {', '.join(sorted(FAMILIES))}, got {shown(model_type)}")
    return model_type


def text_model(config: dict) -> tuple[dict, str]:
    """(the config of the text decoder, the field prefix it sits under): a multimodal wrapper
    (Gemma 3, Llama 4) holds it in text_config, as a diff against the text config class's
    defaults (hf_families.TEXT_WRAPPERS; its vision tower is not costed), and its
    quantization_config at the top level."""
    model_type = config.get("model_type")
    wrapper = TEXT_WRAPPERS.get(model_type) if isinstance(model_type, str) else None
    if wrapper is None:
        return config, ""
    key, text_type, defaults = wrapper
    text = config.get(key)
    if not isinstance(text, dict):
        raise bad(key, f"expected the text model's config (a mapping), got {shown(text)}")
    merged = {"model_type": text_type, **defaults, **text}
    if "quantization_config" in config:
        merged.setdefault("quantization_config", config["quantization_config"])
    return merged, f"{key}."


def unknown_fields(config: dict) -> list[str]:
    """Config fields that neither the model's family reads nor are known to be irrelevant."""
    model_type = config.get("model_type")
    wrapper = TEXT_WRAPPERS.get(model_type) if isinstance(model_type, str) else None
    if wrapper and isinstance(config.get(wrapper[0]), dict):
        text, prefix = text_model(config)
        return [prefix + k for k in unknown_fields(text)]
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
    **NEW_FIELD_NAMES,
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
        config, inner = text_model(config)
        prefix += inner
        model_type = _model_type(config)
        fields = FAMILIES[model_type][0](config)
        if config.get("quantization_config") is not None:
            fields["quantized_weights"] = weight_format(config["quantization_config"])
        return Architecture(**fields)
    except Missing as exc:
        raise error(exc.args[0], "required field is missing") from None
    except SpecError as exc:
        family = config.get("model_type")
        field = exc.field if exc.path == MODEL and exc.field in config else config_field(str(family), exc.field)
        raise error(field, exc.message) from None
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        field = config_field(str(config.get("model_type")), ".".join(str(p) for p in e["loc"]))
        raise error(field, e["msg"].removeprefix("Value error, ").lower()) from None
