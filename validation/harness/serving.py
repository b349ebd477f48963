"""Continuous-batching mode of the reference stack: a scheduler loop serving requests on a
real GPU with the reference decoder (model.RefDecoder's weights and kernels).

    python -m validation.harness.serving --out DIR --model llama-3.2-1b --rates 4,16,40,80 \\
        --requests 60,200,300,300 --prompt uniform:256:768 --output uniform:64:192

The scheduler is the simulator's own (simulator/serving/policy.py: Scheduler), so the two
share one definition of the policy (token budget, block size, admission, preemption). Each
iteration runs the scheduled chunks as one forward pass over the flattened tokens (the
mixed batch; mixed_pass.py's ``MixedBatch``):
  per layer: rms_norm, one QKV matmul over every token, rotary at each token's own position,
  K and V scattered into a slot cache [layers, slots, kv_heads, max_len, head_dim] (a
  request holds one slot while it runs: a paged cache whose pages are whole sequences);
  attention: the decode tokens together, each slot's query grouped under its KV heads
  over the first max-position + 1 cache positions with a mask of its own positions
  (SDPA with a boolean mask on the memory-efficient kernel: _masked_sdpa); a chunk starting at 0 as the
  reference prefill (flash SDPA, causal, over its own fresh K and V); a later chunk over
  its slot's cache with a lower-right causal mask; then the output matmul, residual, MLP
  as model.RefDecoder; final rms_norm over every token, the LM head on each entry's last
  token, argmax.
Everything is eager (no CUDA graph), so each iteration pays the host's kernel launches; the
simulator is run with ``decode_graphs`` off to match. The host's speed drifts (1x to 3x over
tens of seconds on the shared host), so each rate's run is bracketed by a host probe
(serving_probe.py: a serving-micro grid point timed just before and just after it, and the
CPUs' counters; simulator/serving/host_state.py reads it). The wall clock runs in real time:
requests arrive at their times (Poisson at each rate, from --seed), an idle engine sleeps
until the next arrival, and each iteration ends with a device synchronize (the sampled
tokens are ready). Recorded per request: arrival, first-token and last-token times and every
token's time; per iteration: its start and end, decode tokens, prefill tokens, entries,
running and waiting counts, the seconds until the pass's launches returned (host_s) and the
thread's CPU seconds in them (host_cpu_s) (times in s from the run's start). With
--host-monitor, a process pinned to the last CPU times a fixed pure-Python task every 10 ms
over the whole session (serving_monitor.py); each rate keeps its samples. Every
--task-every-s (0.25 s) the run's own thread times that task and a fixed set of tensor
launches (serving_monitor.launch_task) between two iterations (``cpu_task``; about 1.5 ms
together, 0.6% of the run), and the host probe times both too.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

from simulator.serving.policy import Policy, Request, Scheduler, blocks_for, serve_wave
from simulator.serving.requests import Lengths, generate, parse_lengths
from validation.harness.config import config_from_dict, load_spec
from validation.harness.mixed_pass import MixedBatch, probe_masked_attention, self_check

SPEC_DIR = Path(__file__).resolve().parents[2] / "model_specs"


def serve(batch: MixedBatch, policy: Policy, reqs: list[Request], pool_blocks: int, cap_s: float,
          task_every_s: float = 0.0) -> dict:
    """Serve ``reqs`` in real time; returns the per-request and per-iteration records. With
    ``task_every_s`` > 0, between iterations at most that often, serving_monitor.task and
    launch_task on this thread (about 1 ms and 0.5 ms: the run's own CPU's speed at the
    interpreter and at launching), their start and seconds kept (``cpu_task``)."""
    import torch

    from validation.harness.serving_monitor import launch_task, task

    one = torch.ones(1, device=batch.m.device, dtype=batch.m.dtype)
    sched = Scheduler(policy, reqs, pool_blocks)
    tokens: list[list[float]] = [[] for _ in reqs]
    it = {k: [] for k in ("start_s", "end_s", "decode", "prefill_tokens", "entries", "running", "waiting",
                          "host_s", "host_cpu_s")}
    arrived, done = 0, 0
    t0 = time.perf_counter()
    status = "complete"
    tasks = {"start_s": [], "task_s": [], "launch_s": []}
    while done < len(reqs):
        if task_every_s > 0 and (not tasks["start_s"] or time.perf_counter() - t0 - tasks["start_s"][-1] >= task_every_s):
            tasks["start_s"].append(round(time.perf_counter() - t0, 6))
            tasks["task_s"].append(round(task(), 7))
            tasks["launch_s"].append(round(launch_task(one), 7))
        now = time.perf_counter() - t0
        if now > cap_s:
            status = "stopped at the time cap"
            break
        while arrived < len(reqs) and reqs[arrived].arrival_s <= now:
            sched.arrive(arrived)
            arrived += 1
        start = time.perf_counter() - t0
        chunks = sched.step()
        if not chunks:
            if arrived < len(reqs):
                gap = reqs[arrived].arrival_s - (time.perf_counter() - t0)
                if gap > 0.002:
                    time.sleep(gap - 0.001)
            continue
        cpu = time.thread_time()
        batch.assign(sched.running, chunks)
        batch.forward(chunks)
        launched, cpu = time.perf_counter() - t0, time.thread_time() - cpu
        if batch.m.device.type == "cuda":
            torch.cuda.synchronize()
        end = time.perf_counter() - t0
        for ch in chunks:
            r = reqs[ch.ids[0]]
            if r.computed + ch.length == r.num_tokens:
                tokens[ch.ids[0]].append(round(end, 6))
        done += len(sched.finish(chunks, end))
        it["start_s"].append(round(start, 6))
        it["host_s"].append(round(launched - start, 6))
        it["host_cpu_s"].append(round(cpu, 6))
        it["end_s"].append(round(end, 6))
        it["decode"].append(sum(1 for ch in chunks if ch.length == 1))
        it["prefill_tokens"].append(sum(ch.length for ch in chunks if ch.length > 1))
        it["entries"].append(len(chunks))
        it["running"].append(len(sched.running))
        it["waiting"].append(len(sched.waiting))
    return dict(status=status, preemptions=sched.preemptions, peak_blocks=sched.peak_blocks, t0_perf_s=t0,
                cpu_task=tasks,
                requests=dict(arrival_s=[round(r.arrival_s, 6) for r in reqs], prompt=[r.prompt for r in reqs],
                              output=[r.output for r in reqs], first_s=[None if math.isnan(r.first_s) else
                                                                       round(r.first_s, 6) for r in reqs],
                              last_s=[None if math.isnan(r.last_s) else round(r.last_s, 6) for r in reqs],
                              preemptions=[r.preemptions for r in reqs], token_s=tokens),
                iterations=it)


def warm_up(batch: MixedBatch, policy: Policy, prompts: list[int], pool_blocks: int) -> list[int]:
    """Mixed iterations before the timed runs: 8 requests of the longest prompt at once (every
    decode batch size up to 8), then ``prompts`` (drawn as the runs draw theirs, another seed)
    arriving one a step, each decoding 16 tokens beside the others: the chunk lengths and
    decode counts the runs meet, so their first use (kernels chosen and loaded per shape, the
    caching allocator's blocks) falls before the timed runs (the first rate of a run without
    it had its first 20 chunked iterations 1.3-2x slower than its later ones). Returns each
    pass's token count (the file's warm_up_tokens: simulator/accuracy/serving.py)."""
    def run_pass(sched, chunks):
        batch.assign(sched.running, chunks)
        batch.forward(chunks)

    tokens = []
    for reqs, per_step in (([Request(0.0, max(prompts), 8) for _ in range(8)], 8),
                           ([Request(0.0, p, 16) for p in prompts], 1)):
        tokens += serve_wave(policy, reqs, per_step, pool_blocks, run_pass)
        batch.assign([], [])
    return tokens


def environment() -> dict:
    import platform

    import torch

    p = torch.cuda.get_device_properties(0)
    return dict(date_utc=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                gpu_name=torch.cuda.get_device_name(0), sm_count=p.multi_processor_count,
                total_memory_bytes=p.total_memory, torch_version=torch.__version__, cuda_version=torch.version.cuda,
                python_version=platform.python_version(), host_cpus=os.cpu_count())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--rates", required=True, help="requests/s, comma-separated")
    ap.add_argument("--requests", required=True, help="requests per rate, comma-separated")
    ap.add_argument("--prompt", default="uniform:256:768")
    ap.add_argument("--output", default="uniform:64:192")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-batched-tokens", type=int, default=2048)
    ap.add_argument("--max-seqs", type=int, default=64)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--cap-s", type=float, default=40.0, help="wall-clock cap of one rate's run (s)")
    ap.add_argument("--host-monitor", action="store_true", help="time a fixed CPU task beside the runs (another CPU)")
    ap.add_argument("--task-every-s", type=float, default=0.25, help="time a fixed CPU task on the run's thread this often")
    args = ap.parse_args(argv)
    from validation.harness import serving_monitor
    from validation.harness import serving_probe as probe
    from validation.harness.model import RefDecoder

    monitor = serving_monitor.Monitor() if args.host_monitor else None

    rates = [float(x) for x in args.rates.split(",")]
    counts = [int(x) for x in args.requests.split(",")]
    policy = Policy(max_batched_tokens=args.max_batched_tokens, max_seqs=args.max_seqs, block_size=args.block_size,
                    decode_graphs=False)
    prompt, output = parse_lengths(args.prompt, "--prompt"), parse_lengths(args.output, "--output")
    check = self_check(config_from_dict("selfcheck-tiny", dict(
        model_type="qwen2", hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, head_dim=64, vocab_size=1000, rms_norm_eps=1e-6, rope_theta=10000.0)))
    print(f"self-check (mixed pass against the reference prefill): {check}", flush=True)
    attention_ms = probe_masked_attention()
    print(f"masked attention, ms at spans 700/701/702: {attention_ms}", flush=True)
    cfg = load_spec(SPEC_DIR / f"{args.model}.yaml")
    drawn = [generate(n, rate, prompt, output, args.seed + i) for i, (rate, n) in enumerate(zip(rates, counts))]
    max_len = max(int((d.prompt + d.output).max()) for d in drawn) + 1
    model = RefDecoder(cfg, device="cuda", max_positions=max_len + 64)
    batch = MixedBatch(model, args.max_seqs, max_len)
    pool_blocks = args.max_seqs * blocks_for(max_len, args.block_size)     # what the slot cache holds
    warm = generate(48, None, prompt, Lengths("fixed", 16), args.seed + 1000).prompt
    warmed = warm_up(batch, policy, [min(int(x), max_len - 17) for x in warm], pool_blocks)  # within the slot cache
    doc = dict(harness="serving", environment=environment(), model=cfg.name, policy=policy.__dict__,
               pool_blocks=pool_blocks, warm_up_tokens=warmed, self_check=check, masked_attention_ms=attention_ms, prompt=args.prompt, output=args.output, slot_max_len=max_len, points=[])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serving-{cfg.name}.json"
    for i, (rate, d) in enumerate(zip(rates, drawn)):
        reqs = [Request(float(a), int(p), int(n)) for a, p, n in zip(d.arrival_s, d.prompt, d.output)]
        before = probe.host_probe(batch)
        t = time.perf_counter()
        point = serve(batch, policy, reqs, pool_blocks, args.cap_s, args.task_every_s)
        wall = round(time.perf_counter() - t, 3)
        point |= dict(rate=rate, seed=args.seed + i, wall_s=wall, host_probe=probe.record(before, probe.host_probe(batch)))
        if monitor is not None:
            point["host_monitor"] = monitor.since(point["t0_perf_s"], wall)
        doc["points"].append(point)
        path.write_text(json.dumps(doc))
        its = point["iterations"]
        print(f"{cfg.name} rate {rate}: {len(reqs)} requests, {len(its['end_s'])} iterations, {point['status']}, "
              f"{point['wall_s']} s; {probe.summary(point['host_probe'])}", flush=True)
    if monitor is not None:
        monitor.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
