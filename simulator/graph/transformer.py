"""The transformer as a networkx graph: one decoder layer (repeated) plus embedding and head.

Nodes are operators with their shapes; edges are the tensors flowing between them.
Node attributes: ``kind`` (OpKind), ``repeat`` (1, or the layer count for layer nodes),
``params`` (parameter count the operator owns) and shape fields used by lowering:
``n``/``k`` (matmul out/in features), ``m`` ("tok" or "seq": what the matmul's rows are),
``width`` (elements per token), ``bias``.
"""
from __future__ import annotations

import networkx as nx

from simulator.graph.ops import OpKind
from simulator.specs.model import Architecture


class _Builder:
    def __init__(self, arch: Architecture):
        self.g = nx.DiGraph(model=arch)
        self.layers = arch.num_layers
        self.tp = 1

    def add(self, name: str, kind: OpKind, inputs: list[str], layer: bool = True, params: int = 0, **shape):
        self.g.add_node(name, kind=kind, repeat=self.layers if layer else 1, params=params, **shape)
        for src in inputs:
            self.g.add_edge(src, name)
        return name

    def matmul(self, name: str, x: str, n: int, k: int, bias: bool, layer: bool = True, m: str = "tok",
               kind: OpKind = OpKind.MATMUL, owns_weight: bool = True):
        params = (n * k + (n if bias else 0)) if owns_weight else (n if bias else 0)
        return self.add(name, kind, [x], layer, params=params, n=n, k=k, m=m, bias=bias,
                        weight_elements=n * k)

    def norm(self, name: str, x: str, width: int, kind: str, layer: bool = True):
        params = width * (2 if kind == "layernorm" else 1)
        return self.add(name, OpKind.NORM, [x], layer, params=params, width=width)


def _collective(b: _Builder, name: str, x: str, kind: OpKind, width: int, tp: int, layer: bool = True,
                m: str = "tok") -> str:
    """A tensor-parallel collective over ``tp`` devices of a ``width``-wide tensor per row
    (rows: tokens, or sequences for the logits); none when tp = 1."""
    if tp == 1:
        return x
    return b.add(name, kind, [x], layer, width=width, group=tp, m=m)


def _attention_block(b: _Builder, a: Architecture, x: str, unfused: bool) -> str:
    qkv = b.matmul("qkv_proj", x, a.q_dim + 2 * a.kv_dim, a.hidden_size, a.qkv_bias)
    rope = qkv
    if a.positions == "rotary":
        rope = b.add("rotary", OpKind.ROTARY, [qkv], width=(a.num_heads + a.num_kv_heads) * a.rotary_dim,
                     rw_width=a.q_dim + a.kv_dim)
    cache = b.add("kv_write", OpKind.KV_WRITE, [rope], width=2 * a.kv_dim)
    shape = dict(heads=a.num_heads, kv_heads=a.num_kv_heads, head_dim=a.head_dim)
    if unfused:
        s = b.add("attn_score", OpKind.ATTN_SCORE, [rope, cache], **shape)
        p = b.add("attn_softmax", OpKind.ATTN_SOFTMAX, [s], **shape)
        ctx = b.add("attn_context", OpKind.ATTN_CONTEXT, [p, cache], **shape)
    else:
        ctx = b.add("attention", OpKind.ATTENTION, [rope, cache], **shape)
    out = b.matmul("o_proj", ctx, a.hidden_size, a.q_dim, a.out_bias)
    return _collective(b, "allreduce_attn", out, OpKind.ALL_REDUCE, a.hidden_size, b.tp)


def _mlp_block(b: _Builder, a: Architecture, x: str) -> str:
    if a.gated_mlp:
        up = b.matmul("gate_up_proj", x, 2 * a.ffn_size, a.hidden_size, a.mlp_bias)
        act = b.add("act_mul", OpKind.ACTIVATION, [up], width=a.ffn_size, gated=True)
    else:
        up = b.matmul("up_proj", x, a.ffn_size, a.hidden_size, a.mlp_bias)
        act = b.add("act", OpKind.ACTIVATION, [up], width=a.ffn_size, gated=False)
    out = b.matmul("down_proj", act, a.hidden_size, a.ffn_size, a.mlp_bias)
    return _collective(b, "allreduce_mlp", out, OpKind.ALL_REDUCE, a.hidden_size, b.tp)


