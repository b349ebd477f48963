"""Microbenchmarks beyond the dense bf16 envelope: what FP8, long-context and MoE runs call.

(a) fp8_matmul: the W8A8 linear of the reference stack's FP8 variant at every (N, K) of the
    given models and M in 1..16384: the per-token activation quantization alone
    (``quantize_rowwise``), ``torch._scaled_mm`` rowwise alone, and the bf16 matmul of the
    same shape in the same run (the ratio needs no other file);
(b) attention: decode attention (the grouped SDPA call over C + 1 cached positions) over a
    grid of batch x KV-head layouts x context up to 131,072, and causal prefill attention of
    one sequence up to 65,536 tokens; rows as micro.py's ``attention`` rows, so the same
    reader takes them, plus ``blocks`` = batch x kv_heads (the thread blocks a kernel that
    does not split the sequence launches);
(c) grouped_mm: ``torch._grouped_mm`` over the expert-sorted tokens for each MoE model's
    gate+up and down weights, by tokens per expert and by how many experts hold tokens;
(d) moe_routing: the routing chain (router matmul, topk, fp32 softmax, argsort, scatter_add_
    counts, cumsum, gather, index_add_) without the expert GEMMs, by tokens;
(e) fp8_energy: NVML energy of 8192^3 GEMM loops in bf16 and FP8 and of tiny kernels, one run;
(f) eager_chains: the eager (host-bound) launch rate of the chains the FP8 and MoE layers add,
    on tiny tensors as micro.py's ``eager`` section times single ops: the W8A8 activation
    quantization, the routing chain, the combine chain and one grouped GEMM, beside three of
    the dense ops (matmul, rms_norm, add) in the same run, so that a chain's host cost per
    kernel is known relative to the dense ops' on the same host;
(g) gemv_energy: NVML energy of loops of the decode-sized GEMMs that stream weights below the
    dense GEMV's rate (the grouped expert GEMMs at a few tokens an expert, the FP8 GEMV path)
    beside a bf16 GEMV and tiny kernels in the same run: their own J per byte.
Every timing is a CUDA-graph replay of n_inner calls (micro.py's method), median of the
replays per call; the longest prefills are timed by CUDA events around single calls.
Kernel counts per call come from the profiler (gpu.count_kernels).

    python -m validation.harness.micro_beyond --out DIR [--budget-s N] [--quick]
writes ``micro-beyond-<gpu-slug>.json`` (schema llmsim-harness-micro/1) and a log.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from . import gpu as G
from .beyond_loops import BeyondLoops
from .fp8 import fp8_weight, quantize_rowwise
from .jsonfile import write_json
from .micro import Bench, _copies, _n_inner
from .moe import MOE_SHAPES, combine, route
from .runlog import log

MiB = 1 << 20
GiB = 1 << 30

MATMUL_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
QUICK_M = [1, 64, 4096]
# (heads, kv_heads, head_dim): llama-3.2-1b, llama-3.1-8b / mistral / mixtral, llama-2-7b (MHA),
# llama-3.1-70b, qwen3-30b-a3b
ATTN_LAYOUTS = [(32, 8, 64), (32, 8, 128), (32, 32, 128), (64, 8, 128), (32, 4, 128)]
DECODE_B = [1, 2, 4, 16, 64, 256]
DECODE_C = [512, 2048, 8192, 32768, 131072]
PREFILL_S = [1024, 4096, 16384, 32768, 65536]
QUICK_DECODE = [(1, 8192), (16, 2048)]
QUICK_PREFILL = [4096]
MAX_LAYER_KV_BYTES = 24 * GiB   # one layer's K + V in a decode point
# (label, experts, top_k, hidden, moe ffn): mixtral-8x7b, qwen3-30b-a3b
TOKENS_PER_EXPERT = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
ROUTING_TOKENS = [1, 4, 16, 64, 256, 1024, 4096, 16384]
FP8_SHAPES = {  # (N, K): labels; llama-3.1-8b and llama-3.1-70b linear layers
    (6144, 4096): ["llama-3.1-8b:qkv"], (4096, 4096): ["llama-3.1-8b:o"],
    (28672, 4096): ["llama-3.1-8b:gate_up"], (4096, 14336): ["llama-3.1-8b:down"],
    (10240, 8192): ["llama-3.1-70b:qkv"], (8192, 8192): ["llama-3.1-70b:o"],
    (57344, 8192): ["llama-3.1-70b:gate_up"], (8192, 28672): ["llama-3.1-70b:down"],
}
class Beyond(BeyondLoops, Bench):
    def __init__(self, env: dict, log, deadline: float, quick: bool = False):
        super().__init__(env, log, deadline, quick, {"fp8_matmul": [], "attention": [], "grouped_mm": [],
                                                     "moe_routing": [], "eager_chains": {}, "kernel_counts": {},
                                                     "errors": []})

    def _bench(self, launch, t_est: float, copies: int = 1):
        """(median s, min s, calls per replay, replays) of launch(i) in a CUDA graph; calls
        of 20 ms or more are timed one by one with CUDA events (3 after a warm-up)."""
        if t_est >= 20e-3:
            ts = G.time_events(lambda: launch(0), reps=3, warmups=1)
            return sorted(ts)[1], min(ts), 1, 3
        n_in = _n_inner(t_est, copies)
        med, mn, reps = G.bench_graph(launch, n_in)
        return med, mn, n_in, reps

    # ------------------------------------------------------------------ (a)
    def fp8_matmul(self, shapes: dict = FP8_SHAPES):
        import torch

        t0 = time.perf_counter()
        ms = QUICK_M if self.quick else MATMUL_M
        xs = {}
        done_quant = set()
        for (n, k), labels in sorted(shapes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if self.left() < 0:
                self._skip("fp8_matmul", dict(n=n, k=k))
                continue
            try:
                ncop = _copies(n * k, self.l2)
                ws = [fp8_weight(n, k) for _ in range(ncop)]
                wb = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k, self.l2))]
                if k not in xs:
                    xs.clear()
                    torch.cuda.empty_cache()
                    xs[k] = torch.randn(max(ms), k, device="cuda", dtype=torch.bfloat16)
                for m in ms:
                    x = xs[k][:m]
                    xq, sx = quantize_rowwise(x)
                    flops = 2.0 * m * n * k
                    est = max(flops / (0.7 * 2 * self.peak), (n * k + m * k) / (0.8 * self.bw), 4e-6)
                    row = dict(n=n, k=k, m=m, used_by=labels, weight_copies=ncop, flops=flops,
                               bytes=n * k + m * k + 2 * m * n + 4 * (m + n))
                    med, mn, n_in, reps = self._bench(
                        lambda i: torch._scaled_mm(xq, ws[i % ncop][0].t(), scale_a=sx, scale_b=ws[i % ncop][1],
                                                   out_dtype=torch.bfloat16), est, ncop)
                    row.update(scaled_mm_s=med, scaled_mm_min_s=mn, calls_per_replay=n_in, replays=reps,
                               flop_per_s=flops / med)
                    med, mn, _, _ = self._bench(lambda i: x @ wb[i % len(wb)].t(), est * 2, len(wb))
                    row.update(bf16_s=med, bf16_min_s=mn, bf16_bytes=2 * (n * k + m * k + m * n))
                    if (m, k) not in done_quant:
                        done_quant.add((m, k))
                        qmed, qmn, _, _ = self._bench(lambda i: quantize_rowwise(x), 3 * m * k * 4 / self.bw + 8e-6)
                        row.update(quantize_s=qmed, quantize_min_s=qmn, quantize_elements=m * k)
                    self.res["fp8_matmul"].append(row)
                del ws, wb
            except Exception as e:     # an unsupported shape or dtype: recorded, the run goes on
                self._failed("fp8_matmul", dict(n=n, k=k), e)
            torch.cuda.empty_cache()
        x = torch.randn(64, 4096, device="cuda", dtype=torch.bfloat16)
        self.res["kernel_counts"]["quantize_rowwise"] = G.count_kernels(lambda: quantize_rowwise(x))
        self._done("fp8_matmul", t0)

    # ------------------------------------------------------------------ (b)
    def attention(self, layouts=ATTN_LAYOUTS):
        import torch
        import torch.nn.functional as F

        from .model import _sdpa_ctx

        t0 = time.perf_counter()
        dec = QUICK_DECODE if self.quick else [(b, c) for c in DECODE_C for b in DECODE_B]
        pre = QUICK_PREFILL if self.quick else PREFILL_S
        for h, kv, hd in layouts:
            for b, c in dec:
                what = dict(phase="decode", heads=h, kv_heads=kv, head_dim=hd, batch=b, context_len=c)
                length = c + 1
                maxlen = (length + 63) // 64 * 64
                layer_bytes = 2 * b * kv * maxlen * hd * 2
                if layer_bytes > MAX_LAYER_KV_BYTES:
                    self._skip("attention", what, "one layer's KV > 24 GiB")
                    continue
                if self.left() < 0:
                    self._skip("attention", what)
                    continue
                try:
                    ncop = _copies(layer_bytes, self.l2, cap=64)
                    kc = torch.randn(ncop, b, kv, maxlen, hd, device="cuda", dtype=torch.bfloat16)
                    vc = torch.randn_like(kc)
                    qg = torch.randn(b, h, hd, device="cuda", dtype=torch.bfloat16).view(b, kv, h // kv, hd)
                    byts = 2 * b * kv * length * hd * 2 + 2 * 2 * b * h * hd

                    def launch(i):
                        with _sdpa_ctx("cuda"):
                            return F.scaled_dot_product_attention(qg, kc[i % ncop, :, :, :length], vc[i % ncop, :, :, :length])

                    med, mn, n_in, reps = self._bench(launch, max(byts / (0.5 * self.bw), 5e-6), ncop)
                    self.res["attention"].append(dict(
                        what, attended_positions=length, blocks=b * kv, used_by=[], cache_copies=ncop,
                        calls_per_replay=n_in, replays=reps, latency_s=med, latency_min_s=mn,
                        flops=4.0 * b * h * hd * length, bytes=byts, bytes_per_s=byts / med))
                    del kc, vc, qg
                except Exception as e:
                    self._failed("attention", what, e)
                torch.cuda.empty_cache()
            for s in pre:
                what = dict(phase="prefill", heads=h, kv_heads=kv, head_dim=hd, batch=1, seq_len=s)
                if self.left() < 0:
                    self._skip("attention", what)
                    continue
                try:
                    q = torch.randn(1, s, h, hd, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
                    k = torch.randn(1, s, kv, hd, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
                    v = torch.randn(1, s, kv, hd, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
                    flops = 4.0 * h * hd * s * (s + 1) / 2

                    def launch(i):
                        with _sdpa_ctx("cuda"):
                            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=kv < h)

                    med, mn, n_in, reps = self._bench(launch, max(flops / (0.4 * self.peak), 5e-6))
                    self.res["attention"].append(dict(
                        what, causal=True, used_by=[], calls_per_replay=n_in, replays=reps, latency_s=med,
                        latency_min_s=mn, flops=flops, bytes=2 * s * hd * (2 * h + 2 * kv), flop_per_s=flops / med))
                    del q, k, v
                except Exception as e:
                    self._failed("attention", what, e)
                torch.cuda.empty_cache()
        self._done("attention", t0)

    # ------------------------------------------------------------------ (c)
    def grouped_mm(self, shapes=MOE_SHAPES):
        import torch

        t0 = time.perf_counter()
        tpe = [1, 16, 256] if self.quick else TOKENS_PER_EXPERT
        for label, experts, top_k, hidden, ffn in shapes:
            for part, n, k in (("gate_up", 2 * ffn, hidden), ("down", hidden, ffn)):
                try:
                    w = torch.randn(experts, n, k, device="cuda", dtype=torch.bfloat16)     # [E, N, K] as stored
                except Exception as e:
                    self._failed("grouped_mm", dict(model=label, part=part), e)
                    continue
                for active in sorted({top_k, experts}):
                    for t in tpe:
                        what = dict(model=label, part=part, experts=experts, active_experts=active, tokens_per_expert=t)
                        tokens = active * t
                        if tokens > 65536:
                            continue
                        if self.left() < 0:
                            self._skip("grouped_mm", what)
                            continue
                        try:
                            x = torch.randn(tokens, k, device="cuda", dtype=torch.bfloat16)
                            counts = torch.zeros(experts, dtype=torch.int32, device="cuda")
                            counts[:active] = t
                            offs = torch.cumsum(counts, 0, dtype=torch.int32)
                            wt = w.transpose(-2, -1)
                            flops = 2.0 * tokens * n * k
                            byts = 2 * (active * n * k + tokens * (n + k))
                            med, mn, n_in, reps = self._bench(lambda i: torch._grouped_mm(x, wt, offs=offs),
                                                              max(flops / (0.6 * self.peak), byts / (0.8 * self.bw), 8e-6))
                            self.res["grouped_mm"].append(dict(
                                what, n=n, k=k, tokens=tokens, flops=flops, bytes=byts, calls_per_replay=n_in,
                                replays=reps, latency_s=med, latency_min_s=mn, flop_per_s=flops / med,
                                bytes_per_s=byts / med))
                            del x
                        except Exception as e:
                            self._failed("grouped_mm", what, e)
                del w
                torch.cuda.empty_cache()
        self._done("grouped_mm", t0)

    # ------------------------------------------------------------------ (d)
    def moe_routing(self, shapes=MOE_SHAPES):
        import torch

        t0 = time.perf_counter()
        token_counts = [1, 256, 4096] if self.quick else ROUTING_TOKENS
        for label, experts, top_k, hidden, _ in shapes:
            router = torch.randn(experts, hidden, device="cuda", dtype=torch.bfloat16) * hidden ** -0.5
            for tokens in token_counts:
                what = dict(model=label, experts=experts, top_k=top_k, hidden=hidden, tokens=tokens)
                if self.left() < 0:
                    self._skip("moe_routing", what)
                    continue
                try:
                    x = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)

                    def chain(i):            # the MoE MLP of moe.py without its two grouped GEMMs
                        weights, order, offs, token_of = route(x, router, experts, top_k)
                        return combine(x, x.index_select(0, token_of), weights, order, token_of), offs

                    byts = 2 * (tokens * hidden * (3 + 2 * top_k) + experts * hidden)
                    med, mn, n_in, reps = self._bench(chain, max(byts / (0.5 * self.bw), 40e-6))
                    self.res["moe_routing"].append(dict(what, bytes=byts, calls_per_replay=n_in, replays=reps,
                                                        latency_s=med, latency_min_s=mn))
                    if tokens == token_counts[0]:
                        self.res["kernel_counts"][f"moe_routing:{label}"] = G.count_kernels(lambda: chain(0))
                    del x
                except Exception as e:
                    self._failed("moe_routing", what, e)
                torch.cuda.empty_cache()
        self._done("moe_routing", t0)

    def _done(self, section: str, t0: float) -> None:
        self.res["section_time_s"][section] = time.perf_counter() - t0
        self.log(f"  {section}: {len(self.res.get(section) or [])} timings in {time.perf_counter() - t0:.1f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--budget-s", type=float, default=300.0, help="wall-clock budget from start (s)")
    ap.add_argument("--quick", action="store_true", help="a few points of each section (smoke test)")
    ap.add_argument("--sections", default="fp8_matmul,attention,grouped_mm,moe_routing")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    import torch

    from simulator.specs.measurement import MICRO_SCHEMA

    from . import HARNESS_VERSION

    if not torch.cuda.is_available():
        print("error: no CUDA device visible to torch", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.cuda.init()
    nvml = G.Nvml()
    env = G.environment(nvml)
    log.open(out / f"micro-beyond-{env['gpu_slug']}.log")
    env["idle_power"] = G.idle_power(nvml, 1.0)
    env["ceilings"] = dict(matmul_bf16_8192=G.matmul_ceiling(), copy_2gib=G.copy_ceiling())
    log(f"micro_beyond {HARNESS_VERSION} on {env['gpu_name']} ({env['sm_count']} SMs); ceilings "
        f"{env['ceilings']['matmul_bf16_8192']['flop_per_s'] / 1e12:.1f} TFLOP/s, "
        f"{env['ceilings']['copy_2gib']['bytes_per_s'] / 1e9:.0f} GB/s")
    beyond = Beyond(env, log, deadline=t_start + args.budget_s - 10.0, quick=args.quick)
    path = out / f"micro-beyond-{env['gpu_slug']}.json"
    doc = dict(schema=MICRO_SCHEMA, environment=env,
               run=dict(harness_version=HARNESS_VERSION, quick=args.quick, status="running", sections=args.sections,
                        command=" ".join(["python -m validation.harness.micro_beyond"] + (argv or sys.argv[1:]))))
    for section in args.sections.split(","):
        try:
            getattr(beyond, section)()
        except Exception as e:
            beyond.res["errors"].append(dict(section=section, error=f"{type(e).__name__}: {e}"[:500],
                                             traceback=traceback.format_exc()[-2000:]))
            log(f"  {section}: ERROR {type(e).__name__}: {e}")
        doc.update(beyond.res)
        doc["run"]["elapsed_s"] = time.perf_counter() - t_start
        write_json(path, doc)
    doc["run"]["status"] = "complete" if not beyond.res["skipped"] and not beyond.res["errors"] else "partial"
    write_json(path, doc)
    log(f"done in {time.perf_counter() - t_start:.0f} s: {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
