"""The transformer as a networkx graph: one decoder layer (repeated) plus embedding and head.

Nodes are operators with their shapes; edges are the tensors flowing between them.
Node attributes: ``kind`` (OpKind), ``repeat`` (1, or the layer count for layer nodes),
``params`` (parameter count the operator owns), ``in_layer``, ``phase`` ("both", or
"prefill"/"decode" for operators only one phase runs) and shape fields used by lowering:
``n``/``k`` (matmul out/in features), ``m`` ("tok" or "seq": what the matmul's rows are),
``width`` (elements per token), ``bias``.
"""
from __future__ import annotations

from simulator.errors import WorkloadError
from simulator.graph.ops import OpKind
from simulator.specs.consistency import ep_problem, tp_problem
from simulator.specs.model import Architecture


class _Builder:
    """Adds operator nodes. ``repeat`` defaults to every layer (layer nodes) or 1; ``phase``
    is "both", "prefill" or "decode" (MLA runs different operators in the two phases)."""

    def __init__(self, arch: Architecture):
        import networkx as nx           # here, not at import: a process that lowers nothing skips it

        self.g = nx.DiGraph(model=arch)
        self.layers = arch.num_layers
        self.tp = 1
        self.ep = 1

    def add(self, name: str, kind: OpKind, inputs: list[str], layer: bool = True, params: int = 0,
            repeat: int | None = None, phase: str = "both", **shape):
        count = repeat if repeat is not None else (self.layers if layer else 1)
        self.g.add_node(name, kind=kind, repeat=count, params=params, in_layer=layer, phase=phase, **shape)
        for src in inputs:
            self.g.add_edge(src, name)
        return name

    def matmul(self, name: str, x: str | list[str], n: int, k: int, bias: bool, layer: bool = True, m: str = "tok",
               kind: OpKind = OpKind.MATMUL, owns_weight: bool = True, **extra):
        """x @ W.t() with W [n, k]; ``x`` names the input node (or nodes, one per phase)."""
        params = (n * k + (n if bias else 0)) if owns_weight else (n if bias else 0)
        return self.add(name, kind, [x] if isinstance(x, str) else x, layer, params=params, n=n, k=k, m=m, bias=bias,
                        weight_elements=n * k, **extra)

    def norm(self, name: str, x: str, width: int, kind: str, layer: bool = True, **extra):
        params = width * (2 if kind == "layernorm" else 1)
        return self.add(name, OpKind.NORM, [x], layer, params=params, width=width, **extra)


def _collective(b: _Builder, name: str, x: str, kind: OpKind, width: int, devices: int, layer: bool = True,
                m: str = "tok", repeat: int | None = None) -> str:
    """A collective over ``devices`` devices of a ``width``-wide tensor per row (rows: tokens,
    or sequences for the logits); none when there is one device."""
    if devices == 1:
        return x
    return b.add(name, kind, [x], layer, width=width, group=devices, m=m, repeat=repeat)


def _attention_block(b: _Builder, a: Architecture, x: str, unfused: bool) -> str:
    if a.is_mla:
        return _mla_block(b, a, x)
    qkv = b.matmul("qkv_proj", x, a.q_dim + 2 * a.kv_dim, a.hidden_size, a.qkv_bias)
    if a.qk_norm:                # RMSNorm of q and k, over q_dim + kv_dim values a token: weights per head
        weights = 2 * a.head_dim if a.qk_norm_per_head else a.q_dim + a.kv_dim      # (Qwen3) or whole (OLMo 2)
        qkv = b.add("qk_norm", OpKind.NORM, [qkv], params=weights, width=a.q_dim + a.kv_dim)
    rope = qkv
    if a.positions == "rotary":
        rope = b.add("rotary", OpKind.ROTARY, [qkv], width=(a.num_heads + a.num_kv_heads) * a.rotary_dim,
                     rw_width=a.q_dim + a.kv_dim)
    cache = b.add("kv_write", OpKind.KV_WRITE, [rope], width=2 * a.kv_dim)
    shape = dict(heads=a.num_heads, kv_heads=a.num_kv_heads, head_dim=a.head_dim)
    contexts = []
    for suffix, repeat, local in attention_groups(a):
        kw = dict(shape, repeat=repeat, local=local)
        if unfused:
            s = b.add(f"attn_score{suffix}", OpKind.ATTN_SCORE, [rope, cache], **kw)
            p = b.add(f"attn_softmax{suffix}", OpKind.ATTN_SOFTMAX, [s], **kw)
            contexts.append(b.add(f"attn_context{suffix}", OpKind.ATTN_CONTEXT, [p, cache], **kw))
        else:                    # gpt-oss's sinks: one learned logit per head joins each softmax
            contexts.append(b.add(f"attention{suffix}", OpKind.ATTENTION, [rope, cache],
                                  params=a.num_heads if a.attention_sinks else 0, sinks=a.attention_sinks, **kw))
    out = b.matmul("o_proj", contexts, a.hidden_size, a.q_dim, a.out_bias)
    return _collective(b, "allreduce_attn", out, OpKind.ALL_REDUCE, a.hidden_size, b.tp)


