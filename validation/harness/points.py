"""Grids, memory fit and time estimates for the harness (pure Python, no torch).

The estimates are rough rooflines with fixed efficiencies. They serve two
purposes only: skipping points that would not fit in memory, and keeping the
whole run inside its time budget (see measure.py). They are recorded next to
the measurements (est_latency_s) so that their error can be seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ModelConfig

GiB = 1 << 30
MiB = 1 << 20

DEFAULT_MODELS = ["llama-3.2-1b", "llama-2-7b", "llama-3.1-8b", "mistral-7b", "qwen2.5-14b", "qwen2.5-32b"]

PREFILL_BATCHES = [1, 2, 4, 8]
PREFILL_LENS = [128, 256, 512, 1024, 2048, 4096, 8192]
DECODE_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
DECODE_CONTEXTS = [128, 512, 2048, 8192]

# Prefill (B, S) points of the default grid. A diagonal sampling of B in 1..8 and
# S in 128..8192: every B meets short and long prompts, token counts 128..16384.
PREFILL_POINTS = [
    (1, 128), (1, 512), (1, 1024), (1, 2048), (1, 4096), (1, 8192),
    (2, 256), (2, 1024), (2, 4096),
    (4, 128), (4, 512), (4, 1024), (4, 2048),
    (8, 128), (8, 256), (8, 512), (8, 1024), (8, 2048),
]
# Larger models: fewer, and prompts of at most 8192 tokens each call.
PREFILL_POINTS_BIG = [
    (1, 128), (1, 512), (1, 2048), (1, 4096), (1, 8192),
    (2, 256), (2, 1024), (4, 256), (4, 2048), (8, 128), (8, 512),
]
DECODE_POINTS_BIG_BATCHES = [1, 4, 16, 64, 256]

QUICK_PREFILL = [(1, 128), (2, 512), (1, 2048)]
QUICK_DECODE = [(1, 128), (8, 512), (64, 2048)]


@dataclass
class GpuProfile:
    name: str
    total_bytes: int
    free_bytes: int
    peak_flops: float  # measured bf16 8192^3 matmul, FLOP/s
    bw_bytes_s: float  # measured 2 GiB copy, bytes read + written per second
    l2_bytes: int = 50 * MiB


H100 = GpuProfile("NVIDIA H100 80GB HBM3 (assumed)", 81559 * MiB, 80500 * MiB, 780e12, 3.0e12, 50 * MiB)
H200 = GpuProfile("NVIDIA H200 (assumed)", 143771 * MiB, 142500 * MiB, 780e12, 4.3e12, 60 * MiB)

# ---- memory
MEM_MARGIN = 2 * GiB  # cuBLAS workspaces, allocator slack, CUDA graph pools


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def cache_len(n: int) -> int:
    return round_up(n, 64)


def prefill_act_bytes(c: ModelConfig, B: int, S: int) -> int:
    """Peak activation bytes of one prefill (bf16), generous."""
    T = B * S
    per_tok = 2 * (
        3 * c.qkv_out  # qkv, rope temporaries
        + 3 * c.q_dim  # rotated q, cat, attention out
        + 4 * c.hidden  # residual stream, norm out, matmul out
        + 2 * c.ffn + 2 * c.ffn  # gate_up, silu(gate), product
    )
    return int(1.3 * T * per_tok) + 2 * B * c.vocab * 4 + 64 * MiB


def decode_act_bytes(c: ModelConfig, B: int) -> int:
    per_tok = 2 * (4 * c.qkv_out + 6 * c.hidden + 4 * c.ffn) + 8 * c.vocab
    # generous: a few layers' intermediates alive at once in the graph's private pool
    return int(1.5 * B * per_tok * 4) + 256 * MiB


def prefill_mem(c: ModelConfig, B: int, S: int) -> int:
    return B * cache_len(S) * c.kv_bytes_per_token() + prefill_act_bytes(c, B, S)


def decode_mem(c: ModelConfig, B: int, C: int) -> int:
    return B * cache_len(C + 1) * c.kv_bytes_per_token() + decode_act_bytes(c, B)


# ---- time estimates (seconds)
EAGER_LAUNCH_S = 20e-6  # python + dispatcher per eager kernel of the model (CPU side; 18-22 us seen on the H100 VM)
GRAPH_KERNEL_S = 2.5e-6  # per-kernel floor inside a CUDA graph


def est_prefill_s(c: ModelConfig, B: int, S: int, g: GpuProfile) -> float:
    T = B * S
    L = c.layers
    lin = 2 * T * L * c.layer_matmul_params() + 2 * B * c.hidden * c.vocab
    attn = 4 * B * c.heads * c.head_dim * S * (S + 1) / 2 * L
    eff = 0.70 if T >= 1024 else 0.70 * max(0.25, T / 1024)
    t_mm = max(lin / (eff * g.peak_flops), c.weight_bytes() / (0.8 * g.bw_bytes_s))
    ew = T * 2 * (12 * c.hidden + 12 * (c.q_dim + c.kv_dim) + 6 * c.ffn) * L
    kern = c.kernels_per_layer() * L + 8
    t_gpu = t_mm + attn / (0.35 * g.peak_flops) + ew / (0.7 * g.bw_bytes_s) + kern * GRAPH_KERNEL_S
    t_cpu = kern * EAGER_LAUNCH_S + 1e-4
    return max(t_gpu, t_cpu)


def est_decode_s(c: ModelConfig, B: int, C: int, g: GpuProfile, graph: bool = True) -> float:
    L = c.layers
    kv = B * (C + 1) * c.kv_bytes_per_token()
    byts = c.weight_bytes() + kv
    flops = 2 * B * c.param_count() + 4 * B * c.heads * c.head_dim * (C + 1) * L
    kern = c.kernels_per_layer() * L + 8
    t = byts / (0.8 * g.bw_bytes_s) + flops / (0.6 * g.peak_flops) + kern * GRAPH_KERNEL_S
    if not graph:
        t = max(t, kern * EAGER_LAUNCH_S)
    return t


def prefill_reps(t: float, quick: bool = False) -> int:
    lo, hi = (8, 10) if quick else (8, 20)
    return int(min(hi, max(lo, math.ceil(0.25 / max(t, 1e-6)))))


DECODE_REPLAYS = 30
DECODE_WARM_REPLAYS = 3
DECODE_EAGER_WARMUPS = 3


def fill_cost_s(nbytes: int, g: GpuProfile) -> float:
    return nbytes / (0.4 * g.bw_bytes_s)


def cost_prefill_point(c: ModelConfig, B: int, S: int, g: GpuProfile, quick=False) -> float:
    t = est_prefill_s(c, B, S, g)
    reps = prefill_reps(t, quick)
    return (2 + reps) * (t + 2e-4) + fill_cost_s(B * cache_len(S) * c.kv_bytes_per_token(), g) + 0.02


def cost_decode_point(c: ModelConfig, B: int, C: int, g: GpuProfile) -> float:
    t = est_decode_s(c, B, C, g)
    te = est_decode_s(c, B, C, g, graph=False)
    kern = c.kernels_per_layer() * c.layers
    capture = kern * 30e-6 + 0.03  # recording + instantiation
    return (DECODE_EAGER_WARMUPS * te + capture + (DECODE_REPLAYS + DECODE_WARM_REPLAYS) * (t + 2e-5)
            + fill_cost_s(B * cache_len(C + 1) * c.kv_bytes_per_token(), g) + 0.02)


def cost_model_load(c: ModelConfig, g: GpuProfile) -> float:
    return c.weight_bytes() / (0.3 * g.bw_bytes_s) + 0.002 * c.layers * 8 + 0.5


ENERGY_LOOP_S = 1.6


def cost_energy_point() -> float:
    return ENERGY_LOOP_S + 0.15


# ---- grids
def size_class(c: ModelConfig) -> str:
    p = c.param_count()
    if p < 4e9:
        return "small"
    if p < 12e9:
        return "medium"
    return "big"


def prefill_grid(c: ModelConfig, quick=False):
    if quick:
        return list(QUICK_PREFILL)
    cls = size_class(c)
    pts = PREFILL_POINTS_BIG if cls == "big" else PREFILL_POINTS
    cap = 16384 if cls != "big" else 8192
    return [(b, s) for b, s in pts if b * s <= cap]


def decode_grid(c: ModelConfig, quick=False):
    if quick:
        return list(QUICK_DECODE)
    batches = DECODE_POINTS_BIG_BATCHES if size_class(c) == "big" else DECODE_BATCHES
    return [(b, ctx) for ctx in DECODE_CONTEXTS for b in batches]


@dataclass
class PlannedPoint:
    phase: str  # "prefill" | "decode"
    batch: int
    length: int  # prompt_len (prefill) or context_len (decode)
    est_latency_s: float
    est_cost_s: float
    mem_bytes: int


def plan_model(c: ModelConfig, g: GpuProfile, free_after_weights: int, quick=False):
    """Points that fit in memory (with their estimates) and those skipped."""
    pts, skipped = [], []
    avail = free_after_weights - MEM_MARGIN
    for B, S in prefill_grid(c, quick):
        mem = prefill_mem(c, B, S)
        if mem > avail:
            skipped.append(dict(phase="prefill", batch=B, prompt_len=S, reason=f"memory: needs {mem / GiB:.1f} GiB, {avail / GiB:.1f} GiB available"))
            continue
        pts.append(PlannedPoint("prefill", B, S, est_prefill_s(c, B, S, g), cost_prefill_point(c, B, S, g, quick), mem))
    for B, C in decode_grid(c, quick):
        mem = decode_mem(c, B, C)
        if mem > avail:
            skipped.append(dict(phase="decode", batch=B, context_len=C, reason=f"memory: needs {mem / GiB:.1f} GiB, {avail / GiB:.1f} GiB available"))
            continue
        pts.append(PlannedPoint("decode", B, C, est_decode_s(c, B, C, g), cost_decode_point(c, B, C, g), mem))
    return pts, skipped


def pick_energy_points(points, n: int):
    """Choose n measured points for the energy loop: a large prefill, decode at
    batch 1, decode at the largest batch, then others spread over the grid."""
    pre = sorted([p for p in points if p["phase"] == "prefill"], key=lambda p: p["batch"] * p["prompt_len"])
    dec = sorted([p for p in points if p["phase"] == "decode"], key=lambda p: (p["batch"], p["context_len"]))
    chosen = []

    def add(p):
        if p is not None and p not in chosen:
            chosen.append(p)

    if pre:
        # the prefill closest to 4096 tokens
        add(min(pre, key=lambda p: abs(math.log2(p["batch"] * p["prompt_len"] / 4096))))
    if dec:
        add(min(dec, key=lambda p: (p["batch"], abs(math.log2(p["context_len"] / 512)))))
        big = max(p["batch"] for p in dec)
        add(min([p for p in dec if p["batch"] == big], key=lambda p: abs(math.log2(p["context_len"] / 2048))))
        mid = [p for p in dec if 16 <= p["batch"] <= 64]
        if mid:
            add(min(mid, key=lambda p: abs(math.log2(p["batch"] * p["context_len"] / 32768))))
    if pre:
        add(min(pre, key=lambda p: p["batch"] * p["prompt_len"] if p["batch"] * p["prompt_len"] >= 512 else 1e18))
    return chosen[:n]


MICRO_EST_S = 30.0  # microbenchmarks incl. power loops (see micro.py)
FIXED_EST_S = 20.0  # interpreter + CUDA start, environment block, idle power, profiler start (~6 s), files


def estimate_run(configs, g: GpuProfile, quick=False, energy_per_model=3):
    """Dry-run plan: per model, points that fit and their estimated cost."""
    rows = []
    total = FIXED_EST_S + MICRO_EST_S
    for c in configs:
        free = g.free_bytes - c.weight_bytes()
        if free - MEM_MARGIN < 1 * GiB:
            rows.append(dict(model=c.name, fits=False))
            continue
        pts, skipped = plan_model(c, g, free, quick)
        cost = cost_model_load(c, g) + sum(p.est_cost_s for p in pts) + energy_per_model * cost_energy_point()
        total += cost
        rows.append(dict(model=c.name, fits=True, prefill=sum(p.phase == "prefill" for p in pts),
                         decode=sum(p.phase == "decode" for p in pts), skipped=len(skipped), cost_s=cost,
                         prefill_cost_s=sum(p.est_cost_s for p in pts if p.phase == "prefill"),
                         decode_cost_s=sum(p.est_cost_s for p in pts if p.phase == "decode")))
    return rows, total
