"""Collective microbenchmarks: all-reduce, all-gather, all-to-all and send/recv of bf16 over
sizes from 1 KiB to 1 GiB, one process per device (parallel_dist.launch), eager and inside
CUDA graphs (NCCL), or eager on the CPU (gloo). The calibration source of the collective model
(simulator/calibration/collectives.py); nothing end-to-end is fitted from it.

Sizes follow nccl-tests: ``bytes`` is the all-reduce buffer, the all-gather's output (each rank
contributes bytes / n), the all-to-all's send buffer of each rank (bytes / n to every rank),
and what each rank sends to the next in a send/recv ring (rank r to r + 1, from r - 1). For
time t of one call:

    algbw = bytes / t        busbw = algbw x factor

factor = 2 (n - 1) / n (all-reduce), (n - 1) / n (all-gather, all-to-all), 1 (send/recv): the
bandwidth factor of simulator/engine/collectives.cost_terms, the one statement of it.
A repeat runs ``calls_per_repeat`` back-to-back calls (eager) or replays one graph holding
that many (graphed), every rank starting after a barrier; its time is the slowest rank's.
Writes ``collectives-<slug>-w<world>.json`` (schema llmsim-harness-collectives/1; rank 0 rewrites it
after each op, so a run cut short keeps what it measured).

    python -m validation.harness.parallel_collectives --out DIR --world N [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

from simulator.calibration.collectives import OPS          # op name -> the engine's operator kind
from simulator.engine.collectives import cost_terms
from simulator.specs.measurement import COLLECTIVES_SCHEMA
from validation.harness import parallel_dist as D

KiB, GiB = 1 << 10, 1 << 30
TARGET_REPEAT_S = 2e-3          # calls per repeat chosen so that one repeat lasts about this long
MAX_CALLS = 64


def sizes_bytes(lo: int = KiB, hi: int = GiB, step: int = 4) -> list[int]:
    """lo, lo x step, ... up to hi (bytes)."""
    out, s = [], lo
    while s <= hi:
        out.append(s)
        s *= step
    return out


def bus_factor(op: str, world: int) -> float:
    """busbw / algbw of one collective (nccl-tests' definitions: cost_terms' bandwidth factor)."""
    return cost_terms(OPS[op], world)[0]


def make_call(ctx: D.Rank, op: str, nbytes: int):
    """A closure running one ``op`` of ``nbytes`` (module docstring) on this rank's buffers."""
    import torch
    import torch.distributed as dist

    n, r = ctx.world, ctx.rank
    elems = nbytes // 2
    x = torch.randn(elems // n if op == "all_gather" else elems, dtype=torch.bfloat16, device=ctx.device)
    if op == "all_reduce":
        return lambda: dist.all_reduce(x)
    y = torch.empty(elems, dtype=torch.bfloat16, device=ctx.device)
    if op == "all_gather":
        return lambda: dist.all_gather_into_tensor(y, x)
    if op == "all_to_all":
        return lambda: dist.all_to_all_single(y, x)

    def ring():
        ops = [dist.P2POp(dist.isend, x, (r + 1) % n), dist.P2POp(dist.irecv, y, (r - 1) % n)]
        for work in dist.batch_isend_irecv(ops):
            work.wait()
    return ring


def _graphed(ctx: D.Rank, call, calls: int):
    """One CUDA graph holding ``calls`` calls (warmed up on a side stream first)."""
    import torch

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        call()
    torch.cuda.current_stream().wait_stream(s)
    ctx.barrier()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            call()
    ctx.barrier()
    return g


def measure_one(ctx: D.Rank, op: str, nbytes: int, call, graphed: bool, repeats: int) -> dict:
    """One row: the per-call times of ``repeats`` repeats of ``call`` (make_call; module docstring)."""
    one = statistics.median(D.timed(ctx, call, 3, warmups=1))
    calls = max(1, min(MAX_CALLS, int(TARGET_REPEAT_S / max(one, 1e-7))))
    calls = int(D.slowest_int(ctx, calls))                 # every rank the same count
    if graphed:
        g = _graphed(ctx, call, calls)
        ts = D.timed(ctx, g.replay, repeats, warmups=1)
        del g
    else:
        ts = D.timed(ctx, lambda: [call() for _ in range(calls)], repeats, warmups=1)
    per_call = [t / calls for t in ts]
    res = D.summary(per_call)
    factor = bus_factor(op, ctx.world)
    algbw = nbytes / res["latency_median_s"]
    return dict(op=op, graphed=graphed, bytes=nbytes, dtype="bf16", world_size=ctx.world,
                calls_per_repeat=calls, **res, algbw_bytes_per_s=algbw, bus_factor=factor,
                busbw_bytes_per_s=algbw * factor)


def _worker(ctx: D.Rank, ops, sizes, graphs: bool, repeats: int, budget_s: float, out: Path, run_info: dict):
    """Every (op, size, eager/graphed) row; rank 0 writes the file after each op."""
    import torch

    warnings.filterwarnings("ignore", category=FutureWarning)    # all_gather_into_tensor's rename
    t0 = time.perf_counter()
    env = D.environment(ctx)
    name = f"collectives-{D.slug(env)}-w{ctx.world}.json"
    doc = dict(schema=COLLECTIVES_SCHEMA, environment=env, run=dict(run_info, backend=ctx.backend), collectives=[],
               skipped=[], errors=[])
    modes = [False, True] if (graphs and ctx.cuda) else [False]
    for op in ops:
        for nbytes, graphed in ((b, g) for b in sizes for g in modes):
            item = dict(op=op, bytes=nbytes, graphed=graphed)
            if op == "send_recv" and ctx.world < 2:
                doc["skipped"].append(dict(item, reason="unsupported: a send/recv ring needs two ranks"))
                continue
            if D.slowest_int(ctx, int(time.perf_counter() - t0 > budget_s)):
                doc["skipped"].append(dict(item, reason=f"time budget: {budget_s:.0f} s spent"))
                continue
            call = failed = None
            try:                               # every rank allocates, or none measures (no rank waits alone)
                call = make_call(ctx, op, nbytes)
            except Exception as e:
                failed = f"{type(e).__name__}: {e}"[:400]
            if D.slowest_int(ctx, int(failed is not None)):
                doc["skipped"].append(dict(item, reason=f"out of memory on a rank: {failed or 'another rank'}"))
            else:
                try:
                    doc["collectives"].append(measure_one(ctx, op, nbytes, call, graphed, repeats))
                except Exception as e:         # a failed size is recorded, the rest run
                    doc["errors"].append(dict(item, reason=f"{type(e).__name__}: {e}"[:400],
                                              traceback=traceback.format_exc()[-1500:]))
            call = None
            if ctx.cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
        D.flush(ctx, out, name, doc)
    return D.flush(ctx, out, name, doc, "partial" if doc["errors"] else "complete")


def run(world: int, out: Path, ops=tuple(OPS), sizes=None, graphs=True, repeats=10, budget_s=480.0,
        backend=None, quick=False) -> Path:
    """Measure, write ``collectives-<slug>-w<world>.json`` under ``out``; its path."""
    run_info = D.run_block(world, quick, repeats=repeats)
    return D.launch(world, _worker, list(ops), list(sizes or sizes_bytes()), graphs, repeats, budget_s, Path(out),
                    run_info, backend=backend)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--world", type=int, default=None, help="processes, one per GPU (default: every visible GPU, "
                                                            "2 on the CPU)")
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma list of {', '.join(OPS)}")
    ap.add_argument("--min-bytes", type=int, default=KiB)
    ap.add_argument("--max-bytes", type=int, default=None, help="default 1 GiB on GPUs, 64 MiB on the CPU")
    ap.add_argument("--step", type=int, default=4, help="size ratio between points (2 or 4)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--no-graphs", action="store_true")
    ap.add_argument("--backend", choices=["nccl", "gloo"], default=None)
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--quick", action="store_true", help="sizes 1 KiB .. 16 MiB in steps of 16, 5 repeats")
    a = ap.parse_args(argv)
    import torch

    ops = [o for o in a.ops.split(",") if o]
    bad = [o for o in ops if o not in OPS]
    if bad or a.step < 2 or a.min_bytes < 1024:
        print(f"error: --ops {bad} not in {list(OPS)}" if bad else "error: --step >= 2 and --min-bytes >= 1024",
              file=sys.stderr)
        return 2
    cuda = (a.backend or D.pick_backend()) == "nccl"
    world = a.world or (torch.cuda.device_count() if cuda else 2)
    hi = a.max_bytes or (GiB if cuda else 64 << 20)
    sizes = sizes_bytes(a.min_bytes, min(hi, 16 << 20) if a.quick else hi, 16 if a.quick else a.step)
    path = run(world, a.out, ops, sizes, not a.no_graphs, 5 if a.quick else a.repeats, a.budget_s, a.backend, a.quick)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