def attention_groups(a: Architecture) -> list[tuple[str, int, bool]]:
    """(name suffix, layers, local?) of the attention operators: one for all layers, or local
    ("_local": the sliding-window or chunked layers) and global ones when the model mixes them."""
    if a.local_layers == 0:
        return [("", a.num_layers, False)]
    if a.global_layers == 0:
        return [("", a.num_layers, True)]
    return [("_local", a.local_layers, True), ("", a.global_layers, False)]


def _mla_block(b: _Builder, a: Architecture, x: str) -> str:
    """Multi-head latent attention (DeepSeek-V2/V3). The cache holds one compressed latent
    (kv_lora_rank) and one shared rotary key (qk_rope_head_dim) per token. Prefill expands
    the latent into per-head keys and values; decode absorbs the up-projections into the
    query and output instead and attends over the latent directly."""
    h, heads = a.hidden_size, a.num_heads
    rope, nope, v, lora = a.qk_rope_head_dim, a.qk_nope_head_dim, a.v_head_dim, a.kv_lora_rank
    q = x
    if a.q_lora_rank:
        q = b.matmul("q_a_proj", x, a.q_lora_rank, h, False)
        q = b.norm("q_a_norm", q, a.q_lora_rank, "rmsnorm")
    q = b.matmul("q_b_proj", q, heads * (nope + rope), a.q_lora_rank or h, False)
    kv = b.matmul("kv_a_proj", x, lora + rope, h, False)
    kv = b.norm("kv_a_norm", kv, lora, "rmsnorm")
    rot = b.add("rotary", OpKind.ROTARY, [q, kv], width=(heads + 1) * rope, rw_width=heads * rope + rope)
    cache = b.add("kv_write", OpKind.KV_WRITE, [rot], width=lora + rope)
    # prefill: expand the latent to per-head keys (nope) and values, ordinary attention
    expand = b.matmul("kv_b_proj", cache, heads * (nope + v), lora, False, phase="prefill")
    ctx_p = b.add("attention", OpKind.ATTENTION, [rot, expand], phase="prefill", heads=heads, kv_heads=heads,
                  head_dim=nope + rope, v_dim=v)
    # decode: absorb W_UK into the query and W_UV into the output; attend over the latent
    absorb = b.matmul("q_absorb", rot, lora, nope, False, owns_weight=False, phase="decode", per_head=heads)
    ctx_d = b.add("attention_latent", OpKind.ATTENTION, [absorb, cache], phase="decode", heads=heads, kv_heads=1,
                  head_dim=lora + rope, v_dim=lora, latent=True)
    up_v = b.matmul("v_absorb", ctx_d, v, lora, False, owns_weight=False, phase="decode", per_head=heads)
    out = b.matmul("o_proj", [ctx_p, up_v], h, heads * v, a.out_bias)
    return _collective(b, "allreduce_attn", out, OpKind.ALL_REDUCE, h, b.tp)


