"""End-to-end points of the parallel modes (parallel_model.py): one process per device, each
point timed on every rank after a barrier and recorded as the slowest rank's time.

    python -m validation.harness.parallel_e2e --out DIR (--tp N | --pp N [--microbatches M] | --ep N)
                                              [--models a,b] [--quick] [--budget-s S] [--backend gloo]

Per run: the mode's self-check on a tiny model (parallel_model.self_check: TP and PP on the
dense bf16 tiny model, EP on the MoE one), then per model its random-weight slice on every
rank and the grid below. Prefill (B, S): eager calls under CUDA events (perf_counter on the
CPU): a warm-up, one call that sizes the repeats (points.prefill_reps), a warm-up, the
repeats. Decode (B, C): the whole step of every rank, collectives included, captured in one
CUDA graph (points.DECODE_* warm-ups and replays); on the CPU eager steps. ``batch`` is the
whole batch: EP gives each rank B / ep sequences (B is rounded up to a multiple of ep), PP
splits it into min(M, B) microbatches. Writes
``e2e-<slug>-<mode><n>.json`` (the e2e schema; every point with suite = mode, tp, pp, ep,
microbatches, world_size, backend, graphed; EP points with capacity_factor, dropped_slots), which
rank 0 rewrites after the self-check and after each model. A point whose caches some rank
cannot allocate is skipped on every rank (no rank waits in a collective alone).
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from pathlib import Path

from simulator.specs.measurement import E2E_SCHEMA
from validation.harness import parallel_dist as D
from validation.harness import points as P

PREFILL = [(1, 128), (1, 512), (1, 2048), (1, 8192), (4, 512), (8, 1024), (2, 4096)]
DECODE = [(b, c) for b in (1, 4, 16, 64, 256) for c in (128, 2048)]
QUICK_PREFILL, QUICK_DECODE = [(1, 128), (4, 512)], [(1, 128), (16, 512)]
DEFAULT_MODELS = {"tp": ["llama-3.1-8b"], "pp": ["llama-3.1-8b"], "ep": ["qwen3-30b-a3b"]}


def _model_points(ctx, mode, model, cfg, grid, microbatches, capacity_factor, deadline):
    """(points, skipped) of one model on this rank."""
    import torch

    from validation.harness import gpu as G

    points, skipped = [], []
    ep = ctx.world if mode == "ep" else 1
    for phase, B, L in grid:
        B = -(-B // ep) * ep
        m = min(microbatches, B) if mode == "pp" else 1
        key = dict(suite=mode, dtype="bf16", weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16",
                   model=cfg.name, phase=phase, batch=B, tp=ctx.world if mode == "tp" else 1,
                   pp=ctx.world if mode == "pp" else 1, ep=ep, microbatches=m)
        key["prompt_len" if phase == "prefill" else "context_len"] = L
        if D.slowest_int(ctx, int(time.perf_counter() > deadline)):
            skipped.append(dict(key, reason="time budget: run deadline"))
            continue
        if mode == "pp":
            model.microbatches = m
        b = B // ep
        t0 = time.perf_counter()
        kc = vc = toks = fn = g = None
        try:                                   # every rank allocates, or none measures (no rank waits alone)
            if ctx.cuda:
                torch.cuda.reset_peak_memory_stats()
            kc, vc = model.new_cache(b, P.cache_len(L + 1))
            failed = None
        except Exception as e:
            failed = f"{type(e).__name__}: {e}"[:400]
        if D.slowest_int(ctx, int(failed is not None)):
            skipped.append(dict(key, reason=f"out of memory on a rank: {failed or 'another rank'}"))
            kc = vc = None
            if ctx.cuda:
                torch.cuda.empty_cache()
            continue
        try:
            if phase == "prefill":
                toks = model.random_tokens(b, L)
                fn = lambda: model.prefill(toks, kc, vc)  # noqa: E731
                one = D.timed(ctx, fn, 1, warmups=1)[0]
                ts = D.timed(ctx, fn, int(D.slowest_int(ctx, P.prefill_reps(one))), warmups=1)
                graphed = False
            else:
                toks = model.random_tokens(b)
                fn = lambda: model.decode(toks, L, kc, vc)  # noqa: E731
                graphed = ctx.cuda
                if graphed:
                    ctx.barrier()
                    g, _ = G.capture_graph(fn, warmups=P.DECODE_EAGER_WARMUPS)
                    ctx.barrier()
                    fn = g.replay
                ts = D.timed(ctx, fn, P.DECODE_REPLAYS, warmups=P.DECODE_WARM_REPLAYS)
            rec = dict(key, tokens=B * L if phase == "prefill" else B, **D.summary(ts), world_size=ctx.world,
                       backend=ctx.backend, graphed=graphed, point_wall_s=time.perf_counter() - t0,
                       peak_memory_bytes=torch.cuda.max_memory_allocated() if ctx.cuda else None)
            if mode == "ep":
                dropped = model.dropped.clone()
                import torch.distributed as dist

                dist.all_reduce(dropped)
                rec.update(capacity_factor=capacity_factor, dropped_slots=int(dropped.item()))
            points.append(rec)
        except Exception as e:                 # an out-of-memory or failed point; the others run
            skipped.append(dict(key, reason=f"{type(e).__name__}: {e}"[:400], traceback=traceback.format_exc()[-1500:]))
        finally:
            kc = vc = toks = fn = g = None
            if ctx.cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
    return points, skipped


def grid_of(quick: bool) -> list[tuple[str, int, int]]:
    """(phase, B, S or C) of every point of a model."""
    pre, dec = (QUICK_PREFILL, QUICK_DECODE) if quick else (PREFILL, DECODE)
    return [("prefill", b, s) for b, s in pre] + [("decode", b, c) for b, c in dec]


def _worker(ctx, mode, models, grid, microbatches, capacity_factor, budget_s, out, run_info):
    """Self-check, then every model's points; rank 0 writes the file after each model (every
    rank's times entered each record through the slowest-rank reduction)."""
    import torch

    from validation.harness import config as C
    from validation.harness.parallel_model import build, self_check

    warnings.filterwarnings("ignore", category=FutureWarning)
    deadline = time.perf_counter() + budget_s
    env = D.environment(ctx)
    name = f"e2e-{D.slug(env)}-{mode}{ctx.world}.json"
    doc = dict(schema=E2E_SCHEMA, environment=env, run=run_info, self_check=None, models=[], points=[], energy=[],
               skipped=[], errors=[])
    doc["self_check"] = self_check(ctx, mode, "moe" if mode == "ep" else "bf16")
    D.flush(ctx, out, name, doc)
    for spec in models:
        try:
            cfg = C.load_spec(spec)
            longest = max(L for _, _, L in grid) + 64
            model = build(mode, cfg, ctx, P.round_up(longest, 64) + 64, microbatches, capacity_factor,
                          dtype=torch.bfloat16 if ctx.cuda or cfg.is_moe else torch.float32)
        except Exception as e:
            doc["errors"].append(dict(model=spec, reason=f"{type(e).__name__}: {e}"[:400],
                                      traceback=traceback.format_exc()[-1500:]))
            continue
        pts, skipped = _model_points(ctx, mode, model, model.cfg, grid, microbatches, capacity_factor, deadline)
        doc["models"].append(dict(cfg.to_json(), mode=mode, world_size=ctx.world, points_measured=len(pts)))
        doc["points"] += pts
        doc["skipped"] += skipped
        D.flush(ctx, out, name, doc)
        del model
        if ctx.cuda:
            torch.cuda.empty_cache()
    return D.flush(ctx, out, name, doc, "partial" if doc["errors"] else "complete")


