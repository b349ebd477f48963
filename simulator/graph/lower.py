"""Lower a model graph to an operator table: per operator, FLOPs and bytes as linear
formulas in the features of ops.py (coefficient rows), plus the GEMM shape.

Byte counts are the fewest a kernel must move through memory: weights read once,
activations read and written once, the KV cache read once per pass (a flash-style
kernel); what a real stack moves beyond that is the stack profile's business.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from simulator.graph.ops import ETOK, EXP, KV, LKV, LPAIR, N_FEATURES, ONE, PAIR, SEQ, TOK, OpKind
from simulator.graph.transformer import build, parameter_count
from simulator.specs.base import Dtype
from simulator.specs.model import Architecture


@dataclasses.dataclass(frozen=True)
class OpTable:
    """Operators of one (model, precisions, attention mode), in execution order.

    flops[i] and bytes[i] are coefficient rows over the features (ops.FEATURE_NAMES);
    one instance of operator i costs flops[i] @ features FLOPs; it runs repeat[i] times
    per forward pass. gemm_n/gemm_k are a matmul's out/in features (0 otherwise) and
    m_feature the feature that gives its rows.
    """

    names: tuple[str, ...]
    kind: np.ndarray          # int64 OpKind codes
    repeat: np.ndarray        # float64 instances per pass
    flops: np.ndarray         # float64 [n_ops, N_FEATURES]
    bytes: np.ndarray         # float64 [n_ops, N_FEATURES]
    gemm_n: np.ndarray        # int64
    gemm_k: np.ndarray        # int64
    m_feature: np.ndarray     # int64 feature index of a matmul's M (TOK or SEQ)
    group: np.ndarray         # int64 devices taking part in a collective (1 for other ops)
    kv_heads: np.ndarray      # int64 KV heads an attention operator reads (0 for other ops)
    local: np.ndarray         # int64 1: an attention operator of the local layers (LPAIR, LKV features)
    phase: np.ndarray         # int64 PREFILL | DECODE bits: the phases that run the operator
    moe: tuple | None         # (experts, experts per token, expert-parallel devices) of a MoE model
    parameters: int
    weight_bytes: float       # all parameters at the weight dtype
    layer_weight_bytes: float  # the part in decoder layers (what pipeline stages split)
    first_stage_weight_bytes: float  # outside the layers, held by the first pipeline stage (embeddings)
    last_stage_weight_bytes: float   # outside the layers, held by the last stage (final norm, head)
    kv_bytes_per_token: float  # KV cache bytes per cached position, all layers
    local_kv_bytes_per_token: float  # the part of it in local-attention layers (kept for their span only)
    stream_bytes_per_token: float  # one token's hidden state (what a pipeline stage hands on)
    window: int               # local layers' span: W > 0 a sliding window of W tokens, -W chunks of W
                              # (chunked attention, Llama 4), 0 none (phases.local_span)

    def __len__(self) -> int:
        return len(self.names)


PREFILL, DECODE = 1, 2
STREAM_MIN_BYTES = 2.0            # the residual stream and collectives stay 16-bit under FP8 / INT8
PHASES = {"both": PREFILL | DECODE, "prefill": PREFILL, "decode": DECODE}


def _row(**terms: float) -> np.ndarray:
    row = np.zeros(N_FEATURES)
    index = {"one": ONE, "seq": SEQ, "tok": TOK, "pair": PAIR, "kv": KV, "exp": EXP, "etok": ETOK, "lpair": LPAIR,
             "lkv": LKV}
    for name, value in terms.items():
        row[index[name]] = value
    return row


def _costs(kind: OpKind, d: dict, w: float, a_in: float, a: float, kvb: float) -> tuple[np.ndarray, np.ndarray]:
    """(flops row, bytes row) of one operator instance, in bytes per element: w weights,
    a_in a GEMM's input activations (the compute dtype), a everything else the layer passes
    along (the residual stream, GEMM outputs, collectives: never narrower than 16 bits, as
    FP8 recipes keep them), kvb the KV cache."""
    if kind in (OpKind.MATMUL, OpKind.LM_HEAD):      # per_head: a batched GEMM over heads (MLA absorb)
        n, k, m, heads = d["n"], d["k"], d["m"], d.get("per_head", 1)
        bias = n if d["bias"] else 0
        flops = {m: heads * (2.0 * n * k + bias)}
        return _row(**flops), _row(one=heads * (d["weight_elements"] + bias) * w, **{m: heads * (k * a_in + n * a)})
    if kind == OpKind.EXPERT_MATMUL:                  # each token visits top_k experts
        n, k, top = d["n"], d["k"], d["top_k"]
        return _row(tok=2.0 * n * k * top), _row(exp=d["weight_elements"] * w, tok=top * (k * a_in + n * a))
    if kind == OpKind.MOE_ROUTE:                      # top-k and softmax of E logits, tokens sorted by expert
        return _row(tok=5.0 * d["width"]), _row(tok=d["width"] * a + 2.0 * d["top_k"] * d["hidden"] * a)
    if kind == OpKind.MOE_COMBINE:                    # weighted sum of top_k expert outputs per token
        return _row(tok=2.0 * d["top_k"] * d["width"]), _row(tok=(d["top_k"] + 1) * d["width"] * a)
    width = d.get("width", 0)
    if kind == OpKind.EMBEDDING:
        return _row(), _row(tok=width * (w + a))
    if kind == OpKind.NORM:
        return _row(tok=4.0 * width), _row(one=d["params"] * w, tok=2.0 * width * a)
    if kind == OpKind.ROTARY:
        return _row(tok=3.0 * width), _row(tok=2.0 * d["rw_width"] * a)
    if kind == OpKind.KV_WRITE:
        return _row(), _row(tok=width * (a + kvb))
    if kind == OpKind.RESIDUAL_ADD:
        return _row(tok=float(width)), _row(tok=3.0 * width * a)
    if kind == OpKind.ACTIVATION:
        if d["gated"]:
            return _row(tok=5.0 * width), _row(tok=3.0 * width * a)
        return _row(tok=4.0 * width), _row(tok=2.0 * width * a)
    if kind == OpKind.SAMPLING:
        return _row(seq=float(width)), _row(seq=width * a)
    if kind.is_collective:                      # payload bytes; bind turns them into link time
        return _row(), _row(**{d["m"]: width * a})
    heads, kv_heads, hd = d["heads"], d["kv_heads"], d["head_dim"]
    q_dim, kv_dim = heads * hd, kv_heads * hd
    if kind == OpKind.ATTENTION:                 # v_dim: MLA's value width; a latent cache is K and V at once
        v = d.get("v_dim", hd)
        kv_read = kv_heads * hd if d.get("latent") else kv_heads * (hd + v)
        sink = 5.0 * heads if d.get("sinks") else 0.0     # a sink logit per head and query joins the softmax
        return (_row(pair=2.0 * heads * (hd + v) + 5.0 * heads, tok=sink),
                _row(one=d.get("params", 0) * w, tok=heads * (hd + v) * a, kv=kv_read * kvb))
    if kind == OpKind.ATTN_SCORE:
        return _row(pair=2.0 * q_dim), _row(tok=q_dim * a, kv=kv_dim * kvb, pair=heads * a)
    if kind == OpKind.ATTN_SOFTMAX:
        return _row(pair=5.0 * heads), _row(pair=2.0 * heads * a)
    if kind == OpKind.ATTN_CONTEXT:
        return _row(pair=2.0 * q_dim), _row(tok=q_dim * a, kv=kv_dim * kvb, pair=heads * a)
    raise ValueError(f"no cost formula for {kind!r}")


def _local_layers(arch: Architecture) -> int:
    """Layers the graph gives local attention (multi-head latent attention is costed global)."""
    return 0 if arch.is_mla else arch.local_layers


def _to_local(row: np.ndarray) -> np.ndarray:
    """A global attention operator's cost row moved onto the local features (PAIR -> LPAIR, KV -> LKV)."""
    out = row.copy()
    out[[LPAIR, LKV]] = row[[PAIR, KV]]
    out[[PAIR, KV]] = 0.0
    return out


