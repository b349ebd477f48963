"""Where an eager prefill pass's time goes: a diagnostic of the reference stack on a short
copy of each model (its first ``--layers`` layers; every layer of these models is alike).

For each (model, B, S):
  eager_s      CUDA events around one eager ``prefill`` call after a synchronize (as e2e.py
               times prefill), median of reps
  graph_s      the same pass captured in one CUDA graph and replayed: the device's time
               with no host in the way
  kernels_s    the profiler's sum of kernel (and memcpy/memset) durations of one eager call,
               with the kernel count and the ten largest kernel groups by time
  enqueue_s    host seconds to issue one eager call without waiting (the launch path alone;
               the GPU still runs behind it)
and for each (model, B, C) of DECODE_POINTS the graphed decode step's time and NVML energy
per call over an energy loop (the decode power of grouped-GEMM and FP8 layers, which the
dense energy loops do not exercise). For MoE models also, per layer of one call, the routed tokens per expert (mean, max, sd,
experts touched) and both grouped GEMMs timed alone on those routed offsets and on the
same tokens spread evenly (uniform offsets, as micro_beyond measures them).

    python -m validation.harness.pass_profile --out DIR [--models a,b] [--layers 4]
writes ``pass-profile-<gpu-slug>.json`` (schema llmsim-harness-pass-profile/1) and a log.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from validation.harness.config import load_spec
from validation.harness.runlog import log

SCHEMA = "llmsim-harness-pass-profile/1"
POINTS = ((1, 128), (1, 512), (1, 2048), (4, 512), (1, 8192))
DECODE_POINTS = ((1, 512), (32, 512))
DEFAULT_MODELS = ("mixtral-8x7b:bf16", "qwen3-30b-a3b:bf16", "llama-3.1-8b:fp8", "llama-3.1-8b:bf16")


def _short(cfg, layers: int):
    arch = cfg.arch.model_copy(update={"num_layers": layers})
    return replace(cfg, arch=arch, notes=list(cfg.notes))


def _profile(fn):
    """(kernel seconds, kernel count, {group: seconds}) of one eager call of fn."""
    import warnings

    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from validation.harness import gpu as G

    G.sync()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            G.sync()
    total, count, groups = 0.0, 0, {}
    for e in prof.events():
        if getattr(e, "device_type", None) != DeviceType.CUDA:
            continue
        dur = e.time_range.elapsed_us() * 1e-6
        total += dur
        count += 1
        key = e.name[:60]
        groups[key] = groups.get(key, 0.0) + dur
    top = dict(sorted(groups.items(), key=lambda kv: -kv[1])[:10])
    return total, count, top


def _enqueue_s(fn, reps: int = 3) -> float:
    from validation.harness import gpu as G

    best = float("inf")
    for _ in range(reps):
        G.sync()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        G.sync()
    return best


def _routing(model, cfg, toks, kc, vc):
    """Per layer of one prefill: routed-count statistics, and both grouped GEMMs timed alone on
    the routed offsets and on the same slots spread evenly over the experts."""
    import torch

    from validation.harness import gpu as G
    from validation.harness import model as M
    from validation.harness.moe import route

    seen = []
    original = M.moe_mlp

    def recording(h, w_router, w_gate_up, w_down, top_k):
        seen.append((h.clone(), w_router, w_gate_up, w_down))
        return original(h, w_router, w_gate_up, w_down, top_k)

    M.moe_mlp = recording
    try:
        model.prefill(toks, kc, vc)
    finally:
        M.moe_mlp = original
    rows = []
    for l, (h, wr, wgu, wd) in enumerate(seen):
        weights, order, offs, token_of = route(h, wr, cfg.experts, cfg.top_k)
        counts = torch.diff(offs, prepend=offs.new_zeros(1)).float()
        slots = h.shape[0] * cfg.top_k
        even = torch.full((cfg.experts,), slots // cfg.experts, dtype=torch.int32, device=h.device)
        even[: slots % cfg.experts] += 1
        even_offs = torch.cumsum(even, 0, dtype=torch.int32)
        xs = h.index_select(0, token_of)
        a = torch.randn(xs.shape[0], cfg.expert_ffn, device=h.device, dtype=h.dtype)
        t = {}
        for label, o in (("routed", offs), ("uniform", even_offs)):
            t[f"gate_up_{label}_s"] = statistics.median(
                G.time_events(lambda: torch._grouped_mm(xs, wgu.transpose(1, 2), offs=o), 5))
            t[f"down_{label}_s"] = statistics.median(
                G.time_events(lambda: torch._grouped_mm(a, wd.transpose(1, 2), offs=o), 5))
        rows.append(dict(layer=l, tokens=h.shape[0], mean=float(counts.mean()), max=float(counts.max()),
                         sd=float(counts.std()), touched=int((counts > 0).sum()), **t))
    return rows


def run(out: Path, models, layers: int):
    import torch

    from validation.harness import gpu as G
    from validation.harness.model import RefDecoder

    out.mkdir(parents=True, exist_ok=True)
    nvml = G.Nvml()
    doc = dict(schema=SCHEMA, environment=G.environment(nvml), layers=layers, started=G.utc_now(), results=[],
               decode_energy=[])
    path = out / f"pass-profile-{G.gpu_slug(torch.cuda.get_device_name())}.json"
    for item in models:
        name, _, dtype = item.partition(":")
        cfg = _short(load_spec(f"model_specs/{name}.yaml"), layers)
        if dtype and dtype != "bf16":
            cfg = cfg.variant(dtype)
        model = RefDecoder(cfg, device="cuda", max_positions=8192 + 128)
        for B, S in POINTS:
            try:
                kc, vc = model.new_cache(B, S)
                toks = model.random_tokens(B, S)
                fn = lambda: model.prefill(toks, kc, vc)  # noqa: E731
                eager = statistics.median(G.time_events(fn, 7, warmups=2))
                g, _ = G.capture_graph(fn, warmups=1)
                graph = statistics.median(G.time_replays(g, 7))
                del g
                k_s, k_n, top = _profile(fn)
                row = dict(model=name, dtype=dtype or "bf16", batch=B, prompt=S, eager_s=eager, graph_s=graph,
                           kernels_s=k_s, kernels=k_n, enqueue_s=_enqueue_s(fn), top_kernels_s=top)
                if cfg.is_moe:
                    row["routing"] = _routing(model, cfg, toks, kc, vc)
                doc["results"].append(row)
                log(f"{name} {dtype} B={B} S={S}: eager {eager * 1e3:.2f} ms graph {graph * 1e3:.2f} ms "
                    f"kernels {k_s * 1e3:.2f} ms ({k_n}) enqueue {row['enqueue_s'] * 1e3:.2f} ms")
                del kc, vc, toks
            except Exception as e:  # one failing point must not lose the others
                doc["results"].append(dict(model=name, dtype=dtype, batch=B, prompt=S, error=repr(e)[:300]))
                log(f"{name} B={B} S={S}: FAILED {e!r}"[:300])
            torch.cuda.empty_cache()
            path.write_text(json.dumps(doc, indent=1))
        for B, C in DECODE_POINTS:
            try:
                kc, vc = model.new_cache(B, C + 1)
                toks = model.random_tokens(B)
                g, _ = G.capture_graph(lambda: model.decode(toks, C, kc, vc), warmups=2)
                t = statistics.median(G.time_replays(g, 20))
                en = G.energy_loop(nvml, g.replay, t, 2.0)
                doc["decode_energy"].append(dict(model=name, dtype=dtype or "bf16", batch=B, context=C,
                                                 latency_s=t, **en))
                log(f"{name} {dtype} decode B={B} C={C}: {t * 1e3:.3f} ms, {en.get('energy_per_call_j')} J/call")
                del g, kc, vc, toks
            except Exception as e:
                doc["decode_energy"].append(dict(model=name, dtype=dtype, batch=B, context=C, error=repr(e)[:300]))
            path.write_text(json.dumps(doc, indent=1))
        del model
        torch.cuda.empty_cache()
    doc["finished"] = G.utc_now()
    path.write_text(json.dumps(doc, indent=1))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args(argv)
    print(run(Path(args.out), args.models.split(","), args.layers))


if __name__ == "__main__":
    main()
