"""Normalisers of the Hugging Face families beyond the Llama/Qwen/Mixtral/DeepSeek-V3 core
(specs/hf_config.py): each reads its family's config.json fields verbatim and returns the
Architecture's fields. Sources: transformers' configuration_<family>.py and modeling_<family>.py.

Modelling choices that hold for several families:
- A model that mixes sliding-window (or chunked) layers with full-attention layers (Gemma 2/3,
  gpt-oss, Llama 4) reads them from layer_types, else from the family's default pattern
  (hf_fields.local_attention): local layers attend over the window, the others fully.
- OLMo 2 norms the attention and MLP outputs instead of their inputs: the same two norms of
  hidden_size per layer, so it is costed as the pre-norm graph.
- Gemma's attention-logit and final-logit soft-capping (a tanh per score) is below 0.5% of the
  attention FLOPs (head_dim 256: ~1,030 FLOPs per query-key pair and head) and is not costed.
"""
from __future__ import annotations

from typing import Callable

from simulator.specs.hf_fields import (ACTIVATIONS, LLAMA_FIELDS, alternating_layer_types, bad, boolean, choice,
                                       first_integer, fraction, integer, llama_like, local_attention, max_positions,
                                       required)


def _phi3(cfg: dict) -> dict:
    """Phi-3 / Phi-4: Llama-shaped (fused qkv_proj and gate_up_proj cost the same); partial rotary."""
    base = llama_like(cfg, "phi3", False)
    return {**base, "rotary_dim": int(base["head_dim"] * fraction(cfg, "partial_rotary_factor", 1.0))}


def _gemma(cfg: dict, family: str) -> dict:
    """Gemma 2 and Gemma 3 text: tied embeddings, GELU-tanh gated MLP, a norm before and after
    attention and the MLP; Gemma 3 adds per-head q/k norms. Sliding-window and global layers
    alternate (Gemma 2), or one global in sliding_window_pattern (Gemma 3, default 6)."""
    base = llama_like(cfg, family, False, tied_default=True, activation_key="hidden_activation")
    if cfg.get("hidden_activation") is None:
        base["activation"] = choice(cfg, "hidden_act", "gelu", ACTIVATIONS)
    every = 2 if family == "gemma2" else integer(cfg, "sliding_window_pattern", 6)
    pattern = alternating_layer_types(required(cfg, "num_hidden_layers"), every)
    return {**base, "sandwich_norm": True, "qk_norm": family == "gemma3_text",
            **local_attention(cfg, integer(cfg, "sliding_window", None), pattern)}


def _olmo2(cfg: dict) -> dict:
    """OLMo 2: RMSNorm over the whole q and k projections (q_dim and kv_dim weights)."""
    return {**llama_like(cfg, "olmo2", False), "qk_norm": True, "qk_norm_per_head": False}


def _falcon(cfg: dict) -> dict:
    """Falcon: LayerNorm, GELU MLP of ffn_hidden_size (4 x hidden), rotary, tied head.
    Old decoder (7B): multi-query (one KV head) when multi_query, attention and MLP in parallel
    off one norm. New decoder (40B, 180B): num_kv_heads KV heads, parallel, with
    num_ln_in_parallel_attn norms (2: the MLP has its own)."""
    if boolean(cfg, "alibi", False):
        raise bad("alibi", "ALiBi position biases (Falcon-RW) are not supported; Falcon 7B/40B/180B use rotary (false)")
    hidden = required(cfg, "hidden_size")
    heads = first_integer(cfg, "n_head", "num_attention_heads")
    if hidden % heads:
        raise bad("num_attention_heads", f"the {heads} heads must divide hidden_size ({hidden})")
    new = boolean(cfg, "new_decoder_architecture", cfg.get("model_type") == "RefinedWeb")
    if new:
        kv_heads = first_integer(cfg, "n_head_kv", "num_kv_heads", default=heads)
    else:
        kv_heads = 1 if boolean(cfg, "multi_query", True) else heads
    parallel = new or boolean(cfg, "parallel_attn", True)
    norms = integer(cfg, "num_ln_in_parallel_attn", 2 if new else 1)
    if norms > 2:
        raise bad("num_ln_in_parallel_attn", f"expected 1 or 2, got {norms}")
    bias = boolean(cfg, "bias", False)
    return dict(
        family="falcon", hidden_size=hidden, num_layers=first_integer(cfg, "n_layer", "num_hidden_layers"),
        num_heads=heads, num_kv_heads=kv_heads, head_dim=hidden // heads,
        ffn_size=integer(cfg, "ffn_hidden_size", None) or 4 * hidden, vocab_size=required(cfg, "vocab_size"),
        tied_embeddings=boolean(cfg, "tie_word_embeddings", True), gated_mlp=False,
        activation=choice(cfg, "activation", "gelu", ACTIVATIONS), norm="layernorm",
        qkv_bias=bias, out_bias=bias, mlp_bias=bias, rotary_dim=hidden // heads,
        parallel_block=parallel, parallel_mlp_norm=parallel and norms == 2,
        max_positions=max_positions(cfg, "max_position_embeddings"),
    )