def _dense_mlp(b: _Builder, a: Architecture, x: str, ffn: int, prefix: str = "", repeat: int | None = None) -> str:
    """A dense MLP of ``ffn`` columns: gated (SwiGLU) or not; ``prefix`` names a shared expert."""
    kw = dict(repeat=repeat) if repeat is not None else {}
    if a.gated_mlp:
        up = b.matmul(f"{prefix}gate_up_proj", x, 2 * ffn, a.hidden_size, a.mlp_bias, **kw)
        act = b.add(f"{prefix}act_mul", OpKind.ACTIVATION, [up], width=ffn, gated=True, **kw)
    else:
        up = b.matmul(f"{prefix}up_proj", x, ffn, a.hidden_size, a.mlp_bias, **kw)
        act = b.add(f"{prefix}act", OpKind.ACTIVATION, [up], width=ffn, gated=False, **kw)
    return b.matmul(f"{prefix}down_proj", act, a.hidden_size, ffn, a.mlp_bias, **kw)


def _moe_mlp(b: _Builder, a: Architecture, x: str, repeat: int) -> str:
    """Router, top-k dispatch, the touched experts as grouped GEMMs (weights read once per
    touched expert: the EXP feature), shared experts, combine. With expert parallelism the
    experts split over ep devices and tokens travel there and back by all-to-all."""
    h, k = a.hidden_size, a.experts_per_token
    experts_here = a.num_experts // b.ep
    router = b.matmul("router", x, a.num_experts, h, a.router_bias, repeat=repeat)
    route = b.add("moe_route", OpKind.MOE_ROUTE, [router], repeat=repeat, width=a.num_experts, top_k=k, hidden=h)
    sent = _collective(b, "moe_dispatch", route, OpKind.ALL_TO_ALL, k * h, b.ep, repeat=repeat)
    f = a.expert_ffn_size
    up_w, down_w = 2 * f * h + (2 * f if a.expert_bias else 0), h * f + (h if a.expert_bias else 0)  # + biases
    up = b.add("experts_gate_up", OpKind.EXPERT_MATMUL, [sent], repeat=repeat, n=2 * f, k=h, m="etok", bias=False,
               weight_elements=up_w, params=experts_here * up_w, top_k=k, ep=b.ep)
    act = b.add("experts_act_mul", OpKind.ACTIVATION, [up], repeat=repeat, width=f * k, gated=True)
    down = b.add("experts_down", OpKind.EXPERT_MATMUL, [act], repeat=repeat, n=h, k=f, m="etok", bias=False,
                 weight_elements=down_w, params=experts_here * down_w, top_k=k, ep=b.ep)
    back = _collective(b, "moe_gather", down, OpKind.ALL_TO_ALL, k * h, b.ep, repeat=repeat)
    out = b.add("moe_combine", OpKind.MOE_COMBINE, [back], repeat=repeat, width=h, top_k=k)
    if a.shared_ffn_size:
        shared = [_dense_mlp(b, a, x, a.shared_ffn_size, prefix="shared_", repeat=repeat)]
        if a.shared_expert_gate:          # sigmoid(x @ w) scales the shared expert's output
            shared.append(b.matmul("shared_gate", x, 1, h, False, repeat=repeat))
        out = b.add("moe_add_shared", OpKind.RESIDUAL_ADD, [out, *shared], repeat=repeat, width=h)
    return out


def _mlp_block(b: _Builder, a: Architecture, x: str) -> str:
    if not a.is_moe:
        out = _dense_mlp(b, a, x, a.ffn_size)
    else:
        moe = _moe_mlp(b, a, x, a.moe_layers)
        dense_count = a.num_layers - a.moe_layers
        out = moe
        if dense_count:            # DeepSeek's first layers: a dense MLP instead
            dense = _dense_mlp(b, a, x, a.ffn_size, prefix="dense_", repeat=dense_count)
            b.g.add_node("mlp_out", kind=None, repeat=0, params=0, in_layer=True, phase="both")
            b.g.add_edges_from([(moe, "mlp_out"), (dense, "mlp_out")])
            out = "mlp_out"
    return _collective(b, "allreduce_mlp", out, OpKind.ALL_REDUCE, a.hidden_size, b.tp)