def shard(arch: Architecture, tp: int) -> Architecture:
    """The slice of the model one of ``tp`` tensor-parallel devices holds (Megatron style:
    heads and FFN columns split; KV heads split, or replicated when fewer than tp)."""
    if tp == 1:
        return arch
    kv = arch.num_kv_heads
    if arch.num_heads % tp or arch.ffn_size % tp or (kv % tp and tp % kv):
        raise ValueError(f"tp: {tp} does not divide the model's {arch.num_heads} heads, {kv} KV heads "
                         f"and {arch.ffn_size} FFN columns")
    return arch.model_copy(update={"num_heads": arch.num_heads // tp, "num_kv_heads": max(1, kv // tp),
                                   "ffn_size": arch.ffn_size // tp})


def build(arch: Architecture, unfused_attention: bool = False, tp: int = 1) -> nx.DiGraph:
    """Graph of the model as one of ``tp`` tensor-parallel devices runs it; layer nodes carry
    ``repeat = num_layers``. The embedding and the LM head are split by vocabulary: the
    embedding's partial rows are all-reduced, the head's logits all-gathered."""
    full = arch
    a = shard(arch, tp)
    b = _Builder(a)
    b.tp = tp
    h = a.hidden_size
    vocab_shard = -(-full.vocab_size // tp)      # vocabulary-parallel embedding and head
    x = b.add("embed_tokens", OpKind.EMBEDDING, [], layer=False, params=vocab_shard * h, width=h)
    x = _collective(b, "allreduce_embed", x, OpKind.ALL_REDUCE, h, tp, layer=False)
    if a.positions == "learned":
        pos = b.add("embed_positions", OpKind.EMBEDDING, [], layer=False, params=a.learned_positions * h, width=h)
        x = b.add("add_positions", OpKind.RESIDUAL_ADD, [x, pos], layer=False, width=h)
    b.g.add_node("layer_in", kind=None, repeat=a.num_layers, params=0)   # marker: residual stream in
    b.g.add_edge(x, "layer_in")
    n1 = b.norm("input_norm", "layer_in", h, a.norm)
    attn = _attention_block(b, a, n1, unfused_attention)
    if a.parallel_block:        # GPT-J: x + attn(ln(x)) + mlp(ln(x))
        mlp = _mlp_block(b, a, n1)
        r1 = b.add("residual_attn", OpKind.RESIDUAL_ADD, ["layer_in", attn], width=h)
        out = b.add("residual_mlp", OpKind.RESIDUAL_ADD, [r1, mlp], width=h)
    else:
        r1 = b.add("residual_attn", OpKind.RESIDUAL_ADD, ["layer_in", attn], width=h)
        n2 = b.norm("post_attention_norm", r1, h, a.norm)
        mlp = _mlp_block(b, a, n2)
        out = b.add("residual_mlp", OpKind.RESIDUAL_ADD, [r1, mlp], width=h)
    fn = b.norm("final_norm", out, h, a.norm, layer=False)
    head = b.matmul("lm_head", fn, vocab_shard, h, a.lm_head_bias, layer=False, m="seq",
                    kind=OpKind.LM_HEAD, owns_weight=not a.tied_embeddings)
    logits = _collective(b, "allgather_logits", head, OpKind.ALL_GATHER, full.vocab_size, tp, layer=False,
                         m="seq")
    b.add("sampling", OpKind.SAMPLING, [logits], layer=False, width=full.vocab_size)
    return b.g


def parameter_count(graph: nx.DiGraph) -> int:
    """Parameters owned by the graph's operators (tied weights counted once)."""
    return sum(d["params"] * d["repeat"] for _, d in graph.nodes(data=True))
