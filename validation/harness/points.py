"""Suites, grids, memory fit and time estimates for the harness (pure Python, no torch).

A suite is a list of models, the dtype of their linear layers and the grids of points to
measure (``dense``: the default bf16 grid; ``fp8``, ``long``, ``moe``: README.md, "Suites").
The estimates are rough rooflines with fixed efficiencies. They serve two
purposes only: skipping points that would not fit in memory, and keeping the
whole run inside its time budget (see measure.py). They are recorded next to
the measurements (est_latency_s) so that their error can be seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.engine.kernels.phases import touched_experts

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
        + 2 * mlp_width(c) + 2 * mlp_width(c)  # gate_up, silu(gate), product
    ) + extra_act_bytes_per_token(c)
    return int(1.3 * T * per_tok) + 2 * B * c.vocab * 4 + 64 * MiB


def decode_act_bytes(c: ModelConfig, B: int) -> int:
    per_tok = 2 * (4 * c.qkv_out + 6 * c.hidden + 4 * mlp_width(c)) + 8 * c.vocab + extra_act_bytes_per_token(c)
    # generous: a few layers' intermediates alive at once in the graph's private pool
    return int(1.5 * B * per_tok * 4) + 256 * MiB


def mlp_width(c: ModelConfig) -> int:
    """Intermediate values per token of the MLP: ffn, or top-k x expert ffn for a MoE model."""
    return c.top_k * c.expert_ffn if c.is_moe else c.ffn


def extra_act_bytes_per_token(c: ModelConfig) -> int:
    """Temporaries of the variants: a MoE layer's gathered, output and weighted copies of the
    token (3 k hidden bf16); FP8's fp32 copy, fp32 quotient and e4m3 input of the widest
    linear input (9 bytes an element)."""
    moe = 2 * 3 * c.top_k * c.hidden if c.is_moe else 0
    fp8 = 9 * max(c.ffn, c.hidden, c.q_dim) if c.fp8 else 0
    return moe + fp8


def prefill_mem(c: ModelConfig, B: int, S: int) -> int:
    return B * cache_len(S) * c.kv_bytes_per_token() + prefill_act_bytes(c, B, S)


def decode_mem(c: ModelConfig, B: int, C: int) -> int:
    return B * cache_len(C + 1) * c.kv_bytes_per_token() + decode_act_bytes(c, B)


# ---- time estimates (seconds)
EAGER_LAUNCH_S = 20e-6  # python + dispatcher per eager kernel of the model (CPU side; 18-22 us seen on the H100 VM)
GRAPH_KERNEL_S = 2.5e-6  # per-kernel floor inside a CUDA graph
FP8_MATMUL_SPEEDUP = 2.0  # Hopper's dense e4m3 tensor rate over bf16 (H100/H200 datasheet: 1979 vs 989 TFLOP/s)
FP8_QUANTIZE_BYTES = 30   # bytes moved per element by quantize_rowwise's 8 kernels (2+2+6+6+8+5 + tiny scales)


def layer_active_matmul_params(c: ModelConfig) -> int:
    """Linear parameters one token multiplies per layer: a MoE layer's top-k experts only."""
    experts = sum(e * n * k for e, n, k in c.expert_shapes().values())
    return c.layer_matmul_params() - (experts - experts // c.experts * c.top_k if c.is_moe else 0)


def weight_bytes_read(c: ModelConfig, tokens: int) -> int:
    """Weight bytes one pass over ``tokens`` tokens reads: every weight of a dense model; of a
    MoE model only the experts the tokens touch (uniform routing: phases.touched_experts)."""
    if not c.is_moe:
        return c.weight_bytes()
    touched, _ = touched_experts(float(tokens), float(c.experts), float(c.top_k), 1.0)
    expert_bytes = 2 * sum(e * n * k for e, n, k in c.expert_shapes().values())
    return int(c.weight_bytes() - c.layers * expert_bytes * (1.0 - touched / c.experts))


def est_prefill_s(c: ModelConfig, B: int, S: int, g: GpuProfile) -> float:
    T = B * S
    L = c.layers
    lin = 2 * T * L * layer_active_matmul_params(c) + 2 * B * c.hidden * c.vocab
    attn = 4 * B * c.heads * c.head_dim * S * (S + 1) / 2 * L
    eff = 0.70 if T >= 1024 else 0.70 * max(0.25, T / 1024)
    peak = g.peak_flops * (FP8_MATMUL_SPEEDUP if c.fp8 else 1.0)
    t_mm = max(lin / (eff * peak), weight_bytes_read(c, T) / (0.8 * g.bw_bytes_s))
    ew = T * 2 * (12 * c.hidden + 12 * (c.q_dim + c.kv_dim) + 6 * mlp_width(c)) * L
    if c.fp8:
        ew += T * FP8_QUANTIZE_BYTES * (2 * c.hidden + c.q_dim + c.ffn) * L
    if c.is_moe:  # gather, weigh and index_add_ the k copies of each token
        ew += T * 2 * 6 * c.top_k * c.hidden * L
    kern = c.kernels_per_layer() * L + 8
    t_gpu = t_mm + attn / (0.35 * g.peak_flops) + ew / (0.7 * g.bw_bytes_s) + kern * GRAPH_KERNEL_S
    t_cpu = kern * EAGER_LAUNCH_S + 1e-4
    return max(t_gpu, t_cpu)


def est_decode_s(c: ModelConfig, B: int, C: int, g: GpuProfile, graph: bool = True) -> float:
    L = c.layers
    kv = B * (C + 1) * c.kv_bytes_per_token()
    byts = weight_bytes_read(c, B) + kv
    flops = 2 * B * c.active_param_count() + 4 * B * c.heads * c.head_dim * (C + 1) * L
    kern = c.kernels_per_layer() * L + 8
    t = byts / (0.8 * g.bw_bytes_s) + flops / (0.6 * g.peak_flops) + kern * GRAPH_KERNEL_S
    if not graph:
        t = max(t, kern * EAGER_LAUNCH_S)
    return t


def prefill_reps(t: float, quick: bool = False) -> int:
    """Timed prefill calls: 8..20 (8..10 quick) to fill ~0.25 s; calls of 0.1 s or more get
    5 and of 1 s or more 3 (a long prompt's call varies by well under 1 % between calls)."""
    if t >= 1.0:
        return 3
    if t >= 0.1:
        return 5
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


@dataclass(frozen=True)
class Suite:
    """Models, their linear layers' dtype and the grids of one suite (before memory filtering).
    Prefill points of more than ``prefill_cap`` tokens (``prefill_cap_big`` for models of 12 B
    parameters or more) are dropped; ``None`` keeps every listed point."""

    name: str
    models: tuple[str, ...]
    linear_dtype: str
    prefill_points: tuple
    decode_batches: tuple
    decode_contexts: tuple
    quick_prefill: tuple
    quick_decode: tuple
    prefill_points_big: tuple | None = None      # None: prefill_points
    decode_batches_big: tuple | None = None      # None: decode_batches
    prefill_cap: int | None = None
    prefill_cap_big: int | None = None

    def prefill_grid(self, c: ModelConfig, quick=False):
        if quick:
            return list(self.quick_prefill)
        big = size_class(c) == "big"
        pts = self.prefill_points_big if big and self.prefill_points_big else self.prefill_points
        cap = self.prefill_cap_big if big else self.prefill_cap
        return [(b, s) for b, s in pts if cap is None or b * s <= cap]

    def decode_grid(self, c: ModelConfig, quick=False):
        if quick:
            return list(self.quick_decode)
        big = size_class(c) == "big"
        batches = self.decode_batches_big if big and self.decode_batches_big else self.decode_batches
        return [(b, ctx) for ctx in self.decode_contexts for b in batches]

    def max_length(self, c: ModelConfig, quick=False) -> int:
        """The longest position a point of this suite reaches in model c (rotary tables)."""
        return max([s for _, s in self.prefill_grid(c, quick)] + [ctx + 1 for _, ctx in self.decode_grid(c, quick)])


LONG_CONTEXTS = (16384, 32768, 65536, 131072)
SUITES = {
    "dense": Suite("dense", tuple(DEFAULT_MODELS), "bf16", tuple(PREFILL_POINTS), tuple(DECODE_BATCHES),
                   tuple(DECODE_CONTEXTS), tuple(QUICK_PREFILL), tuple(QUICK_DECODE),
                   prefill_points_big=tuple(PREFILL_POINTS_BIG), decode_batches_big=tuple(DECODE_POINTS_BIG_BATCHES),
                   prefill_cap=16384, prefill_cap_big=8192),
    # FP8 W8A8 linear layers: prompts of at most 8192 tokens, decode batch 1..256 x context 128..8192
    "fp8": Suite("fp8", ("llama-3.1-8b", "llama-3.1-70b"), "fp8", tuple(PREFILL_POINTS), tuple(DECODE_BATCHES),
                 tuple(DECODE_CONTEXTS), ((1, 128), (2, 512)), ((1, 128), (64, 2048)),
                 prefill_points_big=tuple(PREFILL_POINTS_BIG), prefill_cap=8192, prefill_cap_big=8192),
    # bf16 long context: one prompt of 16k-64k tokens; decode batch 1..32 at 16k-128k cached positions
    "long": Suite("long", ("llama-3.2-1b", "llama-3.1-8b", "llama-2-7b"), "bf16",
                  ((1, 16384), (1, 32768), (1, 65536)), (1, 2, 4, 8, 16, 32), LONG_CONTEXTS,
                  ((1, 16384),), ((1, 16384), (4, 65536))),
    # mixture of experts (bf16, grouped-GEMM experts): every decode batch, since the experts a
    # step touches grow with it; prompts of at most 8192 tokens
    "moe": Suite("moe", ("mixtral-8x7b", "qwen3-30b-a3b"), "bf16", tuple(PREFILL_POINTS), tuple(DECODE_BATCHES),
                 tuple(DECODE_CONTEXTS), ((1, 128), (2, 512)), ((1, 128), (64, 512)), prefill_cap=8192,
                 prefill_cap_big=8192),
}


def parse_suites(text: str) -> list[Suite]:
    """``--suite`` (a comma list of SUITES names) -> the suites, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown or not names:
        raise ValueError(f"--suite: expected a comma list of {', '.join(SUITES)}, got {text!r}")
    return [SUITES[n] for n in dict.fromkeys(names)]


def prefill_grid(c: ModelConfig, quick=False, suite: Suite = SUITES["dense"]):
    return suite.prefill_grid(c, quick)


def decode_grid(c: ModelConfig, quick=False, suite: Suite = SUITES["dense"]):
    return suite.decode_grid(c, quick)


@dataclass
class PlannedPoint:
    phase: str  # "prefill" | "decode"
    batch: int
    length: int  # prompt_len (prefill) or context_len (decode)
    est_latency_s: float
    est_cost_s: float
    mem_bytes: int


def plan_model(c: ModelConfig, g: GpuProfile, free_after_weights: int, quick=False, suite: Suite = SUITES["dense"]):
    """Points of ``suite`` that fit in memory (with their estimates) and those skipped."""
    pts, skipped = [], []
    avail = free_after_weights - MEM_MARGIN
    for B, S in suite.prefill_grid(c, quick):
        mem = prefill_mem(c, B, S)
        if mem > avail:
            skipped.append(dict(phase="prefill", batch=B, prompt_len=S, reason=f"memory: needs {mem / GiB:.1f} GiB, {avail / GiB:.1f} GiB available"))
            continue
        pts.append(PlannedPoint("prefill", B, S, est_prefill_s(c, B, S, g), cost_prefill_point(c, B, S, g, quick), mem))
    for B, C in suite.decode_grid(c, quick):
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


def estimate_run(items, g: GpuProfile, quick=False, energy_per_model=3, micro=True):
    """Dry-run plan: per (suite, model) item, points that fit and their estimated cost."""
    rows = []
    total = FIXED_EST_S + (MICRO_EST_S if micro else 0.0)
    for suite, c in items:
        free = g.free_bytes - c.weight_bytes()
        if free - MEM_MARGIN < 1 * GiB:
            rows.append(dict(suite=suite.name, model=c.name, fits=False))
            continue
        pts, skipped = plan_model(c, g, free, quick, suite)
        cost = cost_model_load(c, g) + sum(p.est_cost_s for p in pts) + energy_per_model * cost_energy_point()
        total += cost
        rows.append(dict(suite=suite.name, model=c.name, fits=True, prefill=sum(p.phase == "prefill" for p in pts),
                         decode=sum(p.phase == "decode" for p in pts), skipped=len(skipped), cost_s=cost,
                         prefill_cost_s=sum(p.est_cost_s for p in pts if p.phase == "prefill"),
                         decode_cost_s=sum(p.est_cost_s for p in pts if p.phase == "decode")))
    return rows, total
