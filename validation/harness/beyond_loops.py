"""micro_beyond's loop sections (a mixin of its Beyond bench): NVML power loops and eager
launch rates, each measured beside a reference in the same run.

(e) fp8_energy: 8192^3 GEMM loops in bf16 and FP8 and a graph of tiny kernels;
(f) eager_chains: the eager launch rate of the FP8 quantization, MoE route/combine chains and a
    grouped GEMM beside three dense ops (matmul, rms_norm, add);
(g) gemv_energy: decode-sized weight-streaming GEMMs (grouped expert GEMMs, the FP8 GEMV) beside
    a bf16 GEMV and tiny kernels.
"""
from __future__ import annotations

import statistics
import time

from . import gpu as G
from .fp8 import fp8_weight, quantize_rowwise, quantize_weight
from .micro import eager_rate
from .moe import MOE_SHAPES, combine, route


class BeyondLoops:
    """Sections that need self.peak, self.res, self.log and self._failed (micro.Bench's)."""

    # ------------------------------------------------------------------ (e)
    def fp8_energy(self, min_s: float = 2.5):
        """NVML energy over >= min_s loops of an 8192^3 GEMM in bf16 and as FP8 rowwise
        scaled_mm, and of a graph of tiny kernels (the device awake, next to no work), in one
        run: the FP8 J/FLOP against the bf16 one measured beside it."""
        import torch

        t0 = time.perf_counter()
        nvml = G.Nvml()
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        aq, sa = quantize_rowwise(a)
        bq, sb = fp8_weight(n, n)
        tiny_a = torch.randn(256, device="cuda")
        tiny_b = torch.randn(256, device="cuda") * 1e-3
        g, _ = G.capture_graph(lambda: [tiny_a.add_(tiny_b) for _ in range(1000)], warmups=1)
        flops = 2.0 * n ** 3
        res = {"tiny_kernels": G.energy_loop(nvml, g.replay, 1e-3, min_s),
               "matmul_bf16": G.energy_loop(nvml, lambda: a @ b.t(), flops / self.peak, min_s),
               "matmul_fp8": G.energy_loop(nvml, lambda: torch._scaled_mm(aq, bq.t(), scale_a=sa, scale_b=sb,
                                                                          out_dtype=torch.bfloat16),
                                          flops / (2 * self.peak), min_s)}
        for key, bytes_ in (("matmul_bf16", 3 * 2 * n * n), ("matmul_fp8", 2 * n * n + 2 * n * n)):
            res[key].update(flops_per_call=flops, bytes_per_call=float(bytes_),
                            flop_per_s=flops / res[key]["time_per_call_s"])
        res["tiny_kernels"].update(flops_per_call=0.0, bytes_per_call=0.0)
        self.res["fp8_energy"] = res
        self.log("  fp8_energy: " + ", ".join(f"{k} {v.get('power_mean_w') or 0:.0f} W" for k, v in res.items()))
        self.res["section_time_s"]["fp8_energy"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ (g)
    def gemv_energy(self, min_s: float = 2.5):
        """Energy per call of weight-streaming loops at decode sizes (bytes = weights + inputs +
        outputs once), each >= min_s, beside tiny kernels (idle + busy)."""
        import torch

        t0 = time.perf_counter()
        nvml = G.Nvml()
        bf = torch.bfloat16
        tiny_a = torch.randn(256, device="cuda")
        tiny_b = torch.randn(256, device="cuda") * 1e-3
        g, _ = G.capture_graph(lambda: [tiny_a.add_(tiny_b) for _ in range(1000)], warmups=1)
        res = {"tiny_kernels": dict(G.energy_loop(nvml, g.replay, 1e-3, min_s), bytes_per_call=0.0)}
        n, k = 28672, 4096
        w = torch.randn(n, k, device="cuda", dtype=bf) * k ** -0.5
        x = torch.randn(1, k, device="cuda", dtype=bf)
        wq, sw = quantize_weight(w)
        xq, sx = quantize_rowwise(x)
        loops = {"gemv_bf16": (lambda: x @ w.t(), 2.0 * n * k),
                 "gemv_fp8": (lambda: torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=bf), 1.0 * n * k)}
        for label, experts, _, hidden, ffn in MOE_SHAPES:
            for tokens_each in (1, 4):
                we = torch.randn(experts, 2 * ffn, hidden, device="cuda", dtype=bf).transpose(1, 2)
                xe = torch.randn(experts * tokens_each, hidden, device="cuda", dtype=bf)
                offs = torch.cumsum(torch.full((experts,), tokens_each, dtype=torch.int32, device="cuda"), 0,
                                    dtype=torch.int32)
                loops[f"grouped_{label}_{tokens_each}"] = (
                    (lambda we=we, xe=xe, offs=offs: torch._grouped_mm(xe, we, offs=offs)),
                    2.0 * experts * 2 * ffn * hidden)
        for name, (fn, weight_bytes) in loops.items():
            try:
                t = statistics.median(G.time_events(fn, 5))
                res[name] = dict(G.energy_loop(nvml, fn, t, min_s), bytes_per_call=float(weight_bytes))
            except Exception as e:
                self._failed("gemv_energy", dict(loop=name), e)
        self.res["gemv_energy"] = res
        self.log("  gemv_energy: " + ", ".join(f"{k} {v.get('power_mean_w') or 0:.0f} W" for k, v in res.items()))
        self.res["section_time_s"]["gemv_energy"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ (f)
    def eager_chains(self, n_calls: int = 200):
        """Per chain: device seconds from the first to the last of n back-to-back eager calls / n
        (host-dispatch bound on tiny tensors), the host's own seconds per call, and the chain's
        kernels (profiler count)."""
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        bf = torch.bfloat16
        x = torch.randn(4, 64, device="cuda", dtype=bf)
        w = torch.randn(64, 64, device="cuda", dtype=bf)
        nw = torch.ones(64, device="cuda", dtype=bf)
        experts, top_k = 8, 2
        router = torch.randn(experts, 64, device="cuda", dtype=bf)
        wg = torch.randn(experts, 64, 64, device="cuda", dtype=bf).transpose(1, 2)
        weights, order, offs, token_of = route(x, router, experts, top_k)
        xs = x.index_select(0, token_of)
        chains = {
            "matmul": lambda: x @ w.t(), "rms_norm": lambda: F.rms_norm(x, (64,), nw, 1e-5), "add": lambda: x + x,
            "quantize": lambda: quantize_rowwise(x),
            "moe_route": lambda: route(x, router, experts, top_k),
            "moe_combine": lambda: combine(x, xs, weights, order, token_of),
            "grouped_mm": lambda: torch._grouped_mm(xs, wg, offs=offs),
        }
        res = {}
        for name, fn in chains.items():
            try:
                res[name] = dict(eager_rate(fn, n_calls), kernels=G.count_kernels(fn)["total"])
            except Exception as e:
                self._failed("eager_chains", dict(chain=name), e)
        self.res["eager_chains"] = res
        self.log("  eager_chains: " + ", ".join(f"{k} {v['eager_per_call_s'] * 1e6:.1f} us/{v['kernels']}"
                                                for k, v in res.items()))
        self.res["section_time_s"]["eager_chains"] = time.perf_counter() - t0
