"""The workload options shared by ``llmsim predict``, ``compare`` and ``roofline``."""
from __future__ import annotations

import argparse


def add_workload_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default="pytorch-ref", help="software stack profile (default: pytorch-ref)")
    p.add_argument("--batch", type=int, default=8, help="sequences per batch (default: 8)")
    p.add_argument("--prompt", type=int, default=1024, help="prompt tokens per sequence (default: 1024)")
    p.add_argument("--output", type=int, default=128, help="generated tokens per sequence (default: 128)")
    p.add_argument("--weight-dtype", default="bf16", help="weights: fp32 bf16 fp16 fp8 int8 int4")
    p.add_argument("--activation-dtype", default="bf16", help="activations / compute dtype")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache dtype")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel devices (default: 1)")
    p.add_argument("--pp", type=int, default=1, help="pipeline stages (default: 1)")
    p.add_argument("--dp", type=int, default=1, help="data-parallel replicas; the batch is split over them")
    p.add_argument("--ep", type=int, default=1, help="expert-parallel devices (MoE experts split over them)")
    p.add_argument("--microbatches", type=int, default=1, help="pipeline microbatches (default: 1)")
    p.add_argument("--draft-model", help="speculative decoding: the draft model")
    p.add_argument("--draft-tokens", type=int, default=4, help="tokens drafted per iteration (default: 4)")
    p.add_argument("--acceptance", type=float, default=0.7, help="per-token acceptance rate (default: 0.7)")
    p.add_argument("--format", choices=["table", "json"], default="table")


def workload_kwargs(args) -> dict:
    """The Workload fields (specs.workload) the options give; the stack is ``args.stack``."""
    return dict(batch=args.batch, prompt=args.prompt, output=args.output,
                weight_dtype=args.weight_dtype, activation_dtype=args.activation_dtype, kv_dtype=args.kv_dtype,
                tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, microbatches=args.microbatches,
                draft_model=args.draft_model, draft_tokens=args.draft_tokens, acceptance=args.acceptance)
