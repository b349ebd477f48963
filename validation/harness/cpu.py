"""CPU path of the harness: the `pytorch-ref` stack on the torch CPU build, on this machine.

    python -m validation.harness.cpu --out DIR [--quick] [--dtypes fp32,bf16]
        [--models smollm-135m,llama-3.2-1b] [--skip-micro] [--skip-e2e]

Writes DIR/micro-<slug>-<dtype>.json (schema llmsim-harness-micro/1 with environment.device
"cpu", one file per dtype) and DIR/e2e-<slug>.json (llmsim-harness-e2e/1, every point with its
dtype). The model code is the GPU harness's (model.py); differences on a CPU: no CUDA graphs
(a decode step is eager), no flash backend forced (torch picks its CPU SDPA kernel), timings
by time.perf_counter around synchronous calls, no energy (no power counter in a VM). Weight
and cache sets are rotated over more than 2x the last-level cache so that, as in a model,
they come from DRAM. The host facts come from simulator.calibration.hostprobe.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

from simulator.calibration import hostprobe
from simulator.specs.measurement import E2E_SCHEMA, MICRO_SCHEMA
from validation.harness import HARNESS_VERSION
from validation.harness.config import config_from_dict, load_spec, micro_inputs
from validation.harness.jsonfile import write_json
from validation.harness.model import RefDecoder

MiB = 1 << 20
MATMUL_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
QUICK_MATMUL_M = [1, 4, 64, 512]
ATTN_PREFILL = [(1, 128), (1, 512), (1, 1024), (4, 256)]
ATTN_DECODE = [(b, c) for b in (1, 4, 16) for c in (128, 512, 2048)]
EW_SIZES = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000]
COPY_SIZES = [1 * MiB, 8 * MiB, 64 * MiB, 256 * MiB]
# a synthetic model of none of the validated shapes, for the in-context per-op cost as on the
# GPUs; thin and deep here, so that its steps are mostly per-op costs and a GEMM fit's error
# (a CPU BLAS is irregular) cannot pass for a per-kernel gap
SYNTHETIC = dict(model_type="llama", hidden_size=384, intermediate_size=1024, num_hidden_layers=16,
                 num_attention_heads=6, num_key_value_heads=2, head_dim=64, vocab_size=8000)
DEFAULT_MODELS = ("smollm-135m", "llama-3.2-1b")
# (batch, prompt) and (batch, context) per model; the 1B model's grid is smaller (each fp32
# prefill token costs ~2.5 GFLOP on two cores)
E2E_GRID = {
    "smollm-135m": dict(prefill=[(1, 32), (1, 128), (1, 512), (2, 256), (4, 128), (1, 1024)],
                        decode=[(b, c) for b in (1, 4, 16) for c in (128, 1024)]),
    "llama-3.2-1b": dict(prefill=[(1, 32), (1, 128), (2, 64), (1, 256)],
                         decode=[(b, c) for b in (1, 4) for c in (128, 1024)]),
}
QUICK_GRID = dict(prefill=[(1, 64), (2, 128)], decode=[(1, 256), (4, 256)])
MAX_POINT_S = 12.0           # skip a point whose one call is estimated above this
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def utc_now() -> str:
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def environment(facts: dict, dtype: str | None = None) -> dict:
    import numpy
    import torch

    return dict(harness_version=HARNESS_VERSION, date_utc=utc_now(), device="cpu", cpu=facts,
                cpu_slug=hostprobe.slug(facts), torch_version=torch.__version__, numpy_version=numpy.__version__,
                python_version=sys.version.split()[0], torch_threads=torch.get_num_threads(),
                mkldnn=torch.backends.mkldnn.is_available(), stack="pytorch-ref", dtype=dtype,
                stack_notes="torch CPU build, eager (no graphs), torch's default CPU SDPA kernel")


def time_calls(fn, reps: int, warmups: int = 1, per_call: int = 1) -> list[float]:
    """Seconds per call: fn() runs per_call calls; warm-ups first."""
    for _ in range(warmups):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) / per_call)
    return out


def timed_point(fn, reps: int, warmups: int) -> dict:
    """Latency summary of fn() plus how busy this process kept the CPUs while timed
    (process CPU seconds per wall second: about the thread count when nothing else ran) and
    the 1-minute load average before, so that a disturbed point can be seen."""
    load = os.getloadavg()[0]
    cpu0 = time.process_time()
    ts = time_calls(fn, reps, warmups)
    wall = sum(ts)
    return dict(latency_median_s=statistics.median(ts), latency_min_s=min(ts), latency_max_s=max(ts),
                repeats=len(ts), cpu_per_wall=(time.process_time() - cpu0) / wall if wall else None,
                loadavg_1m_before=load)


def _summary(ts: list[float]) -> dict:
    return dict(latency_s=statistics.median(ts), latency_min_s=min(ts), latency_max_s=max(ts), repeats=len(ts))


class CpuMicro:
    """Microbenchmarks of one dtype, written in the GPU harness's micro schema."""

    def __init__(self, facts: dict, dtype: str, shapes: dict, log, quick: bool = False):
        import torch

        self.torch = torch
        self.dtype = getattr(torch, DTYPES[dtype])
        self.es = torch.tensor([], dtype=self.dtype).element_size()
        self.llc = hostprobe.last_level_cache_bytes(facts)
        self.shapes, self.log, self.quick = shapes, log, quick
        self.res = dict(schema=MICRO_SCHEMA, environment=environment(facts, dtype),
                        run=dict(quick=quick, argv=sys.argv), matmul=[], attention=[], elementwise=[], copy=[],
                        skipped=[], section_time_s={})

    def _sets(self, bytes_per_set: int, cap: int = 64) -> int:
        return max(1, min(cap, -(-2 * self.llc // max(bytes_per_set, 1))))

    def _rotating(self, tensors: list, call) -> list[float]:
        """Per-call seconds of call(t) over rotating sets, each pass >= ~50 ms, 3-5 passes."""
        def one_pass():
            for t in tensors:
                call(t)
        t_pass = time_calls(one_pass, 1, warmups=1)[0]
        inner = max(1, int(0.05 / max(t_pass, 1e-9)))
        reps = 3 if t_pass * inner > 0.5 else 5

        def passes():
            for _ in range(inner):
                one_pass()
        return time_calls(passes, reps, warmups=0, per_call=inner * len(tensors))

    def matmul(self, est_flop_per_s: float):
        torch = self.torch
        for (n, k), used_by in self.shapes.items():
            copies = self._sets(n * k * self.es)
            ws = [torch.randn(n, k, dtype=self.dtype) for _ in range(copies)]
            for m in (QUICK_MATMUL_M if self.quick else MATMUL_M):
                flops = 2 * m * n * k
                if flops / est_flop_per_s > 1.0:
                    self.res["skipped"].append(dict(section="matmul", item=[m, n, k], reason="time budget"))
                    continue
                x = torch.randn(m, k, dtype=self.dtype)
                ts = self._rotating(ws, lambda w: x @ w.t())
                s = _summary(ts)
                self.res["matmul"].append(dict(n=n, k=k, m=m, used_by=used_by, weight_copies=copies, flops=flops,
                                               bytes=self.es * (n * k + m * k + m * n), dtype=self.res["environment"]["dtype"],
                                               **s, flop_per_s=flops / s["latency_s"]))
            del ws

    def attention(self, heads_sets: dict):
        import torch.nn.functional as F
        torch = self.torch
        for (h, kv, hd), used_by in heads_sets.items():
            for b, s_len in ATTN_PREFILL[:2] if self.quick else ATTN_PREFILL:
                q = torch.randn(b, s_len, h, hd, dtype=self.dtype).transpose(1, 2)
                k = torch.randn(b, s_len, kv, hd, dtype=self.dtype).transpose(1, 2)
                v = torch.randn(b, s_len, kv, hd, dtype=self.dtype).transpose(1, 2)
                ts = time_calls(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=kv < h),
                                3 if self.quick else 5)
                flops = 4 * b * h * hd * s_len * (s_len + 1) // 2
                self.res["attention"].append(dict(phase="prefill", heads=h, kv_heads=kv, head_dim=hd, used_by=used_by,
                                                  batch=b, seq_len=s_len, attended_positions=(s_len + 1) / 2,
                                                  flops=flops, bytes=self.es * b * s_len * hd * (2 * h + 2 * kv),
                                                  **_summary(ts), flop_per_s=flops / statistics.median(ts)))
            for b, c in ATTN_DECODE[::4] if self.quick else ATTN_DECODE:
                per = 2 * b * kv * (c + 1) * hd * self.es
                sets = self._sets(per, cap=32)
                caches = [(torch.randn(b, kv, c + 1, hd, dtype=self.dtype), torch.randn(b, kv, c + 1, hd, dtype=self.dtype))
                          for _ in range(sets)]
                q = torch.randn(b, kv, h // kv, hd, dtype=self.dtype)
                ts = self._rotating(caches, lambda kvc: F.scaled_dot_product_attention(q, kvc[0], kvc[1]))
                nbytes = per + 2 * b * h * hd * self.es
                self.res["attention"].append(dict(phase="decode", heads=h, kv_heads=kv, head_dim=hd, used_by=used_by,
                                                  batch=b, context_len=c, attended_positions=c + 1, cache_copies=sets,
                                                  flops=4 * b * h * hd * (c + 1), bytes=nbytes, **_summary(ts),
                                                  bytes_per_s=nbytes / statistics.median(ts)))
                del caches

    def elementwise(self, hidden: int = 512):
        import torch.nn.functional as F
        torch = self.torch
        weight = torch.randn(hidden, dtype=self.dtype)
        ops = {"rms_norm": (2, lambda x: F.rms_norm(x[0], (hidden,), weight, 1e-5), 1),
               "add": (3, lambda x: x[0] + x[1], 2), "mul": (3, lambda x: x[0] * x[1], 2),
               "silu": (2, lambda x: F.silu(x[0]), 1)}
        for op, (touches, fn, n_in) in ops.items():
            for numel in EW_SIZES[::3] if self.quick else EW_SIZES:
                rows = max(1, numel // hidden)
                shape = (rows, hidden)
                numel = rows * hidden
                sets = self._sets(n_in * numel * self.es)
                inputs = [[torch.randn(*shape, dtype=self.dtype) for _ in range(n_in)] for _ in range(sets)]
                ts = self._rotating(inputs, fn)
                nbytes = touches * numel * self.es
                self.res["elementwise"].append(dict(op=op, numel=numel, shape=list(shape), bytes=nbytes,
                                                    inputs_l2_resident=False, input_sets=sets, **_summary(ts),
                                                    bytes_per_s=nbytes / statistics.median(ts)))
                del inputs

    def copy(self):
        torch = self.torch
        for size in COPY_SIZES[:2] if self.quick else COPY_SIZES:
            numel = size // self.es
            pairs = self._sets(2 * size, cap=16)
            bufs = [(torch.randn(numel, dtype=self.dtype), torch.empty(numel, dtype=self.dtype)) for _ in range(pairs)]
            ts = self._rotating(bufs, lambda p: p[1].copy_(p[0]))
            self.res["copy"].append(dict(bytes=size, bytes_moved=2 * size, buffer_pairs=pairs, **_summary(ts),
                                         bytes_per_s=2 * size / statistics.median(ts)))
            del bufs

    def launch(self, n_calls: int = 3000):
        """Per-op dispatch cost: a tiny add called eagerly n_calls times (CPU ops are
        synchronous: this is the fixed cost every op of a model pays)."""
        x = self.torch.ones(8, dtype=self.dtype)
        ts = time_calls(lambda: [x.add(1) for _ in range(n_calls)], 5, warmups=1, per_call=n_calls)
        self.res["launch"] = dict(dispatch_per_op_s=statistics.median(ts), dispatch_per_op_min_s=min(ts), calls=n_calls)

    def synthetic(self):
        """Whole passes of a 4-layer model of none of the validated shapes (decode steps and
        prefills), timed like the end-to-end points."""
        cfg = config_from_dict("synthetic-4l", dict(SYNTHETIC))
        model = RefDecoder(cfg, device="cpu", dtype=self.dtype, max_positions=2048 + 64)
        rows = []
        for b, c in ((1, 255), (4, 1023), (16, 511)):
            kc, vc = model.new_cache(b, c + 1 + 63)
            toks = model.random_tokens(b)
            ts = time_calls(lambda: model.decode(toks, c, kc, vc), 7, warmups=2)
            rows.append(dict(phase="decode", batch=b, context_len=c, **_summary(ts)))
        for b, s_len in ((1, 16), (1, 128), (2, 256)):
            kc, vc = model.new_cache(b, s_len + 64)
            toks = model.random_tokens(b, s_len)
            ts = time_calls(lambda: model.prefill(toks, kc, vc), 3, warmups=1)
            rows.append(dict(phase="prefill", batch=b, prompt_len=s_len, **_summary(ts)))
        self.res["synthetic"] = dict(config=dict(SYNTHETIC), kernels_per_layer=cfg.kernels_per_layer(), points=rows)

    def run(self, est_flop_per_s: float, heads_sets: dict, synthetic: bool = True) -> dict:
        sections = [("launch", self.launch), ("copy", self.copy), ("elementwise", self.elementwise),
                    ("attention", lambda: self.attention(heads_sets)), ("matmul", lambda: self.matmul(est_flop_per_s))]
        if synthetic:
            sections.append(("synthetic", self.synthetic))
        for name, fn in sections:
            t0 = time.perf_counter()
            fn()
            gc.collect()
            self.res["section_time_s"][name] = time.perf_counter() - t0
            self.log(f"  micro {self.res['environment']['dtype']} {name}: {self.res['section_time_s'][name]:.1f} s")
        return self.res


def _available_bytes() -> int:
    try:
        text = Path("/proc/meminfo").read_text()
        return int(text.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError):
        return 8 << 30


def measure_model(cfg, dtype: str, grid: dict, log, est_flop_per_s: float, reps_decode: int = 7) -> tuple[list, list]:
    """Prefill and decode points of one model in one dtype: (points, skipped)."""
    import torch

    tdtype = getattr(torch, DTYPES[dtype])
    es = torch.tensor([], dtype=tdtype).element_size()
    weight_bytes = cfg.param_count() * es
    if weight_bytes + (2 << 30) > _available_bytes():
        return [], [dict(model=cfg.name, dtype=dtype, reason="memory: weights do not fit with 2 GiB to spare")]
    t0 = time.perf_counter()
    model = RefDecoder(cfg, device="cpu", dtype=tdtype, max_positions=4096 + 64)
    log(f"  {cfg.name} {dtype}: weights {weight_bytes / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s")
    points, skipped = [], []
    per_token_flops = 2 * (cfg.layers * cfg.layer_matmul_params())
    for b, s_len in grid["prefill"]:
        est = b * s_len * per_token_flops / est_flop_per_s
        if est > MAX_POINT_S:
            skipped.append(dict(model=cfg.name, dtype=dtype, phase="prefill", batch=b, prompt_len=s_len,
                                reason=f"time budget: estimated {est:.0f} s a call"))
            continue
        kc, vc = model.new_cache(b, s_len + 16)
        toks = model.random_tokens(b, s_len)
        reps = 3 if est > 1.0 else 5
        t = timed_point(lambda: model.prefill(toks, kc, vc), reps, warmups=1)
        points.append(dict(model=cfg.name, dtype=dtype, phase="prefill", batch=b, prompt_len=s_len, tokens=b * s_len, **t))
        log(f"    prefill B={b} S={s_len}: {t['latency_median_s'] * 1e3:.1f} ms "
            f"(spread {t['latency_max_s'] / t['latency_min_s'] - 1:.0%})")
        del kc, vc
    for b, c in grid["decode"]:
        kc, vc = model.new_cache(b, c + 1 + 15)
        toks = model.random_tokens(b)
        t = timed_point(lambda: model.decode(toks, c, kc, vc), reps_decode, warmups=2)
        points.append(dict(model=cfg.name, dtype=dtype, phase="decode", batch=b, context_len=c, tokens=b, **t))
        log(f"    decode B={b} C={c}: {t['latency_median_s'] * 1e3:.1f} ms "
            f"(spread {t['latency_max_s'] / t['latency_min_s'] - 1:.0%})")
        del kc, vc
    del model
    gc.collect()
    return points, skipped


def model_configs(names) -> list:
    """Model names (model_specs/NAME.yaml) or spec paths, as the harness builds them."""
    return [load_spec(n) for n in names]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--skip-micro", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = print
    facts = hostprobe.cpu_facts()
    slug = hostprobe.slug(facts)
    est = hostprobe.numpy_matmul()["best_flop_per_s"] * 0.5          # a conservative rate for time estimates
    configs = model_configs(args.models.split(","))
    dtypes = args.dtypes.split(",")
    if not args.skip_micro:
        shapes, heads = micro_inputs(configs)
        for dtype in dtypes:
            res = CpuMicro(facts, dtype, shapes, log, quick=args.quick).run(est, heads)
            write_json(out / f"micro-{slug}-{dtype}.json", res)
    if not args.skip_e2e:
        doc = dict(schema=E2E_SCHEMA, environment=environment(facts), run=dict(quick=args.quick, argv=sys.argv),
                   models=[c.to_json() for c in configs], points=[], energy=[], skipped=[], errors=[])
        for cfg in configs:
            for dtype in dtypes:
                grid = QUICK_GRID if args.quick else E2E_GRID.get(cfg.name, QUICK_GRID)
                points, skipped = measure_model(cfg, dtype, grid, log, est)
                doc["points"] += points
                doc["skipped"] += skipped
                write_json(out / f"e2e-{slug}.json", doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