def _gpt2(cfg: dict) -> dict:
    """GPT-2: learned positions (n_positions rows), LayerNorm, biased Conv1D projections, GELU
    MLP of n_inner (4 x n_embd), tied head without bias."""
    hidden = required(cfg, "n_embd")
    heads = required(cfg, "n_head")
    if hidden % heads:
        raise bad("n_head", f"the {heads} heads must divide n_embd ({hidden})")
    positions = integer(cfg, "n_positions", None) or integer(cfg, "n_ctx", 1024)
    return dict(
        family="gpt2", hidden_size=hidden, num_layers=required(cfg, "n_layer"), num_heads=heads, num_kv_heads=heads,
        head_dim=hidden // heads, ffn_size=integer(cfg, "n_inner", None) or 4 * hidden,
        vocab_size=required(cfg, "vocab_size"), tied_embeddings=boolean(cfg, "tie_word_embeddings", True),
        gated_mlp=False, activation=choice(cfg, "activation_function", "gelu", ACTIVATIONS), norm="layernorm",
        qkv_bias=True, out_bias=True, mlp_bias=True, positions="learned", rotary_dim=0,
        learned_positions=positions, max_positions=positions,
    )


def _gpt_neox(cfg: dict) -> dict:
    """GPT-NeoX / Pythia: LayerNorm, rotary over rotary_pct of each head, biased projections,
    GELU MLP; use_parallel_residual: attention and MLP in parallel, each with its own norm."""
    hidden = required(cfg, "hidden_size")
    heads = required(cfg, "num_attention_heads")
    if hidden % heads:
        raise bad("num_attention_heads", f"the {heads} heads must divide hidden_size ({hidden})")
    head = hidden // heads
    bias = boolean(cfg, "attention_bias", True)
    parallel = boolean(cfg, "use_parallel_residual", True)
    return dict(
        family="gpt_neox", hidden_size=hidden, num_layers=required(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=head, ffn_size=required(cfg, "intermediate_size"),
        vocab_size=required(cfg, "vocab_size"), tied_embeddings=boolean(cfg, "tie_word_embeddings", False),
        gated_mlp=False, activation=choice(cfg, "hidden_act", "gelu", ACTIVATIONS), norm="layernorm",
        qkv_bias=bias, out_bias=bias, mlp_bias=True, rotary_dim=int(head * fraction(cfg, "rotary_pct", 0.25)),
        parallel_block=parallel, parallel_mlp_norm=parallel,
        max_positions=max_positions(cfg, "max_position_embeddings"),
    )


def _gpt_oss(cfg: dict) -> dict:
    """gpt-oss: every layer a mixture of num_local_experts SwiGLU experts (biased, intermediate_size
    each) with a biased router; attention with biases and one learned sink per head, alternating
    sliding-window and full layers (layer_types)."""
    base = llama_like({**cfg, "attention_bias": boolean(cfg, "attention_bias", True)}, "gpt_oss", True)
    pattern = alternating_layer_types(required(cfg, "num_hidden_layers"), 2)
    return {**base, "out_bias": base["qkv_bias"], **local_attention(cfg, integer(cfg, "sliding_window", None), pattern),
            "num_experts": required(cfg, "num_local_experts"),
            "experts_per_token": first_integer(cfg, "experts_per_token", "num_experts_per_tok"),
            "expert_ffn_size": base["ffn_size"], "attention_sinks": True, "router_bias": True, "expert_bias": True}


def _llama4_text(cfg: dict) -> dict:
    """Llama 4 text: a MoE layer every interleave_moe_layer_step layers (num_local_experts experts
    of intermediate_size, top-k, plus one shared expert of intermediate_size), the others a dense
    MLP of intermediate_size_mlp; its q/k L2 norm has no weights. Rotary layers attend within
    chunks of attention_chunk_size (default 8192), the NoPE ones (no_rope_layers entry 0, by
    default every no_rope_layer_interval-th layer) over the full context."""
    base = llama_like(cfg, "llama4_text", False)
    layers = required(cfg, "num_hidden_layers")
    no_rope = cfg.get("no_rope_layers") or None
    if no_rope is not None and (not isinstance(no_rope, list) or len(no_rope) != layers
                                or any(v not in (0, 1) or isinstance(v, bool) for v in no_rope)):
        raise bad("no_rope_layers", f"expected a list of {layers} entries 0 (NoPE) or 1 (rotary)")
    pattern = (["chunked_attention" if v else "full_attention" for v in no_rope] if no_rope else
               alternating_layer_types(layers, integer(cfg, "no_rope_layer_interval", 4), "chunked_attention"))
    if cfg.get("moe_layers") is not None:
        raise bad("moe_layers", "an explicit list of MoE layers is not supported; use interleave_moe_layer_step")
    expert = base["ffn_size"]
    return {**base, "ffn_size": integer(cfg, "intermediate_size_mlp", expert),
            "num_experts": required(cfg, "num_local_experts"), "experts_per_token": required(cfg, "num_experts_per_tok"),
            "expert_ffn_size": expert, "shared_ffn_size": expert,
            "moe_every": integer(cfg, "interleave_moe_layer_step", 1),
            **local_attention(cfg, integer(cfg, "attention_chunk_size", 8192), pattern)}


_GEMMA_FIELDS = LLAMA_FIELDS | {"hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping",
                                "final_logit_softcapping", "cache_implementation", "layer_types",
                                "sliding_window_pattern", "rope_local_base_freq", "final_logit_softcap"}
_FALCON_FIELDS = frozenset({"hidden_size", "n_head", "num_attention_heads", "n_layer", "num_hidden_layers",
                            "n_head_kv", "num_kv_heads", "multi_query", "new_decoder_architecture", "parallel_attn",
                            "num_ln_in_parallel_attn", "bias", "alibi", "ffn_hidden_size", "activation",
                            "vocab_size", "tie_word_embeddings", "apply_residual_connection_post_layernorm",
                            "quantization_config", "auto_map"})
_MOE_ROUTER_FIELDS = {"num_local_experts", "num_experts_per_tok", "experts_per_token", "router_aux_loss_coef",
                      "output_router_logits", "router_jitter_noise"}

# model_type -> (normaliser, config fields it reads)
NEW_FAMILIES: dict[str, tuple[Callable[[dict], dict], frozenset]] = {
    "phi3": (_phi3, LLAMA_FIELDS | {"partial_rotary_factor", "original_max_position_embeddings"}),
    "gemma2": (lambda c: _gemma(c, "gemma2"), _GEMMA_FIELDS),
    "gemma3_text": (lambda c: _gemma(c, "gemma3_text"), _GEMMA_FIELDS),
    "olmo2": (_olmo2, LLAMA_FIELDS),
    "falcon": (_falcon, _FALCON_FIELDS),
    "RefinedWebModel": (_falcon, _FALCON_FIELDS),
    "RefinedWeb": (_falcon, _FALCON_FIELDS),
    "gpt2": (_gpt2, frozenset({"n_embd", "n_head", "n_layer", "n_positions", "n_ctx", "n_inner", "vocab_size",
                               "activation_function", "tie_word_embeddings", "scale_attn_by_inverse_layer_idx",
                               "reorder_and_upcast_attn", "quantization_config"})),
    "gpt_neox": (_gpt_neox, frozenset({"hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
                                       "rotary_pct", "rotary_emb_base", "use_parallel_residual", "attention_bias",
                                       "vocab_size", "tie_word_embeddings", "hidden_act", "classifier_dropout",
                                       "quantization_config"})),
    "gpt_oss": (_gpt_oss, LLAMA_FIELDS | _MOE_ROUTER_FIELDS | {"layer_types", "swiglu_limit",
                                                               "initial_context_length"}),
    "llama4_text": (_llama4_text, LLAMA_FIELDS | _MOE_ROUTER_FIELDS | {
        "intermediate_size_mlp", "interleave_moe_layer_step", "moe_layers", "no_rope_layers", "use_qk_norm",
        "attention_chunk_size", "attn_temperature_tuning", "floor_scale", "attn_scale", "for_llm_compressor",
        "layer_types", "no_rope_layer_interval"}),
}

# A wrapper's config.json holds its text_config as a diff against the text config class's
# defaults (transformers writes sub-configs that way), so those defaults fill the gaps.
# Gemma3TextConfig.__init__ (transformers models/gemma3/configuration_gemma3.py):
_GEMMA3_TEXT_DEFAULTS = {"vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216,
                         "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
                         "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
                         "max_position_embeddings": 131_072, "tie_word_embeddings": True, "sliding_window": 4096,
                         "sliding_window_pattern": 6}
# multimodal wrappers whose text model is a family above:
# model_type -> (sub-config field, its model_type, the defaults it is written against)
TEXT_WRAPPERS = {"gemma3": ("text_config", "gemma3_text", _GEMMA3_TEXT_DEFAULTS),
                 "llama4": ("text_config", "llama4_text", {})}

# Architecture field -> config field, per new family (error messages)
NEW_FIELD_NAMES = {
    "falcon": {"num_layers": "num_hidden_layers", "num_kv_heads": "num_kv_heads", "ffn_size": "ffn_hidden_size"},
    "gpt2": {"hidden_size": "n_embd", "num_layers": "n_layer", "num_heads": "n_head", "num_kv_heads": "n_head",
             "ffn_size": "n_inner", "learned_positions": "n_positions", "max_positions": "n_positions"},
    "gpt_oss": {"num_experts": "num_local_experts", "expert_ffn_size": "intermediate_size"},
    "llama4_text": {"num_experts": "num_local_experts", "expert_ffn_size": "intermediate_size",
                    "ffn_size": "intermediate_size_mlp", "moe_every": "interleave_moe_layer_step"},
    "deepseek_v2": {"num_experts": "n_routed_experts", "moe_every": "moe_layer_freq",
                    "shared_ffn_size": "n_shared_experts", "num_kv_heads": "num_attention_heads",
                    "head_dim": "qk_nope_head_dim"},
}
