"""Microbenchmark of the serving mode's mixed iterations (validation/harness/serving.py:
MixedBatch.forward) with no scheduler randomness, and of the scheduler's own CPU cost.

(a) mixed: synthetic iterations of D decode entries at context c (positions c..c+D-1, one
    slot each), F fresh chunks (start 0, length Lf) and K cached chunks (start s, length Lk)
    over each given model's reference decoder: per point the host seconds of slot assignment
    and the pass's launches (until forward returns, nothing synchronized) and the wall
    seconds to the device synchronize; every point twice to warm up, then --reps rounds over
    the whole grid of every model (a point's samples spread over the run, so the host's
    speed drifting by tens of percent over seconds, seen in the first run, is not one
    point's): every round's wall seconds, their median and mean (the mean weighs the host's
    slow phases by the time they last, as a serving run of tens of seconds meets them);
(b) scheduler: policy.Scheduler's step and finish (the serving loop's CPU work around the
    pass, without the GPU) per iteration, with R running requests decoding and W waiting
    behind a full max_seqs, median over iterations.
Neither is a serving run: the points are a grid, not a workload, and the serving runs'
records are not read. The calibration fits the host model of a mixed pass from this file
(simulator/calibration/serving_host.py).

    python -m validation.harness.serving_micro --out DIR [--models llama-3.2-1b,llama-3.1-8b] [--quick]
writes ``mixed-iterations-<gpu-slug>.json`` and prints a line per point.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from simulator.serving.policy import Chunk, Policy, Request, Scheduler
from validation.harness.config import load_spec
from validation.harness.serving import SPEC_DIR, MixedBatch, environment

SCHEMA = "llmsim-harness-mixed/1"
SLOTS = 64
MAX_LEN = 2112
# (decode entries D, context c, fresh chunks F, their length, cached chunks K, their start, their length)
GRID = ([(d, c, 0, 0, 0, 0, 0) for d in (1, 2, 4, 8, 16, 32, 48, 64) for c in (128, 1024)]
        + [(d, 512, f, lf, 0, 0, 0) for d in (0, 1, 16, 60) for f in (1, 2, 3) for lf in (64, 512)]
        + [(d, 512, 0, 0, k, s, lk) for d in (0, 16, 60) for k in (1, 2) for s, lk in ((256, 128), (512, 512))]
        + [(d, 768, 1, 400, 1, 512, 300) for d in (0, 8, 32, 62)]
        + [(0, 0, 1, lf, 0, 0, 0) for lf in (16, 128, 1024, 2048)]
        + [(0, 0, 4, 512, 0, 0, 0), (32, 256, 2, 700, 1, 800, 600)])
QUICK = [(1, 128, 0, 0, 0, 0, 0), (16, 512, 1, 64, 0, 0, 0), (4, 512, 0, 0, 1, 256, 128), (8, 768, 1, 400, 1, 512, 300)]
SCHED_RUNNING = (1, 4, 16, 32, 64)
SCHED_WAITING = (0, 64)


def entries(point) -> list[Chunk]:
    """The point's chunks, one request each (ids 0..): decode entries first."""
    d, c, f, lf, k, s, lk = point
    out = [Chunk((i,), c + i, 1) for i in range(d)]
    out += [Chunk((d + i,), 0, lf) for i in range(f)]
    out += [Chunk((d + f + i,), s, lk) for i in range(k)]
    return out


def time_once(batch: MixedBatch, point, sync) -> tuple[float, float]:
    """Host and wall seconds of one synthetic iteration (module docstring, (a)): every slot
    freed first, so slot assignment does its work each time."""
    chunks = entries(point)
    ids = [ch.ids[0] for ch in chunks]
    batch.assign([], [])
    sync()
    t = time.perf_counter()
    batch.assign(ids, chunks)
    batch.forward(chunks)
    h = time.perf_counter() - t
    sync()
    return h, time.perf_counter() - t