def _params(graph: nx.DiGraph, keep) -> int:
    return sum(d["params"] * d["repeat"] for n, d in graph.nodes(data=True) if keep(n, d))


def _quantize_row(name: str, kind: OpKind, d: dict, a_in: float, a: float) -> tuple | None:
    """The dynamic quantization of a weight-owning GEMM's input when activations are narrower
    than the stream (W8A8): per token, read k stream values, write k narrow ones (x top_k copies
    for an expert GEMM's dispatched tokens); None otherwise."""
    if a_in >= a or not d["in_layer"] or d.get("params", 0) <= 0 or kind not in (OpKind.MATMUL, OpKind.EXPERT_MATMUL):
        return None
    k = d["k"] * d.get("top_k", 1) if kind == OpKind.EXPERT_MATMUL else d["k"]
    return (f"{name}_quant", OpKind.QUANTIZE, d["repeat"], _row(tok=3.0 * k), _row(tok=k * (a + a_in)), 0, 0, TOK, 1,
            0, PHASES[d.get("phase", "both")], 0)


def lower_graph(graph: nx.DiGraph, weight, activation: Dtype, kv: Dtype, outer_16bit: bool = True) -> OpTable:
    """Operator table of a graph; sizes are per device when the graph is a tensor-parallel shard.
    ``weight`` is a Dtype or a quant.WeightFormat (anything with ``bytes`` per element).
    ``outer_16bit``: a weight format narrower than 16 bits applies to the decoder layers only;
    the embedding, final norm and LM head stay 16-bit (FP8 W8A8 recipes, AWQ and GPTQ
    checkpoints keep them so; GGUF quantizes them too: False)."""
    import networkx as nx           # here, not at import: a process that lowers nothing skips it

    arch: Architecture = graph.graph["model"]
    w, a_in, kvb = weight.bytes, activation.bytes, kv.bytes
    w_outer = max(w, STREAM_MIN_BYTES) if outer_16bit else w
    a = max(a_in, STREAM_MIN_BYTES)
    rows = []
    for name in nx.topological_sort(graph):
        d = graph.nodes[name]
        if d["kind"] is None:
            continue
        kind = OpKind(d["kind"])
        f, b = _costs(kind, d, w if d["in_layer"] else w_outer, a_in, a, kvb)
        m_feature = {"tok": TOK, "seq": SEQ, "etok": ETOK}[d["m"]] if kind.is_gemm else TOK
        quantize = _quantize_row(name, kind, d, a_in, a)
        if quantize is not None:
            rows.append(quantize)
        local = bool(d.get("local")) and kind.is_attention
        if local:                # a local layer's pairs and cached positions are its own features
            f, b = _to_local(f), _to_local(b)
        rows.append((name, kind, d["repeat"], f, b, d.get("n", 0), d.get("k", 0), m_feature, d.get("group", 1),
                     d.get("kv_heads", 0) if kind.is_attention else 0, PHASES[d.get("phase", "both")], int(local)))
    params = parameter_count(graph)
    layer_params = _params(graph, lambda n, d: d["in_layer"])
    return OpTable(
        names=tuple(r[0] for r in rows),
        kind=np.array([int(r[1]) for r in rows], dtype=np.int64),
        repeat=np.array([r[2] for r in rows], dtype=np.float64),
        flops=np.ascontiguousarray(np.array([r[3] for r in rows])),
        bytes=np.ascontiguousarray(np.array([r[4] for r in rows])),
        gemm_n=np.array([r[5] for r in rows], dtype=np.int64),
        gemm_k=np.array([r[6] for r in rows], dtype=np.int64),
        m_feature=np.array([r[7] for r in rows], dtype=np.int64),
        group=np.array([r[8] for r in rows], dtype=np.int64),
        kv_heads=np.array([r[9] for r in rows], dtype=np.int64),
        phase=np.array([r[10] for r in rows], dtype=np.int64),
        local=np.array([r[11] for r in rows], dtype=np.int64),
        moe=(arch.num_experts, arch.experts_per_token, graph.graph.get("ep", 1)) if arch.is_moe else None,
        parameters=params,
        weight_bytes=layer_params * w + (params - layer_params) * w_outer,
        layer_weight_bytes=layer_params * w,
        first_stage_weight_bytes=_params(graph, lambda n, d: d["kind"] == OpKind.EMBEDDING) * w_outer,
        last_stage_weight_bytes=(_params(graph, lambda n, d: not d["in_layer"] and d["kind"] != OpKind.EMBEDDING)
                                 + (_params(graph, lambda n, d: n == "embed_tokens") if arch.tied_embeddings
                                    else 0)) * w_outer,
        kv_bytes_per_token=arch.num_layers * arch.kv_cache_width * kvb,
        local_kv_bytes_per_token=_local_layers(arch) * arch.kv_cache_width * kvb,
        stream_bytes_per_token=arch.hidden_size * a,
        window=(-1 if arch.chunked_attention else 1) * arch.sliding_window if _local_layers(arch) else 0,
    )


@functools.lru_cache(maxsize=256)
def lower(arch: Architecture, weight, activation: Dtype, kv: Dtype, unfused_attention: bool,
          tp: int = 1, ep: int = 1, outer_16bit: bool = True) -> OpTable:
    """Operator table of one device (of tp tensor-parallel x ep expert-parallel ones) at given
    precisions (cached: lowering happens once per combination)."""
    graph = build(arch, unfused_attention, tp, ep)
    graph.graph["ep"] = ep
    return lower_graph(graph, weight, activation, kv, outer_16bit)