def run(mode: str, world: int, out: Path, models, quick=False, microbatches=1, capacity_factor=2.0,
        budget_s=480.0, backend=None, grid=None) -> Path:
    """Measure one mode at one world size (``grid``: grid_of(quick) unless given); the e2e file."""
    run_info = D.run_block(world, quick, budget_s=budget_s, mode=mode, microbatches=microbatches,
                           capacity_factor=capacity_factor)
    return D.launch(world, _worker, mode, list(models), grid or grid_of(quick), microbatches, capacity_factor,
                    budget_s, Path(out), run_info, backend=backend)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    for mode in ("tp", "pp", "ep"):
        ap.add_argument(f"--{mode}", type=int, default=None, help=f"{mode} mode over N processes (N >= 1)")
    ap.add_argument("--microbatches", type=int, default=2, help="pp: microbatches per pass (at most the batch)")
    ap.add_argument("--capacity-factor", type=float, default=2.0, help="ep: slots per destination, x T k / ep")
    ap.add_argument("--models", default=None, help="comma list (model_specs/NAME.yaml or paths)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--backend", choices=["nccl", "gloo"], default=None)
    a = ap.parse_args(argv)
    given = [(m, getattr(a, m)) for m in ("tp", "pp", "ep") if getattr(a, m) is not None]
    if len(given) != 1 or given[0][1] < 1 or a.microbatches < 1 or a.capacity_factor <= 0:
        print("error: give exactly one of --tp, --pp, --ep (N >= 1); --microbatches >= 1; --capacity-factor > 0",
              file=sys.stderr)
        return 2
    mode, world = given[0]
    models = a.models.split(",") if a.models else DEFAULT_MODELS[mode]
    path = run(mode, world, a.out, models, a.quick, a.microbatches, a.capacity_factor, a.budget_s, a.backend)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
