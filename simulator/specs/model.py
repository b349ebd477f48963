"""Model spec: a Hugging Face ``config.json`` (field names verbatim) normalised to one architecture.

A model spec file holds ``name``, ``source`` (URL of the config), ``published_params``
and ``config`` (the Hugging Face fields). ``--model`` also accepts a raw config.json,
whose unknown fields are ignored; in our YAML files an unknown config field is an error
(it is usually a misspelling).
"""
from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import Field

from simulator.specs.base import Strict

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


class Architecture(Strict):
    """One decoder-only transformer, normalised. All sizes are element counts."""

    family: str
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    ffn_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool
    gated_mlp: bool                       # SwiGLU-style gate * up
    activation: Literal["silu", "gelu", "relu"]
    norm: Literal["rmsnorm", "layernorm"]
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    positions: Literal["rotary", "learned"] = "rotary"
    rotary_dim: int = 0                   # rotated dims per head (0 when positions are learned)
    learned_positions: int = 0            # rows of the learned position table
    parallel_block: bool = False          # GPT-J: attention and MLP read the same normed input
    sliding_window: int | None = None     # attention span in tokens, None = full
    qk_norm: bool = False                 # RMSNorm on q and k per head (Qwen3)
    # mixture of experts (num_experts = 0: dense)
    num_experts: int = 0
    experts_per_token: int = 0
    expert_ffn_size: int = 0
    shared_ffn_size: int = 0              # intermediate size of the always-on shared expert(s)
    shared_expert_gate: bool = False      # Qwen-MoE: a sigmoid gate on the shared expert
    dense_layers: int = 0                 # leading layers with a dense MLP of ffn_size
    moe_every: int = 1                    # a MoE MLP every n layers (Qwen-MoE decoder_sparse_step)
    # multi-head latent attention (kv_lora_rank = 0: ordinary attention)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def kv_cache_width(self) -> int:
        """Values cached per token and layer: K and V, or MLA's latent and rotary key."""
        return self.kv_lora_rank + self.qk_rope_head_dim if self.is_mla else 2 * self.kv_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts."""
        if not self.is_moe:
            return 0
        return len([i for i in range(self.dense_layers, self.num_layers) if (i + 1) % self.moe_every == 0])


class ModelSpec(Strict):
    name: str
    source: str
    published_params: float = Field(gt=0)
    published_active_params: float | None = Field(None, gt=0)   # mixture of experts: per token
    config: dict[str, Any]


def _get(cfg: dict, key: str, kind: type = int):
    if key not in cfg or cfg[key] is None:
        raise KeyError(key)
    value = cfg[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _llama_like(cfg: dict, family: str, qkv_bias_default: bool) -> dict:
    hidden = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    head_dim = cfg.get("head_dim") or hidden // heads
    act = cfg.get("hidden_act", "silu")
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    return dict(
        family=family, hidden_size=hidden, num_layers=_get(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=cfg.get("num_key_value_heads") or heads, head_dim=head_dim,
        ffn_size=_get(cfg, "intermediate_size"), vocab_size=_get(cfg, "vocab_size"),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)), gated_mlp=True,
        activation={"silu": "silu", "swish": "silu", "gelu": "gelu", "relu": "relu"}.get(act, act),
        norm="rmsnorm", qkv_bias=bool(cfg.get("attention_bias", qkv_bias_default)),
        out_bias=bool(cfg.get("attention_bias", False)), mlp_bias=bool(cfg.get("mlp_bias", False)),
        rotary_dim=head_dim, sliding_window=window,
    )


def _gptj(cfg: dict) -> dict:
    hidden = _get(cfg, "n_embd")
    heads = _get(cfg, "n_head")
    return dict(
        family="gptj", hidden_size=hidden, num_layers=_get(cfg, "n_layer"), num_heads=heads,
        num_kv_heads=heads, head_dim=hidden // heads, ffn_size=cfg.get("n_inner") or 4 * hidden,
        vocab_size=_get(cfg, "vocab_size"), tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        gated_mlp=False, activation="gelu", norm="layernorm", mlp_bias=True, lm_head_bias=True,
        rotary_dim=cfg.get("rotary_dim") or hidden // heads, parallel_block=True,
    )


def _opt(cfg: dict) -> dict:
    hidden = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    if cfg.get("word_embed_proj_dim", hidden) != hidden:
        raise ValueError("word_embed_proj_dim: only OPT models with word_embed_proj_dim == hidden_size are supported")
    bias = bool(cfg.get("enable_bias", True))
    return dict(
        family="opt", hidden_size=hidden, num_layers=_get(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=hidden // heads, ffn_size=_get(cfg, "ffn_dim"),
        vocab_size=_get(cfg, "vocab_size"), tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        gated_mlp=False, activation=cfg.get("activation_function", "relu"), norm="layernorm",
        qkv_bias=bias, out_bias=bias, mlp_bias=bias, positions="learned", rotary_dim=0,
        learned_positions=_get(cfg, "max_position_embeddings") + 2,  # OPT offsets positions by 2
    )


def _mixtral(cfg: dict) -> dict:
    base = _llama_like(cfg, "mixtral", False)
    return {**base, "num_experts": _get(cfg, "num_local_experts"), "experts_per_token": _get(cfg, "num_experts_per_tok"),
            "expert_ffn_size": base["ffn_size"]}


def _qwen_moe(cfg: dict, family: str) -> dict:
    cfg = {**cfg, "intermediate_size": cfg.get("intermediate_size") or cfg.get("moe_intermediate_size")}
    base = _llama_like(cfg, family, family == "qwen2_moe")
    shared = cfg.get("shared_expert_intermediate_size") or 0
    if cfg.get("mlp_only_layers"):
        raise ValueError("mlp_only_layers: only models whose every layer is MoE are supported (an empty list)")
    return {**base, "num_experts": _get(cfg, "num_experts"), "experts_per_token": _get(cfg, "num_experts_per_tok"),
            "expert_ffn_size": _get(cfg, "moe_intermediate_size"), "shared_ffn_size": shared,
            "shared_expert_gate": bool(shared), "moe_every": cfg.get("decoder_sparse_step", 1) or 1,
            "qk_norm": family == "qwen3_moe"}


def _qwen3(cfg: dict) -> dict:
    return {**_llama_like(cfg, "qwen3", False), "qk_norm": True}


def _deepseek_v3(cfg: dict) -> dict:
    hidden = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    rope, nope, v = _get(cfg, "qk_rope_head_dim"), _get(cfg, "qk_nope_head_dim"), _get(cfg, "v_head_dim")
    return dict(
        family="deepseek_v3", hidden_size=hidden, num_layers=_get(cfg, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=nope + rope, ffn_size=_get(cfg, "intermediate_size"),
        vocab_size=_get(cfg, "vocab_size"), tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        gated_mlp=True, activation="silu", norm="rmsnorm", rotary_dim=rope,
        num_experts=_get(cfg, "n_routed_experts"), experts_per_token=_get(cfg, "num_experts_per_tok"),
        expert_ffn_size=_get(cfg, "moe_intermediate_size"),
        shared_ffn_size=cfg.get("n_shared_experts", 0) * _get(cfg, "moe_intermediate_size"),
        dense_layers=cfg.get("first_k_dense_replace", 0), moe_every=cfg.get("moe_layer_freq", 1) or 1,
        q_lora_rank=cfg.get("q_lora_rank") or 0, kv_lora_rank=_get(cfg, "kv_lora_rank"), qk_rope_head_dim=rope,
        qk_nope_head_dim=nope, v_head_dim=v,
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


def unknown_fields(config: dict) -> list[str]:
    """Config fields that neither the model's family reads nor are known to be irrelevant."""
    family = FAMILIES.get(config.get("model_type", ""))
    used = family[1] if family else frozenset()
    return sorted(k for k in config if k not in used and k not in IGNORED_HF_FIELDS)


def normalise(config: dict) -> Architecture:
    """Hugging Face config dict -> Architecture. Raises KeyError (missing field) or ValueError."""
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"model_type: expected one of {', '.join(sorted(FAMILIES))}, got {model_type!r}")
    return Architecture(**FAMILIES[model_type][0](config))
