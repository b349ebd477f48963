import networkx as nx
import numpy as np
import pytest

from simulator.graph.lower import lower
from simulator.graph.ops import KV, ONE, PAIR, SEQ, TOK, OpKind
from simulator.graph.transformer import build, parameter_count
from simulator.specs import registry
from simulator.specs.base import Dtype

BF16 = Dtype.bf16

# Published totals (model cards / papers), checked within 0.5%.
PUBLISHED = {"llama-3.2-1b": 1.24e9, "llama-2-7b": 6.74e9, "llama-3.1-8b": 8.03e9, "qwen2.5-14b": 14.77e9,
             "qwen2.5-32b": 32.76e9, "llama-3.1-70b": 70.6e9}


@pytest.mark.parametrize("name,published", sorted(PUBLISHED.items()))
def test_parameter_counts_match_published(name, published):
    _, arch, _ = registry.model(name)
    assert parameter_count(build(arch)) == pytest.approx(published, rel=0.005)


@pytest.mark.parametrize("name", sorted(registry.model_index()))
def test_every_model_matches_its_own_published_count(name):
    _, arch, spec = registry.model(name)
    assert parameter_count(build(arch)) == pytest.approx(spec.published_params, rel=0.005)


def test_layer_is_a_dag_in_reference_order():
    _, arch, _ = registry.model("llama-3.1-8b")
    g = build(arch)
    assert nx.is_directed_acyclic_graph(g)
    order = [n for n in nx.topological_sort(g) if g.nodes[n]["kind"] is not None]
    assert order.index("qkv_proj") < order.index("rotary") < order.index("attention") < order.index("o_proj")
    assert order[-2:] == ["lm_head", "sampling"]


def test_hand_computed_costs_llama_3_1_8b():
    """qkv_proj: N = 4096 + 2 x 1024 = 6144, K = 4096; bf16 weights 2 B each."""
    _, arch, _ = registry.model("llama-3.1-8b")
    t = lower(arch, BF16, BF16, BF16, False)
    i = t.names.index("qkv_proj")
    assert t.flops[i, TOK] == 2 * 6144 * 4096
    assert t.bytes[i, ONE] == 6144 * 4096 * 2
    assert t.bytes[i, TOK] == (6144 + 4096) * 2
    assert t.repeat[i] == 32
    a = t.names.index("attention")
    assert t.flops[a, PAIR] == 4 * 4096 + 5 * 32         # QK^T and SV: 2 x 2 x q_dim per pair
    assert t.bytes[a, KV] == 2 * 1024 * 2                 # K and V, 1024 wide, bf16
    head = t.names.index("lm_head")
    assert t.flops[head, SEQ] == 2 * 128256 * 4096 and t.flops[head, TOK] == 0   # last position only
    assert t.kv_bytes_per_token == 32 * 2 * 1024 * 2


def test_gqa_mqa_mha_kv_width():
    for name, kv_heads in [("llama-2-7b", 32), ("llama-3.1-8b", 8)]:
        _, arch, _ = registry.model(name)
        assert arch.num_kv_heads == kv_heads
        t = lower(arch, BF16, BF16, BF16, False)
        assert t.kv_bytes_per_token == arch.num_layers * 2 * kv_heads * arch.head_dim * 2
    mqa = registry.model("llama-2-7b")[1].model_copy(update={"num_kv_heads": 1})
    assert lower(mqa, BF16, BF16, BF16, False).kv_bytes_per_token == 32 * 2 * 128 * 2


def test_tied_embeddings_count_once():
    _, arch, _ = registry.model("llama-3.2-1b")
    assert arch.tied_embeddings
    untied = arch.model_copy(update={"tied_embeddings": False})
    assert parameter_count(build(untied)) - parameter_count(build(arch)) == arch.vocab_size * arch.hidden_size


def test_opt_learned_positions_and_gptj_parallel_block():
    _, opt, _ = registry.model("opt-6.7b")
    g = build(opt)
    assert "embed_positions" in g and "rotary" not in g
    _, gptj, _ = registry.model("gpt-j-6b")
    g = build(gptj)
    assert "post_attention_norm" not in g and g.has_edge("input_norm", "up_proj")


def test_unfused_attention_materialises_scores():
    _, arch, _ = registry.model("llama-2-7b")
    t = lower(arch, BF16, BF16, BF16, True)
    kinds = {OpKind(int(k)) for k in t.kind}
    assert {OpKind.ATTN_SCORE, OpKind.ATTN_SOFTMAX, OpKind.ATTN_CONTEXT} <= kinds
    assert OpKind.ATTENTION not in kinds
    fused = lower(arch, BF16, BF16, BF16, False)
    assert t.flops[:, PAIR].sum() == pytest.approx(fused.flops[:, PAIR].sum())   # same math, more bytes
    assert t.bytes[:, PAIR].sum() > 0 == fused.bytes[:, PAIR].sum()


def test_weight_dtype_scales_weight_bytes():
    _, arch, _ = registry.model("llama-3.1-8b")
    fp8, bf16 = lower(arch, Dtype.fp8, BF16, BF16, False), lower(arch, BF16, BF16, BF16, False)
    assert fp8.layer_weight_bytes == pytest.approx(bf16.layer_weight_bytes / 2)
    outer = bf16.weight_bytes - bf16.layer_weight_bytes           # embedding, final norm, LM head: 16-bit
    assert fp8.weight_bytes == pytest.approx(fp8.layer_weight_bytes + outer)
    assert lower(arch, Dtype.fp8, BF16, BF16, False, outer_16bit=False).weight_bytes == pytest.approx(
        bf16.weight_bytes / 2)


def test_w8a8_quantizes_each_weight_gemm_input():
    """FP8 activations add one dynamic quantization per weight-owning GEMM of a layer (qkv, o,
    gate_up, down): k stream values read and k bytes written per token; bf16 adds none."""
    _, arch, _ = registry.model("llama-3.1-8b")
    t = lower(arch, Dtype.fp8, Dtype.fp8, BF16, False)
    quant = [i for i, k in enumerate(t.kind) if OpKind(int(k)) == OpKind.QUANTIZE]
    assert [t.names[i] for i in quant] == ["qkv_proj_quant", "o_proj_quant", "gate_up_proj_quant", "down_proj_quant"]
    assert t.bytes[quant[3], TOK] == pytest.approx(arch.ffn_size * 3.0)
    assert not any(OpKind(int(k)) == OpKind.QUANTIZE for k in lower(arch, Dtype.fp8, BF16, BF16, False).kind)
    assert np.all(lower(arch, Dtype.int4, BF16, BF16, False).bytes[:, ONE] <= lower(arch, BF16, BF16, BF16, False).bytes[:, ONE])
