"""Operator kinds as int codes (what the numba kernels see) and the cost-formula features.

Every operator's FLOPs and bytes are linear in nine features of a forward pass:
  ONE   1                          (weights read once per pass)
  SEQ   B, sequences in the batch  (e.g. the LM head on the last position only)
  TOK   T, new tokens this pass    (B x S in prefill, B in a decode step)
  PAIR  P, query-key pairs scored  (B x S(S+1)/2 causal prefill; B x (C+1) decode)
  KV    K, cached positions read   (B x S in prefill; B x (C+1) in a decode step)
  EXP   experts a MoE layer's tokens touch on one device: E_d (1 - (1 - k/E)^T)
  ETOK  tokens each touched expert processes: T k / (ep x EXP) (a grouped GEMM's rows)
  LPAIR pairs a local-attention layer scores (a query at c attends min(c + 1, W) keys in a
        sliding window, (c mod W) + 1 in chunks of W: phases.local_span)
  LKV   cached positions a local-attention layer reads (B x S in prefill; B x its span in decode)
so lowering once per model and precision makes any (B, S, C) cheap to evaluate. Global
(full-context) attention operators carry PAIR and KV, local ones LPAIR and LKV.
"""
from __future__ import annotations

import enum

ONE, SEQ, TOK, PAIR, KV, EXP, ETOK, LPAIR, LKV = range(9)
N_FEATURES = 9
WEIGHT_COLUMNS = [ONE, EXP]   # features whose bytes are weights (dense, and the touched experts')
KV_COLUMNS = [KV, LKV]        # features whose bytes are KV-cache reads (global and local layers)
FEATURE_NAMES = ("one", "seq", "tok", "pair", "kv", "exp", "etok", "lpair", "lkv")


class OpKind(enum.IntEnum):
    EMBEDDING = 0
    NORM = 1
    MATMUL = 2
    ROTARY = 3
    KV_WRITE = 4
    ATTENTION = 5          # flash-style fused QK^T, softmax, SV
    ATTN_SCORE = 6         # unfused: QK^T materialised
    ATTN_SOFTMAX = 7
    ATTN_CONTEXT = 8       # unfused: scores x V
    RESIDUAL_ADD = 9
    ACTIVATION = 10        # act(gate) * up, or act(x)
    LM_HEAD = 11
    SAMPLING = 12          # argmax over the vocabulary
    ALL_REDUCE = 13        # tensor-parallel partial sums (payload: the full tensor)
    ALL_GATHER = 14        # tensor-parallel shards -> full tensor (payload: the full tensor)
    SEND_RECV = 15         # pipeline stage boundary (payload: the activations)
    ALL_TO_ALL = 16        # expert-parallel token dispatch (payload: the tokens sent)
    EXPERT_MATMUL = 17     # grouped GEMM over the experts a batch touches
    MOE_ROUTE = 18         # top-k, softmax over the chosen logits, sort tokens by expert
    MOE_COMBINE = 19       # weight the expert outputs and scatter them back to tokens
    QUANTIZE = 20          # dynamic per-token quantization of a GEMM's input (W8A8: 16-bit stream -> 8-bit)
    @property
    def stack_name(self) -> str:
        """Name used by stack profiles (kernels_per_op, traffic_per_op)."""
        return _STACK_NAMES[self]

    @property
    def is_attention(self) -> bool:
        return self in (OpKind.ATTENTION, OpKind.ATTN_SCORE, OpKind.ATTN_SOFTMAX, OpKind.ATTN_CONTEXT)

    @property
    def is_collective(self) -> bool:
        return self in (OpKind.ALL_REDUCE, OpKind.ALL_GATHER, OpKind.SEND_RECV, OpKind.ALL_TO_ALL)

    @property
    def is_gemm(self) -> bool:
        return self in (OpKind.MATMUL, OpKind.LM_HEAD, OpKind.EXPERT_MATMUL)


_STACK_NAMES = {
    OpKind.EMBEDDING: "embedding", OpKind.NORM: "norm", OpKind.MATMUL: "matmul", OpKind.ROTARY: "rotary",
    OpKind.KV_WRITE: "kv_write", OpKind.ATTENTION: "attention", OpKind.ATTN_SCORE: "attention",
    OpKind.ATTN_SOFTMAX: "attention", OpKind.ATTN_CONTEXT: "attention", OpKind.RESIDUAL_ADD: "residual_add",
    OpKind.ACTIVATION: "activation", OpKind.LM_HEAD: "lm_head", OpKind.SAMPLING: "sampling",
    OpKind.ALL_REDUCE: "collective", OpKind.ALL_GATHER: "collective", OpKind.SEND_RECV: "collective",
    OpKind.ALL_TO_ALL: "collective", OpKind.EXPERT_MATMUL: "expert_matmul", OpKind.MOE_ROUTE: "moe_route",
    OpKind.MOE_COMBINE: "moe_combine", OpKind.QUANTIZE: "quantize",
}
