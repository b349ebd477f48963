"""Model spec: a Hugging Face ``config.json`` (field names verbatim) normalised to one
architecture (the parser: specs/hf_config.py).

A model spec file holds ``name``, ``source`` (URL of the config), ``published_params``
and ``config`` (the Hugging Face fields). ``--model`` also accepts a raw config.json,
whose unknown fields are ignored; in our YAML files an unknown config field is an error
(it is usually a misspelling).

Every field the normaliser reads has a strict type and a range: integers are JSON integers in
[1, 2^31 - 1] (counts that may be absent, such as n_shared_experts, in [0, 2^31 - 1]), booleans
are JSON true/false (the string "false" is an error, not true), strings come from a list. The
normalised Architecture checks that its parts agree (KV heads divide the heads, top-k routing
within the experts, ...). Every problem is a SpecError naming the config field.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from simulator.errors import SpecError
from simulator.specs.base import Strict

MAX_SIZE = 2**31 - 1          # any one dimension, count or width of a model (real ones are < 2^20)
MODEL = "<model>"             # the path of an error from an Architecture built in code

Size = Annotated[int, Field(strict=True, gt=0, le=MAX_SIZE)]         # a positive count or width
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_SIZE)]        # a count that may be 0

class Architecture(Strict):
    """One decoder-only transformer, normalised. All sizes are element counts."""

    family: str
    hidden_size: Size
    num_layers: Size
    num_heads: Size
    num_kv_heads: Size
    head_dim: Size
    ffn_size: Size
    vocab_size: Size
    tied_embeddings: bool
    gated_mlp: bool                       # SwiGLU-style gate * up
    activation: Literal["silu", "gelu", "relu"]
    norm: Literal["rmsnorm", "layernorm"]
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    positions: Literal["rotary", "learned"] = "rotary"
    rotary_dim: Count = 0                   # rotated dims per head (0 when positions are learned)
    learned_positions: Count = 0            # rows of the learned position table
    parallel_block: bool = False          # GPT-J: attention and MLP read the same normed input
    sliding_window: Size | None = None    # local attention span W in tokens (None: every layer attends fully)
    global_layers: Count = 0              # layers attending over the full context despite W (0: all local)
    chunked_attention: bool = False       # local layers attend within aligned chunks of W (Llama 4), not a
                                          # sliding window of the last W
    max_positions: Size | None = None     # max_position_embeddings: the longest sequence it was trained for
    qk_norm: bool = False                 # RMSNorm on q and k per head (Qwen3)
    qk_norm_per_head: bool = True         # False: one norm over all of q and all of k (OLMo 2)
    sandwich_norm: bool = False           # Gemma 2/3: a norm after attention and after the MLP too
    parallel_mlp_norm: bool = False       # parallel block whose MLP has its own norm (GPT-NeoX, Falcon 40B)
    attention_sinks: bool = False         # gpt-oss: one learned sink logit per head
    # mixture of experts (num_experts = 0: dense)
    num_experts: Count = 0
    experts_per_token: Count = 0
    expert_ffn_size: Count = 0
    shared_ffn_size: Count = 0              # intermediate size of the always-on shared expert(s)
    shared_expert_gate: bool = False      # Qwen-MoE: a sigmoid gate on the shared expert
    router_bias: bool = False             # gpt-oss: the router has a bias
    expert_bias: bool = False             # gpt-oss: each expert's projections have biases
    dense_layers: Count = 0                 # leading layers with a dense MLP of ffn_size
    moe_every: Size = 1                    # a MoE MLP every n layers (Qwen-MoE decoder_sparse_step)
    # multi-head latent attention (kv_lora_rank = 0: ordinary attention)
    q_lora_rank: Count = 0
    kv_lora_rank: Count = 0
    qk_rope_head_dim: Count = 0
    qk_nope_head_dim: Count = 0
    v_head_dim: Count = 0
    # the checkpoint's weight format from its quantization_config (specs/quant.py names), None: unquantized
    quantized_weights: str | None = None

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
    def local_layers(self) -> int:
        """Layers with local attention (sliding window or chunks of W); the rest attend fully."""
        return 0 if self.sliding_window is None else self.num_layers - self.global_layers

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
            return 0       # layers i in [dense_layers, num_layers) with (i + 1) a multiple of moe_every
        return max(0, self.num_layers // self.moe_every - self.dense_layers // self.moe_every)

    @model_validator(mode="after")
    def _consistent(self):
        problem = inconsistency(self)
        if problem:
            raise SpecError(MODEL, *problem)
        return self


def inconsistency(a: "Architecture") -> tuple[str, str] | None:
    """(field, what was expected) of the first way the architecture contradicts itself, or None."""
    if a.num_heads % a.num_kv_heads:
        return "num_kv_heads", f"the {a.num_kv_heads} KV heads must divide the {a.num_heads} attention heads"
    if a.num_heads * a.head_dim > MAX_SIZE:
        return "head_dim", f"heads x head_dim = {a.num_heads * a.head_dim} must be at most 2^31-1"
    if a.global_layers > a.num_layers:
        return "global_layers", f"expected at most the {a.num_layers} layers, got {a.global_layers}"
    if a.sliding_window is None and (a.global_layers or a.chunked_attention):
        return "sliding_window", "global layers or chunked attention need a local window (sliding_window)"
    if a.rotary_dim > a.head_dim:
        return "rotary_dim", f"expected at most head_dim ({a.head_dim}) rotated dimensions, got {a.rotary_dim}"
    if a.is_moe:
        if not 1 <= a.experts_per_token <= a.num_experts:
            return "experts_per_token", (f"expected 1 to num_experts ({a.num_experts}) experts per token, "
                                         f"got {a.experts_per_token}")
        if a.expert_ffn_size == 0:
            return "expert_ffn_size", "a mixture of experts needs a positive expert FFN size"
        if a.dense_layers > a.num_layers:
            return "dense_layers", f"expected at most the {a.num_layers} layers, got {a.dense_layers}"
    if a.is_mla and (a.qk_rope_head_dim == 0 or a.qk_nope_head_dim == 0 or a.v_head_dim == 0):
        return "qk_rope_head_dim", "multi-head latent attention needs positive rope, nope and value head sizes"
    return None


class ModelSpec(Strict):
    name: str
    source: str
    published_params: float = Field(gt=0)
    published_active_params: float | None = Field(None, gt=0)   # mixture of experts: per token
    config: dict[str, Any]
