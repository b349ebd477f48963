"""Microbenchmarks of the kernels the reference stack runs.

(a) bf16 matmul x @ W.t() for every (N, K) of the measured models and M in
    1..16384, rotating among weight copies whose total exceeds 2x L2;
(b) flash SDPA prefill (causal, GQA) and the decode attention call;
(c) elementwise bandwidth: rms_norm, add, mul, silu, 1e4..1e8 elements;
(d) device-to-device copy bandwidth, 1 MiB..4 GiB;
(e) per-kernel cost of tiny kernels inside a CUDA graph (and eagerly), and the eager
    launch rate of each op kind the reference stack calls (host-dispatch bound);
(f) power: mean watts and joules over >= 2 s loops of the 8192^3 matmul and
    of a 2 GiB copy; and over loops of tiny kernels, a GEMV, an M = 256 GEMM and flash
    prefill and decode attention;
(g) host cost per layer of the reference model's eager forward (a tiny model), and whole
    decode steps and prefills of a synthetic 4-layer model of none of the validated shapes.
(f) and (g) are in micro_loops.py.
Every timing is a CUDA-graph replay of n_inner calls timed with CUDA events,
median of the replays divided by n_inner, unless stated otherwise.
"""

from __future__ import annotations

import math
import statistics
import time

from . import gpu as G
from .micro_loops import LoopSections
from .model import _sdpa_ctx

MiB = 1 << 20
GiB = 1 << 30

MATMUL_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
QUICK_MATMUL_M = [1, 16, 256, 4096]
ATTN_PREFILL = [(1, 128), (1, 512), (1, 2048), (1, 8192), (4, 128), (4, 512), (4, 2048), (4, 8192)]
ATTN_DECODE_B = [1, 4, 16, 64, 256]
ATTN_DECODE_C = [128, 512, 2048, 8192]
QUICK_ATTN_PREFILL = [(1, 512), (4, 2048)]
QUICK_ATTN_DECODE = [(1, 512), (64, 2048)]
EW_SIZES = [10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000, 100_000_000]
QUICK_EW_SIZES = [10_000, 1_000_000, 100_000_000]
COPY_SIZES = [1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, 1 * GiB, 2 * GiB, 4 * GiB]
QUICK_COPY_SIZES = [1 * MiB, 64 * MiB, 1 * GiB]

TARGET_REPLAY_S = 1e-3  # each replay runs at least ~1 ms of calls
MAX_INNER = 256


def _n_inner(t_est: float, copies: int = 1) -> int:
    n = int(math.ceil(TARGET_REPLAY_S / max(t_est, 1e-7)))
    return max(copies, min(MAX_INNER, max(1, n)))


