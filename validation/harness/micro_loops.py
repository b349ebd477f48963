"""Microbenchmark sections of whole passes and energy loops, (f) and (g) of micro.py's list:
the host cost per layer of the reference model's eager forward, whole passes of a synthetic
model, and the power and energy loops. A mixin of micro.Micro (its res, log, nvml, peak
and bandwidth)."""

from __future__ import annotations

import statistics
import time

from . import gpu as G
from .model import _sdpa_ctx

MiB = 1 << 20
GiB = 1 << 30


class LoopSections:
    # ------------------------------------------------------------------ (e3)
    def host_layer(self, reps: int = 20):
        """Host cost of the reference model's eager forward per layer: prefill of 1 x 8 tokens
        on a tiny model (hidden 128) with 2 and with 10 layers, device time by CUDA events;
        (t10 - t2) / 8 is one layer's time when the GPU work is negligible (host bound)."""
        import torch

        from .config import config_from_dict
        from .model import RefDecoder

        t0 = time.perf_counter()
        out = {}
        for layers in (2, 10):
            cfg = config_from_dict(f"tiny-{layers}", dict(
                model_type="llama", hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
                num_attention_heads=2, num_key_value_heads=1, head_dim=64, vocab_size=512))
            model = RefDecoder(cfg, max_positions=64)
            kc, vc = model.new_cache(1, 64)
            tokens = model.random_tokens(1, 8)
            for _ in range(3):
                model.prefill(tokens, kc, vc)
            times = []
            for _ in range(reps):
                G.sync()
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                model.prefill(tokens, kc, vc)
                e1.record()
                G.sync()
                times.append(e0.elapsed_time(e1) / 1000.0)
            out[layers] = statistics.median(times)
            kernels = cfg.kernels_per_layer()
            del model, kc, vc
        per_layer = (out[10] - out[2]) / 8
        self.res["host_layer"] = dict(what="eager prefill 1x8 of a tiny llama (hidden 128, 2 heads, 1 KV head)",
                                      prefill_2_layers_s=out[2], prefill_10_layers_s=out[10],
                                      per_layer_s=per_layer, kernels_per_layer=kernels,
                                      per_kernel_s=per_layer / kernels)
        self.res["section_time_s"]["host_layer"] = time.perf_counter() - t0
        self.log(f"  host layer: {per_layer * 1e6:.1f} us per layer, {per_layer / kernels * 1e6:.1f} us per kernel")

    # ------------------------------------------------------------------ (g2)
    SYNTHETIC = dict(model_type="llama", hidden_size=2560, intermediate_size=6912, num_hidden_layers=4,
                     num_attention_heads=20, num_key_value_heads=4, head_dim=128, vocab_size=32000)

    def synthetic_layers(self):
        """Whole passes of a synthetic 4-layer model whose shape is none of the validated
        models' (hidden 2560, 20 heads, 4 KV heads, FFN 6912): decode steps (one CUDA graph
        each) and eager prefills, timed like the end-to-end points. They show what kernels
        cost in the company of the others (launch gaps between different kernels, the host's
        eager launch rate at realistic tensor sizes), which isolated microbenchmarks miss."""
        import torch

        from .config import config_from_dict
        from .model import RefDecoder

        t0 = time.perf_counter()
        cfg = config_from_dict("synthetic-4l", dict(self.SYNTHETIC))
        model = RefDecoder(cfg, max_positions=4096 + 64)
        rows = []
        for B, C in ((1, 255), (4, 1023), (16, 511), (64, 255)):
            kc, vc = model.new_cache(B, C + 1 + 63)
            toks = model.random_tokens(B)
            g, out = G.capture_graph(lambda: model.decode(toks, C, kc, vc), warmups=3)
            ts = G.time_replays(g, 30, warm=3)
            rows.append(dict(phase="decode", batch=B, context_len=C, latency_s=statistics.median(ts),
                             latency_min_s=min(ts)))
            del g, out, kc, vc
        for B, S in ((1, 64), (1, 256), (4, 512), (1, 2048)):
            kc, vc = model.new_cache(B, S + 64)
            toks = model.random_tokens(B, S)
            ts = G.time_events(lambda: model.prefill(toks, kc, vc), 10, warmups=2)
            rows.append(dict(phase="prefill", batch=B, prompt_len=S, latency_s=statistics.median(ts),
                             latency_min_s=min(ts)))
            del kc, vc
        del model
        torch.cuda.empty_cache()
        self.res["synthetic"] = dict(config=dict(self.SYNTHETIC), kernels_per_layer=cfg.kernels_per_layer(),
                                     points=rows)
        self.res["section_time_s"]["synthetic"] = time.perf_counter() - t0
        self.log("  synthetic: " + ", ".join(f"{r['phase']} {r['latency_s'] * 1e3:.2f} ms" for r in rows))

    # ------------------------------------------------------------------ (f2)
    def energy(self, min_s: float = 1.6):
        """Energy of loops of kernels of other kinds than (f): a CUDA graph of tiny adds (the
        GPU busy with next to no work), a GEMV streaming a 512 MiB weight, a GEMM near the
        ridge point (M = 256), flash prefill attention and decode attention."""
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        if self.nvml.energy_mj() is None:
            self.res["energy"] = {"error": "NVML energy counter unavailable"}
            return
        res = {}
        bf = torch.bfloat16
        a = torch.randn(256, device="cuda", dtype=torch.float32)
        b = torch.randn(256, device="cuda", dtype=torch.float32) * 1e-3
        g, _ = G.capture_graph(lambda: [a.add_(b) for _ in range(1000)], warmups=1)
        r = G.energy_loop(self.nvml, g.replay, 1e-3, min_s)
        r.update(what="graph of 1000 tiny adds", flops_per_call=0.0, bytes_per_call=0.0)
        res["tiny_kernels"] = r
        w = torch.randn(16384, 16384, device="cuda", dtype=bf)
        x1 = torch.randn(1, 16384, device="cuda", dtype=bf)
        r = G.energy_loop(self.nvml, lambda: x1 @ w.t(), 16384 * 16384 * 2 / self.bw, min_s)
        r.update(what="GEMV 1 x 16384 @ 16384^2 bf16", flops_per_call=2.0 * 16384 ** 2,
                 bytes_per_call=2.0 * 16384 ** 2)
        res["gemv"] = r
        x256 = torch.randn(256, 16384, device="cuda", dtype=bf)
        r = G.energy_loop(self.nvml, lambda: x256 @ w.t(), 2 * 256 * 16384 ** 2 / self.peak, min_s)
        r.update(what="GEMM 256 x 16384 @ 16384^2 bf16", flops_per_call=2.0 * 256 * 16384 ** 2,
                 bytes_per_call=2.0 * (16384 ** 2 + 2 * 256 * 16384))
        res["gemm_m256"] = r
        del w, x1, x256
        q = torch.randn(4, 32, 4096, 128, device="cuda", dtype=bf)
        k = torch.randn(4, 8, 4096, 128, device="cuda", dtype=bf)
        v = torch.randn_like(k)

        def prefill():
            with _sdpa_ctx("cuda"):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        fl = 4.0 * 4 * 32 * 128 * 4096 * 4097 / 2
        r = G.energy_loop(self.nvml, prefill, fl / (0.3 * self.peak), min_s)
        r.update(what="flash prefill attention B=4 H=32 KV=8 S=4096 hd=128 causal", flops_per_call=fl,
                 bytes_per_call=2.0 * (2 * 4 * 32 * 4096 * 128 + 2 * 4 * 8 * 4096 * 128))
        res["attention_prefill"] = r
        del q, k, v
        kc = torch.randn(64, 8, 4096, 128, device="cuda", dtype=bf)
        vc = torch.randn_like(kc)
        qg = torch.randn(64, 32, 128, device="cuda", dtype=bf).view(64, 8, 4, 128)

        def decode():
            with _sdpa_ctx("cuda"):
                return F.scaled_dot_product_attention(qg, kc, vc)
        by = 2.0 * 2 * 64 * 8 * 4096 * 128
        r = G.energy_loop(self.nvml, decode, by / self.bw, min_s)
        r.update(what="decode attention B=64 KV=8 (4 q per KV head) C=4096 hd=128", flops_per_call=4.0 * 64 * 32 * 128 * 4096,
                 bytes_per_call=by)
        res["attention_decode"] = r
        del kc, vc, qg
        torch.cuda.empty_cache()
        self.res["energy"] = res
        self.res["section_time_s"]["energy"] = time.perf_counter() - t0
        self.log("  energy: " + ", ".join(f"{k} {v.get('power_mean_w', 0):.0f} W" for k, v in res.items()))

    # ------------------------------------------------------------------ (f)
    def power(self, min_s: float = 2.2):
        import torch

        t0 = time.perf_counter()
        if self.nvml.energy_mj() is None:
            self.res["power"] = {"error": "NVML energy counter unavailable"}
            return
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        flops = 2.0 * n ** 3
        r = G.energy_loop(self.nvml, lambda: a @ b, flops / self.peak, min_s)
        r.update(what="bf16 8192^3 matmul, random data", flops_per_call=flops,
                 flop_per_s=flops / r["time_per_call_s"],
                 energy_per_flop_j=(r["energy_per_call_j"] / flops) if r.get("energy_per_call_j") else None)
        self.res["power"]["matmul"] = r
        del a, b
        torch.cuda.empty_cache()
        nbytes = 2 * GiB
        src = torch.empty(nbytes // 2, device="cuda", dtype=torch.bfloat16).normal_()
        dst = torch.empty_like(src)
        dst.copy_(src)
        r = G.energy_loop(self.nvml, lambda: dst.copy_(src), 2 * nbytes / self.bw, min_s)
        r.update(what="2 GiB device-to-device copy", bytes_moved_per_call=2 * nbytes,
                 bytes_per_s=2 * nbytes / r["time_per_call_s"],
                 energy_per_byte_j=(r["energy_per_call_j"] / (2 * nbytes)) if r.get("energy_per_call_j") else None)
        self.res["power"]["copy"] = r
        del src, dst
        torch.cuda.empty_cache()
        self.res["section_time_s"]["power"] = time.perf_counter() - t0
        pm, pc = self.res["power"]["matmul"], self.res["power"]["copy"]
        self.log(f"  power: matmul loop {pm.get('power_mean_w')} W, copy loop {pc.get('power_mean_w')} W")