def shard(arch: Architecture, tp: int) -> Architecture:
    """The slice of the model one of ``tp`` tensor-parallel devices holds (Megatron style:
    heads and FFN columns split, experts' FFN columns too; KV heads split, or replicated
    when fewer than tp; an MLA latent cache is replicated). Raises WorkloadError("tp", ...)
    when tp does not split it (specs/consistency.tp_problem)."""
    if tp == 1:
        return arch
    problem = tp_problem(arch, tp)
    if problem:
        raise WorkloadError("tp", problem)
    kv = arch.num_kv_heads
    return arch.model_copy(update={"num_heads": arch.num_heads // tp,
                                   "num_kv_heads": arch.num_kv_heads // tp if arch.is_mla else max(1, kv // tp),
                                   "ffn_size": arch.ffn_size // tp, "expert_ffn_size": arch.expert_ffn_size // tp,
                                   "shared_ffn_size": arch.shared_ffn_size // tp})


def build(arch: Architecture, unfused_attention: bool = False, tp: int = 1, ep: int = 1) -> nx.DiGraph:
    """Graph of the model as one of ``tp`` tensor-parallel devices runs it; layer nodes carry
    ``repeat = num_layers``. The embedding and the LM head are split by vocabulary: the
    embedding's partial rows are all-reduced, the head's logits all-gathered."""
    full = arch
    problem = ep_problem(arch, ep)
    if problem:
        raise WorkloadError("ep", problem)
    a = shard(arch, tp)
    b = _Builder(a)
    b.tp, b.ep = tp, ep
    h = a.hidden_size
    vocab_shard = -(-full.vocab_size // tp)      # vocabulary-parallel embedding and head
    x = b.add("embed_tokens", OpKind.EMBEDDING, [], layer=False, params=vocab_shard * h, width=h)
    x = _collective(b, "allreduce_embed", x, OpKind.ALL_REDUCE, h, tp, layer=False)
    if a.positions == "learned":
        pos = b.add("embed_positions", OpKind.EMBEDDING, [], layer=False, params=a.learned_positions * h, width=h)
        x = b.add("add_positions", OpKind.RESIDUAL_ADD, [x, pos], layer=False, width=h)
    b.g.add_node("layer_in", kind=None, repeat=a.num_layers, params=0, in_layer=True, phase="both")  # residual in
    b.g.add_edge(x, "layer_in")
    n1 = b.norm("input_norm", "layer_in", h, a.norm)
    attn = _attention_block(b, a, n1, unfused_attention)
    if a.sandwich_norm:         # Gemma 2/3: the attention output is normed before the residual add
        attn = b.norm("attn_out_norm", attn, h, a.norm)
    if a.parallel_block:        # GPT-J: x + attn(ln(x)) + mlp(ln(x)); GPT-NeoX, Falcon 40B: mlp(ln2(x))
        mlp_in = b.norm("mlp_norm", "layer_in", h, a.norm) if a.parallel_mlp_norm else n1
        mlp = _mlp_block(b, a, mlp_in)
        r1 = b.add("residual_attn", OpKind.RESIDUAL_ADD, ["layer_in", attn], width=h)
    else:
        r1 = b.add("residual_attn", OpKind.RESIDUAL_ADD, ["layer_in", attn], width=h)
        n2 = b.norm("post_attention_norm", r1, h, a.norm)
        mlp = _mlp_block(b, a, n2)
    if a.sandwich_norm:
        mlp = b.norm("mlp_out_norm", mlp, h, a.norm)
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


def active_parameter_count(graph: nx.DiGraph) -> int:
    """Parameters one token uses: a MoE layer's top-k experts instead of all of them."""
    total = 0
    for _, d in graph.nodes(data=True):
        per_instance = d["weight_elements"] * d["top_k"] if d["kind"] == OpKind.EXPERT_MATMUL else d["params"]
        total += per_instance * d["repeat"]
    return total