def _copies(bytes_per_set: int, l2: int, cap: int = 128) -> int:
    """Sets needed so that all sets together exceed 2x L2."""
    return max(1, min(cap, (2 * l2) // max(1, bytes_per_set) + 1))


class Bench:
    """A microbenchmark run's state: the device's ceilings and L2 from ``env``, the deadline,
    and ``res`` (each section's rows, ``skipped`` and ``section_time_s``)."""

    def __init__(self, env: dict, log, deadline: float, quick: bool, res: dict):
        self.env = env
        self.log = log
        self.deadline = deadline
        self.quick = quick
        self.l2 = env.get("l2_cache_bytes") or 50 * MiB
        self.peak = env["ceilings"]["matmul_bf16_8192"]["flop_per_s"]
        self.bw = env["ceilings"]["copy_2gib"]["bytes_per_s"]
        self.res = {**res, "skipped": [], "section_time_s": {}}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def _skip(self, section, what, reason="time budget"):
        self.res["skipped"].append(dict(section=section, item=what, reason=reason))

    def _failed(self, section, what, err: Exception):
        """An item that raised (an unsupported shape or dtype, out of memory): skipped with the
        error's first 300 characters, and the run goes on."""
        self._skip(section, what, f"{type(err).__name__}: {err}"[:300])


def eager_rate(fn, n_calls: int, cuda: bool = True) -> dict:
    """One op (or chain) called eagerly n_calls times back to back after 20 warm-ups: device
    seconds from the first to the last call / n (host-dispatch bound on tiny tensors; on a CPU
    the host's), and the host's own seconds per call."""
    import torch

    for _ in range(20):
        fn()
    if cuda:
        G.sync()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
    h0 = time.perf_counter()
    for _ in range(n_calls):
        fn()
    h1 = time.perf_counter()
    device_s = (h1 - h0) / n_calls
    if cuda:
        e1.record()
        G.sync()
        device_s = e0.elapsed_time(e1) / 1000.0 / n_calls
    return dict(eager_per_call_s=device_s, host_per_call_s=(h1 - h0) / n_calls, calls=n_calls)


class Micro(LoopSections, Bench):
    def __init__(self, env: dict, nvml, log, deadline: float, quick: bool = False):
        super().__init__(env, log, deadline, quick, {"matmul": [], "attention": [], "elementwise": [], "copy": [],
                                                     "launch": {}, "power": {}})
        self.nvml = nvml

    # ------------------------------------------------------------------ (a)
    def matmul(self, shapes: dict):
        """shapes: {(N, K): [label, ...]} with labels like 'llama-3.1-8b:qkv'."""
        import torch

        Ms = QUICK_MATMUL_M if self.quick else MATMUL_M
        t0 = time.perf_counter()
        x_cache = {}
        for (N, K), labels in sorted(shapes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if self.left() < 0:
                self._skip("matmul", dict(n=N, k=K))
                continue
            wbytes = N * K * 2
            ncop = _copies(wbytes, self.l2)
            try:
                Ws = [torch.empty(N, K, device="cuda", dtype=torch.bfloat16).normal_(0, K ** -0.5) for _ in range(ncop)]
                if K not in x_cache:
                    x_cache.clear()
                    torch.cuda.empty_cache()
                    x_cache[K] = torch.randn(max(Ms), K, device="cuda", dtype=torch.bfloat16)
                xb = x_cache[K]
                for M in Ms:
                    x = xb[:M]
                    flops = 2.0 * M * N * K
                    byts = 2 * (N * K + M * K + M * N)
                    t_est = max(flops / (0.7 * self.peak), byts / (0.8 * self.bw), 3e-6)
                    n_in = _n_inner(t_est, ncop)
                    med, mn, reps = G.bench_graph(lambda i: x @ Ws[i % ncop].t(), n_in)
                    self.res["matmul"].append(dict(
                        n=N, k=K, m=M, used_by=labels, weight_copies=ncop, weight_set_bytes=ncop * wbytes,
                        calls_per_replay=n_in, replays=reps, latency_s=med, latency_min_s=mn, flops=flops,
                        bytes=byts, flop_per_s=flops / med, bytes_per_s=byts / med))
                del Ws
            except torch.cuda.OutOfMemoryError:
                self._skip("matmul", dict(n=N, k=K), "out of memory")
            Ws = None
            torch.cuda.empty_cache()
        x_cache.clear()
        torch.cuda.empty_cache()
        self.res["section_time_s"]["matmul"] = time.perf_counter() - t0
        self.log(f"  matmul: {len(self.res['matmul'])} timings in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ (b)
    def attention(self, configs: dict):
        """configs: {(heads, kv_heads, head_dim): [model names]}."""
        import torch
        import torch.nn.functional as F

        from .model import _sdpa_ctx

        t0 = time.perf_counter()
        pre = QUICK_ATTN_PREFILL if self.quick else ATTN_PREFILL
        dec = QUICK_ATTN_DECODE if self.quick else [(b, c) for c in ATTN_DECODE_C for b in ATTN_DECODE_B]
        for (H, KV, hd), models in sorted(configs.items()):
            gqa = KV < H
            for B, S in pre:
                if self.left() < 0:
                    self._skip("attention", dict(phase="prefill", heads=H, kv_heads=KV, head_dim=hd, batch=B, seq_len=S))
                    continue
                try:
                    q = torch.randn(B, S, H, hd, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
                    k = torch.randn(B, S, KV, hd, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
                    v = torch.randn(B, S, H + 2 * KV, hd, device="cuda", dtype=torch.bfloat16)[:, :, H + KV:].transpose(1, 2)
                    flops = 4.0 * B * H * hd * S * (S + 1) / 2
                    byts = 2 * B * S * hd * (2 * H + 2 * KV)
                    t_est = max(flops / (0.35 * self.peak), byts / (0.7 * self.bw), 5e-6)
                    n_in = _n_inner(t_est)

                    def launch(i):
                        with _sdpa_ctx("cuda"):
                            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

                    med, mn, reps = G.bench_graph(launch, n_in)
                    self.res["attention"].append(dict(
                        phase="prefill", heads=H, kv_heads=KV, head_dim=hd, used_by=models, batch=B, seq_len=S,
                        causal=True, calls_per_replay=n_in, replays=reps, latency_s=med, latency_min_s=mn,
                        flops=flops, bytes=byts, flop_per_s=flops / med))
                    del q, k, v
                except Exception as e:
                    self._failed("attention", dict(phase="prefill", heads=H, kv_heads=KV, batch=B, seq_len=S), e)
                    torch.cuda.empty_cache()
            for B, C in dec:
                if self.left() < 0:
                    self._skip("attention", dict(phase="decode", heads=H, kv_heads=KV, head_dim=hd, batch=B, context_len=C))
                    continue
                L = C + 1
                maxlen = (L + 63) // 64 * 64
                layer_bytes = 2 * B * KV * maxlen * hd * 2
                if layer_bytes > 4 * GiB:
                    self._skip("attention", dict(phase="decode", heads=H, kv_heads=KV, batch=B, context_len=C), "one layer's KV > 4 GiB")
                    continue
                ncop = _copies(layer_bytes, self.l2, cap=320)
                try:
                    kc = torch.empty(ncop, B, KV, maxlen, hd, device="cuda", dtype=torch.bfloat16).normal_()
                    vc = torch.empty_like(kc).normal_()
                    qg = torch.randn(B, H, hd, device="cuda", dtype=torch.bfloat16).view(B, KV, H // KV, hd)
                    flops = 4.0 * B * H * hd * L
                    byts = 2 * B * KV * L * hd * 2 + 2 * 2 * B * H * hd
                    t_est = max(byts / (0.6 * self.bw), 4e-6)
                    n_in = _n_inner(t_est, ncop)

                    def launch(i):
                        with _sdpa_ctx("cuda"):
                            return F.scaled_dot_product_attention(qg, kc[i % ncop, :, :, :L], vc[i % ncop, :, :, :L])

                    med, mn, reps = G.bench_graph(launch, n_in)
                    self.res["attention"].append(dict(
                        phase="decode", heads=H, kv_heads=KV, head_dim=hd, used_by=models, batch=B, context_len=C,
                        attended_positions=L, cache_copies=ncop, calls_per_replay=n_in, replays=reps, latency_s=med,
                        latency_min_s=mn, flops=flops, bytes=byts, bytes_per_s=byts / med))
                    del kc, vc, qg
                except Exception as e:
                    self._failed("attention", dict(phase="decode", heads=H, kv_heads=KV, batch=B, context_len=C), e)
                    torch.cuda.empty_cache()
        torch.cuda.empty_cache()
        self.res["section_time_s"]["attention"] = time.perf_counter() - t0
        self.log(f"  attention: {len(self.res['attention'])} timings in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ (c)
    def elementwise(self, hidden: int = 4096):
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        sizes = QUICK_EW_SIZES if self.quick else EW_SIZES
        w = torch.empty(hidden, device="cuda", dtype=torch.bfloat16).normal_(1.0, 0.02)
        for n in sizes:
            rows = max(1, round(n / hidden))
            for op in ("rms_norm", "add", "mul", "silu"):
                if self.left() < 0:
                    self._skip("elementwise", dict(op=op, numel=n))
                    continue
                numel = rows * hidden if op == "rms_norm" else n
                n_in_t = 2 if op in ("add", "mul") else 1
                byts = 2 * numel * (n_in_t + 1) + (2 * hidden if op == "rms_norm" else 0)
                for resident in (False, True):
                    nsets = 1 if resident else _copies(2 * numel * n_in_t, self.l2, cap=64)
                    try:
                        if op == "rms_norm":
                            xs = [torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16) for _ in range(nsets)]
                            fn = lambda i: F.rms_norm(xs[i % nsets], (hidden,), w, 1e-5)
                        elif op == "silu":
                            xs = [torch.randn(n, device="cuda", dtype=torch.bfloat16) for _ in range(nsets)]
                            fn = lambda i: F.silu(xs[i % nsets])
                        else:
                            xs = [torch.randn(n, device="cuda", dtype=torch.bfloat16) for _ in range(nsets)]
                            ys = [torch.randn(n, device="cuda", dtype=torch.bfloat16) for _ in range(nsets)]
                            if op == "add":
                                fn = lambda i: xs[i % nsets] + ys[i % nsets]
                            else:
                                fn = lambda i: xs[i % nsets] * ys[i % nsets]
                        t_est = max(byts / (0.7 * self.bw), 2.5e-6)
                        n_in = _n_inner(t_est, nsets)
                        med, mn, reps = G.bench_graph(fn, n_in)
                        self.res["elementwise"].append(dict(
                            op=op, numel=numel, shape=[rows, hidden] if op == "rms_norm" else [n], inputs_l2_resident=resident,
                            input_sets=nsets, calls_per_replay=n_in, replays=reps, bytes=byts, latency_s=med,
                            latency_min_s=mn, bytes_per_s=byts / med))
                        xs = ys = None
                    except torch.cuda.OutOfMemoryError:
                        self._skip("elementwise", dict(op=op, numel=n), "out of memory")
                        torch.cuda.empty_cache()
        torch.cuda.empty_cache()
        self.res["section_time_s"]["elementwise"] = time.perf_counter() - t0
        self.log(f"  elementwise: {len(self.res['elementwise'])} timings in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ (d)
    def copy(self):
        import torch

        t0 = time.perf_counter()
        for nbytes in (QUICK_COPY_SIZES if self.quick else COPY_SIZES):
            if self.left() < 0:
                self._skip("copy", dict(bytes=nbytes))
                continue
            npairs = _copies(2 * nbytes, self.l2)
            try:
                src = [torch.empty(nbytes // 2, device="cuda", dtype=torch.bfloat16).normal_() for _ in range(npairs)]
                dst = [torch.empty_like(s) for s in src]
                t_est = max(2 * nbytes / (0.8 * self.bw), 3e-6)
                n_in = _n_inner(t_est, npairs)
                med, mn, reps = G.bench_graph(lambda i: dst[i % npairs].copy_(src[i % npairs]), n_in)
                self.res["copy"].append(dict(bytes=nbytes, bytes_moved=2 * nbytes, buffer_pairs=npairs, calls_per_replay=n_in,
                                             replays=reps, latency_s=med, latency_min_s=mn, bytes_per_s=2 * nbytes / med))
                del src, dst
            except torch.cuda.OutOfMemoryError:
                self._skip("copy", dict(bytes=nbytes), "out of memory")
            torch.cuda.empty_cache()
        self.res["section_time_s"]["copy"] = time.perf_counter() - t0
        self.log(f"  copy: {len(self.res['copy'])} timings in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ (e)
    def launch(self, n_kernels: int = 1000):
        import torch

        t0 = time.perf_counter()
        a = torch.randn(256, device="cuda", dtype=torch.float32)
        b = torch.randn(256, device="cuda", dtype=torch.float32) * 1e-3
        # graph of n tiny dependent adds
        med, mn, reps = G.bench_graph(lambda i: a.add_(b), n_kernels, replays=10)
        # the same adds launched eagerly: GPU time from first to last (launch bound)
        for _ in range(50):
            a.add_(b)
        G.sync()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        h0 = time.perf_counter()
        e0.record()
        for _ in range(n_kernels):
            a.add_(b)
        e1.record()
        h1 = time.perf_counter()
        G.sync()
        eager = e0.elapsed_time(e1) / 1000.0 / n_kernels
        # one-kernel graph: replay cost seen by the GPU and by the host
        g1, _ = G.capture_graph(lambda: a.add_(b), warmups=1)
        ts = G.time_replays(g1, 50, warm=5)
        G.sync()
        h2 = time.perf_counter()
        for _ in range(200):
            g1.replay()
        h3 = time.perf_counter()
        G.sync()
        self.res["launch"] = dict(
            tiny_kernel="float32 add_ of 256 elements",
            graph_kernels=n_kernels, graph_per_kernel_s=med, graph_per_kernel_min_s=mn, replays=reps,
            eager_per_kernel_s=eager, eager_host_per_launch_s=(h1 - h0) / n_kernels,
            one_kernel_graph_replay_s=statistics.median(ts), graph_replay_host_s=(h3 - h2) / 200)
        self.res["section_time_s"]["launch"] = time.perf_counter() - t0
        self.log(f"  launch: graph {med * 1e6:.2f} us/kernel, eager {eager * 1e6:.2f} us/kernel")

    # ------------------------------------------------------------------ (e2)
    def eager(self, n_calls: int = 300):
        """Eager launch rate of each op kind the reference stack calls, on tiny tensors: device
        time from the first to the last of n back-to-back calls / n (host-dispatch bound)."""
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        bf = torch.bfloat16
        x = torch.randn(4, 64, device=dev, dtype=bf)
        w = torch.randn(64, 64, device=dev, dtype=bf)
        nw = torch.ones(64, device=dev, dtype=bf)
        q = torch.randn(1, 4, 8, 64, device=dev, dtype=bf)
        table = torch.randn(1000, 64, device=dev, dtype=bf)
        ids = torch.randint(0, 1000, (4,), device=dev)
        cache = torch.zeros(4, 64, device=dev, dtype=bf)
        y = torch.empty(8, 64, device=dev, dtype=bf).t()
        ops = {
            "matmul": lambda: x @ w.t(),
            "rms_norm": lambda: F.rms_norm(x, (64,), nw, 1e-5),
            "sdpa": lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True),
            "silu": lambda: F.silu(x), "mul": lambda: x * x, "add": lambda: x + x, "neg": lambda: -x,
            "cat": lambda: torch.cat((x, x), dim=-1), "copy_": lambda: cache.copy_(x),
            "argmax": lambda: torch.argmax(x, dim=-1), "index_select": lambda: table.index_select(0, ids),
            "reshape_copy": lambda: y.reshape(-1),
        }
        res = {name: eager_rate(fn, n_calls, dev == "cuda") for name, fn in ops.items()}
        self.res["eager"] = res
        self.res["section_time_s"]["eager"] = time.perf_counter() - t0
        self.log("  eager: " + ", ".join(f"{k} {v['eager_per_call_s'] * 1e6:.1f} us" for k, v in res.items()))
