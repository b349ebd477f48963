"""The harness's view of a model: the simulator's ``Architecture`` (one Hugging Face config
parser, simulator/specs/hf_config.py), checked against what the reference stack builds, plus
the sizes the planner and the files need. Pure Python: imports without torch or a GPU.

The reference stack builds Llama-style decoders (see README.md, "The reference stack"):
RMSNorm, rotary on every head dimension, SwiGLU MLP without biases, attention without an
output bias (q/k/v biases and per-head q/k RMSNorm are supported); the MLP is dense or a
mixture of experts in every layer (Mixtral, Qwen3-MoE: no shared expert); the linear layers
are bf16 or the FP8 W8A8 variant (``linear_dtype = "fp8"``, dense models).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simulator.errors import SimulatorError
from simulator.specs.hf_config import normalise
from simulator.specs.model import Architecture
from validation.harness.fp8 import QUANTIZE_KERNELS
from validation.harness.moe import ROUTED_MLP_KERNELS

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe")
LINEAR_DTYPES = ("bf16", "fp8")
FP8_SCALE_BYTES = 4            # one fp32 scale per output row of an FP8 weight


class UnsupportedModelError(ValueError):
    """The model spec is not a Llama-style decoder this harness can build."""


@dataclass
class ModelConfig:
    """One model as the harness builds it. ``rms_norm_eps`` and ``rope_theta`` change the
    numbers a forward pass computes but not its kernels or their cost, so the simulator's
    Architecture leaves them out; they come from the same config."""

    name: str
    arch: Architecture
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    published_params: float | None = None
    spec_path: str | None = None
    notes: list[str] = field(default_factory=list)
    linear_dtype: str = "bf16"     # "fp8": the FP8 W8A8 variant of every layer's linear layers

    def variant(self, linear_dtype: str) -> "ModelConfig":
        """The same model with its linear layers in ``linear_dtype`` (bf16, or fp8 for dense models)."""
        if linear_dtype not in LINEAR_DTYPES:
            raise UnsupportedModelError(f"{self.name}: linear_dtype {linear_dtype!r}, expected one of {LINEAR_DTYPES}")
        if linear_dtype == "fp8" and self.is_moe:
            raise UnsupportedModelError(f"{self.name}: the FP8 variant of expert layers is not part of the reference stack")
        return replace(self, linear_dtype=linear_dtype, notes=list(self.notes))

    # ---- the Architecture under the harness's short names
    @property
    def model_type(self) -> str:
        return self.arch.family

    @property
    def hidden(self) -> int:
        return self.arch.hidden_size

    @property
    def ffn(self) -> int:
        return self.arch.ffn_size

    @property
    def layers(self) -> int:
        return self.arch.num_layers

    @property
    def heads(self) -> int:
        return self.arch.num_heads

    @property
    def kv_heads(self) -> int:
        return self.arch.num_kv_heads

    @property
    def head_dim(self) -> int:
        return self.arch.head_dim

    @property
    def vocab(self) -> int:
        return self.arch.vocab_size

    @property
    def tied_embeddings(self) -> bool:
        return self.arch.tied_embeddings

    @property
    def qkv_bias(self) -> bool:
        return self.arch.qkv_bias

    @property
    def qk_norm(self) -> bool:
        return self.arch.qk_norm

    @property
    def q_dim(self) -> int:
        return self.arch.q_dim

    @property
    def kv_dim(self) -> int:
        return self.arch.kv_dim

    @property
    def qkv_out(self) -> int:
        return self.q_dim + 2 * self.kv_dim

    @property
    def is_moe(self) -> bool:
        return self.arch.is_moe

    @property
    def experts(self) -> int:
        return self.arch.num_experts

    @property
    def top_k(self) -> int:
        return self.arch.experts_per_token

    @property
    def expert_ffn(self) -> int:
        return self.arch.expert_ffn_size

    @property
    def fp8(self) -> bool:
        return self.linear_dtype == "fp8"

    # ---- derived sizes (pure arithmetic; the planner and the README use them)
    def matmul_shapes(self) -> dict[str, tuple[int, int]]:
        """(N, K) of every plain matmul x[M, K] @ W[N, K].t() the model runs (a MoE model's
        experts are grouped GEMMs: expert_shapes)."""
        mlp = ({"router": (self.experts, self.hidden)} if self.is_moe else
               {"gate_up": (2 * self.ffn, self.hidden), "down": (self.hidden, self.ffn)})
        return {"qkv": (self.qkv_out, self.hidden), "o": (self.hidden, self.q_dim), **mlp,
                "lm_head": (self.vocab, self.hidden)}

    def expert_shapes(self) -> dict[str, tuple[int, int, int]]:
        """(E, N, K) of the grouped GEMMs of a MoE layer, weights [E, N, K]; {} for a dense model."""
        if not self.is_moe:
            return {}
        return {"experts_gate_up": (self.experts, 2 * self.expert_ffn, self.hidden),
                "experts_down": (self.experts, self.hidden, self.expert_ffn)}

    def layer_matmul_params(self) -> int:
        dense = sum(n * k for op, (n, k) in self.matmul_shapes().items() if op != "lm_head")
        return dense + sum(e * n * k for e, n, k in self.expert_shapes().values())

    def layer_other_params(self) -> int:
        """Norm weights and q/k/v biases of one layer (bf16 in every variant)."""
        return 2 * self.hidden + (self.qkv_out if self.qkv_bias else 0) + (2 * self.head_dim if self.qk_norm else 0)

    def layer_params(self) -> int:
        return self.layer_matmul_params() + self.layer_other_params()

    def embedding_params(self) -> int:
        """Embedding, untied LM head and the final norm (bf16 in every variant)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) + self.hidden

    def param_count(self) -> int:
        return self.layers * self.layer_params() + self.embedding_params()

    def active_param_count(self) -> int:
        """Parameters one token's pass reads: a MoE layer's top-k experts instead of all E."""
        experts = sum(e * n * k for e, n, k in self.expert_shapes().values())
        active = experts // self.experts * self.top_k if self.is_moe else experts
        return self.param_count() - self.layers * (experts - active)

    def weight_bytes(self) -> int:
        """bf16: 2 bytes a parameter. FP8 variant: the layers' linear weights 1 byte each plus a
        4-byte scale per output row; embedding, LM head, norms and biases stay bf16."""
        if not self.fp8:
            return 2 * self.param_count()
        shapes = [nk for op, nk in self.matmul_shapes().items() if op != "lm_head"]
        linear = sum(n * k + FP8_SCALE_BYTES * n for n, k in shapes)
        return self.layers * (linear + 2 * self.layer_other_params()) + 2 * self.embedding_params()

    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_dim * 2

    def kernels_per_layer(self) -> int:
        """Kernel launches per layer in this stack (used by the planner): norm, qkv,
        rotary 2 x 5, cache writes 2, attention, o, add, norm, gate_up, silu, mul,
        down, add = 23; +1 with q/k/v biases, +2 with q/k norms; FP8: + 8 quantization
        kernels before each of the 4 linear layers; MoE: the 4 dense MLP kernels replaced
        by the routed MLP's (moe.ROUTED_MLP_KERNELS). cuBLAS may add split-K reduce kernels
        (seen: +1 for the down projection at small M on an H100), torch.sort a few more."""
        n = 23 + (1 if self.qkv_bias else 0) + (2 if self.qk_norm else 0)
        if self.fp8:
            n += 4 * QUANTIZE_KERNELS
        if self.is_moe:
            n += ROUTED_MLP_KERNELS - 4
        return n

    def to_json(self) -> dict[str, Any]:
        """The model as the e2e file's ``models[]`` records it."""
        return dict(name=self.name, model_type=self.model_type, hidden=self.hidden, ffn=self.ffn, layers=self.layers,
                    heads=self.heads, kv_heads=self.kv_heads, head_dim=self.head_dim, vocab=self.vocab,
                    tied_embeddings=self.tied_embeddings, qkv_bias=self.qkv_bias, qk_norm=self.qk_norm,
                    rms_norm_eps=self.rms_norm_eps, rope_theta=self.rope_theta, published_params=self.published_params,
                    sliding_window_ignored=self.arch.sliding_window, spec_path=self.spec_path, notes=list(self.notes),
                    param_count=self.param_count(), weight_bytes=self.weight_bytes(),
                    kv_bytes_per_token=self.kv_bytes_per_token(),
                    matmul_shapes={k: list(v) for k, v in self.matmul_shapes().items()},
                    linear_dtype=self.linear_dtype, num_experts=self.experts, experts_per_token=self.top_k,
                    expert_ffn=self.expert_ffn, expert_shapes={k: list(v) for k, v in self.expert_shapes().items()},
                    active_param_count=self.active_param_count())


