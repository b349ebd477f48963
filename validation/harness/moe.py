"""The mixture-of-experts MLP of the reference stack (reference-stack.md, "Mixture-of-experts layers").

For h [T, hidden] (the normed residual stream), E experts, top-k routing, expert FFN f:

    logits = h @ Wr.t()                          [T, E]      router matmul (bf16)
    top, ids = topk(logits, k)                   [T, k]
    w = softmax(top.float())                     [T, k]      fp32, over the k chosen logits
    order = argsort(ids.flatten())               [T k]       slots sorted by expert
    counts = zeros(E).scatter_add_(ids, 1)       [E]         no host sync: graph-capturable
    offs = cumsum(counts)                        [E]         int32 group ends
    token = order // k;  xs = h[token]           [T k, hidden]
    gu = grouped_mm(xs, Wgu.transpose(1, 2))     [T k, 2f]   Wgu [E, 2f, hidden]
    a = silu(gu[:, :f]) * gu[:, f:]              [T k, f]
    y = grouped_mm(a, Wd.transpose(1, 2))        [T k, hidden]   Wd [E, hidden, f]
    out = zeros_like(h).index_add_(token, y * w[order])

route() and combine() are also what validation/harness/micro_beyond.py times on its own. With random
weights routing is near uniform, so a batch of T tokens touches E (1 - (1 - k/E)^T) experts.
torch is imported inside the function.
"""
from __future__ import annotations

# Launches of one moe_mlp call at decode sizes, as the profiler counted them on an H200 (torch
# 2.11, mixtral-8x7b and qwen3-30b-a3b, 2026-12-01): router matmul; topk (gatherTopK + a
# bitonic sort); float; softmax; argsort (arange + bitonic sort); 3 device-to-device copies
# (the sorts' inputs); zeros and ones_like (2 int fills); scatter_add_; cumsum (scan init +
# scan); floor-divide; index_select; 2 x (prepare_grouped_gemm_data + grouped GEMM); silu; mul;
# weights[order]; to(bf16); mul; zeros_like; index_add_ = 29. Long sorts add radix passes.
ROUTED_MLP_KERNELS = 29
# (label, experts, top_k, hidden, moe ffn) of the MoE models the harness measures: mixtral-8x7b, qwen3-30b-a3b
MOE_SHAPES = [("mixtral-8x7b", 8, 2, 4096, 14336), ("qwen3-30b-a3b", 128, 8, 2048, 768)]


def route(h, w_router, experts: int, top_k: int):
    """(weights [T, k] fp32, order [T k], offs [E] int32, token_of [T k]): the routing chain
    up to the expert-sorted slots (the module docstring's first steps)."""
    import torch

    logits = h @ w_router.t()
    top, ids = torch.topk(logits, top_k, dim=-1)
    weights = torch.softmax(top.float(), dim=-1)
    flat = ids.reshape(-1)
    order = torch.argsort(flat)
    counts = torch.zeros(experts, dtype=torch.int32, device=h.device).scatter_add_(
        0, flat, torch.ones_like(flat, dtype=torch.int32))
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    return weights, order, offs, order // top_k


def combine(h, y, weights, order, token_of):
    """out [T, hidden] = sum over each token's slots of y (expert-sorted) x its routing weight."""
    import torch

    back = y * weights.reshape(-1)[order].unsqueeze(-1).to(h.dtype)
    return torch.zeros_like(h).index_add_(0, token_of, back)


def moe_mlp(h, w_router, w_gate_up, w_down, top_k: int):
    """The MoE MLP output [T, hidden] for h [T, hidden] (the module docstring's steps)."""
    import torch
    import torch.nn.functional as F

    experts, ffn = w_gate_up.shape[0], w_down.shape[-1]
    weights, order, offs, token_of = route(h, w_router, experts, top_k)
    xs = h.index_select(0, token_of)
    gate, up = torch._grouped_mm(xs, w_gate_up.transpose(1, 2), offs=offs).split(ffn, dim=-1)
    y = torch._grouped_mm(F.silu(gate) * up, w_down.transpose(1, 2), offs=offs)
    return combine(h, y, weights, order, token_of)