def point_row(point, host: list[float], wall: list[float]) -> dict:
    d, c, f, lf, k, s, lk = point
    return dict(decode=d, context=c, fresh_chunks=f, fresh_length=lf, cached_chunks=k, cached_start=s,
                cached_length=lk, tokens=d + f * lf + k * lk, host_s=statistics.median(host),
                wall_s=statistics.median(wall), wall_mean_s=statistics.fmean(wall), wall_min_s=min(wall),
                wall_max_s=max(wall), wall_samples_s=[round(w, 7) for w in wall])


def time_scheduler(policy: Policy, running: int, waiting: int, iterations: int) -> dict:
    """Median CPU seconds of Scheduler.step + finish per iteration with ``running`` requests
    decoding (prompts 512, outputs long enough to last) and ``waiting`` more queued."""
    n = running + waiting
    reqs = [Request(0.0, 512, 10 ** 6) for _ in range(n)]
    sched = Scheduler(policy, reqs, pool_blocks=10 ** 7)
    for i in range(running):
        sched.arrive(i)
    while any(r.computed < r.prompt for r in reqs[:running]):      # prefills out of the way
        sched.finish(sched.step(), 0.0)
    for i in range(running, n):
        sched.arrive(i)
    step, finish = [], []
    for _ in range(iterations):
        t = time.perf_counter()
        chunks = sched.step()
        t1 = time.perf_counter()
        sched.finish(chunks, 0.0)
        t2 = time.perf_counter()
        step.append(t1 - t)
        finish.append(t2 - t1)
    return dict(running=len(sched.running), waiting=len(sched.waiting), step_s=statistics.median(step),
                finish_s=statistics.median(finish))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="llama-3.2-1b,llama-3.1-8b")
    ap.add_argument("--reps", type=int, default=9, help="rounds over the grid")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="a few points (the CPU smoke test)")
    args = ap.parse_args(argv)
    import torch

    from validation.harness.model import RefDecoder

    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    policy = Policy(max_batched_tokens=2048, max_seqs=SLOTS, block_size=16, decode_graphs=False)
    env = environment() if cuda else dict(date_utc=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                                          gpu_name="cpu")
    doc = dict(schema=SCHEMA, harness="serving_micro", environment=env, slots=SLOTS, slot_max_len=MAX_LEN,
               reps=args.reps, mixed=[], scheduler=[])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = env["gpu_name"].lower().replace(" ", "-")
    path = out / f"mixed-iterations-{slug}.json"
    for i, (r, w) in enumerate((r, w) for r in SCHED_RUNNING for w in SCHED_WAITING):
        row = time_scheduler(policy, r, w, 50 if args.quick else 400)
        doc["scheduler"].append(row)
        print(f"scheduler {row}", flush=True)
    grid = QUICK if args.quick else GRID
    batches = {}
    for name in args.models.split(","):
        cfg = load_spec(SPEC_DIR / f"{name}.yaml")
        if args.quick:                     # a CPU-sized decoder
            from validation.harness.config import config_from_dict
            cfg = config_from_dict(name, dict(model_type="llama", hidden_size=256, intermediate_size=512,
                                              num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                                              head_dim=32, vocab_size=1000, rms_norm_eps=1e-5, rope_theta=1e4))
        batches[name] = (cfg, MixedBatch(RefDecoder(cfg, device=args.device, max_positions=MAX_LEN + 64), SLOTS,
                                         MAX_LEN))
    for name, (_, batch) in batches.items():           # warm-up: every point twice
        for point in grid:
            time_once(batch, point, sync)
            time_once(batch, point, sync)
    samples = {(name, point): ([], []) for name in batches for point in grid}
    for _ in range(args.reps):          # rounds over the whole grid: the host's drift spreads over every point
        for name, (_, batch) in batches.items():
            for point in grid:
                h, w = time_once(batch, point, sync)
                samples[name, point][0].append(h)
                samples[name, point][1].append(w)
    for (name, point), (host, wall) in samples.items():
        row = dict(model=name, layers=batches[name][0].layers, **point_row(point, host, wall))
        doc["mixed"].append(row)
        print(f"{name} {point}: host {row['host_s'] * 1e3:.2f} ms, wall {row['wall_s'] * 1e3:.2f} ms", flush=True)
    path.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