def _refusal(arch: Architecture) -> str | None:
    """Why the reference stack cannot build ``arch``, or None."""
    if arch.is_mla:
        return "latent attention is not implemented in this harness"
    if arch.is_moe and (arch.shared_ffn_size or arch.dense_layers or arch.moe_every != 1):
        return ("mixture-of-experts models with shared experts or dense layers are not implemented in this harness "
                "(every layer routed, no shared expert: mixtral, qwen3_moe)")
    if arch.family not in SUPPORTED_FAMILIES:
        return (f"model_type {arch.family!r} is not a Llama-style decoder; the reference stack (pytorch-ref) "
                f"only builds {', '.join(SUPPORTED_FAMILIES)}")
    if arch.activation != "silu" or not arch.gated_mlp:
        return f"hidden_act {arch.activation!r}; the reference stack uses a SiLU-gated MLP"
    if arch.mlp_bias or arch.out_bias:
        return "MLP or attention-output biases are not part of the reference stack"
    return None                    # heads and KV heads agree: Architecture checks it


def from_architecture(name: str, arch: Architecture, config: dict[str, Any], published_params=None,
                      spec_path=None) -> ModelConfig:
    """The harness's model from the simulator's Architecture and the config it came from."""
    problem = _refusal(arch)
    if problem:
        raise UnsupportedModelError(f"{name}: {problem}")
    notes = []
    if arch.sliding_window:
        notes.append(f"sliding_window={arch.sliding_window} ignored: the reference stack attends to the full context")
    if config.get("rope_scaling"):
        notes.append("rope_scaling ignored (does not change the kernels run)")
    return ModelConfig(name=name, arch=arch, rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
                       rope_theta=float(config.get("rope_theta", 10000.0)),
                       published_params=float(published_params) if published_params is not None else None,
                       spec_path=str(spec_path) if spec_path else None, notes=notes)


def config_from_dict(name: str, config: dict[str, Any], published_params=None, spec_path=None) -> ModelConfig:
    """A Hugging Face config dict, parsed by the simulator (simulator.specs.hf_config.normalise)."""
    try:
        arch = normalise(config)
    except (KeyError, ValueError, SimulatorError) as exc:
        raise UnsupportedModelError(f"{name}: {exc}") from None
    return from_architecture(name, arch, config, published_params, spec_path)


def load_spec(path: str | Path) -> ModelConfig:
    """A model spec file (model_specs/NAME.yaml or a path), read by the simulator's registry."""
    from simulator.specs import registry

    name, arch, spec = registry.model(str(path))
    config = spec.config if spec is not None else registry.read_yaml(Path(path))
    return from_architecture(name, arch, config, spec.published_params if spec else None, path)


def micro_inputs(configs) -> tuple[dict, dict]:
    """(N, K) -> used_by, and (heads, kv_heads, head_dim) -> used_by, over the models: the
    shapes the microbenchmarks time."""
    shapes, heads = {}, {}
    for cfg in configs:
        for op, nk in cfg.matmul_shapes().items():
            shapes.setdefault(tuple(nk), []).append(f"{cfg.name}:{op}")
        heads.setdefault((cfg.heads, cfg.kv_heads, cfg.head_dim), []).append(cfg.name)
    return shapes, heads
