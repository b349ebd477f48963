"""Continuous-batching mode of the reference stack: a scheduler loop serving requests on a
real GPU with the reference decoder (model.RefDecoder's weights and kernels).

    python -m validation.harness.serving --out DIR --model llama-3.2-1b --rates 4,16,40,80 \\
        --requests 60,200,300,300 --prompt uniform:256:768 --output uniform:64:192

The scheduler is the simulator's own (simulator/serving/policy.py: Scheduler), so the two
share one definition of the policy (token budget, block size, admission, preemption). Each
iteration runs the scheduled chunks as one forward pass over the flattened tokens (the
mixed batch; ``mixed_forward``):
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
--task-every-s (0.25 s) the run's own thread times that task between two iterations
(``cpu_task``; about 1 ms each, 0.4% of the run), and the host probe times it too.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

from simulator.serving.policy import Policy, Request, Scheduler, blocks_for
from simulator.serving.requests import Lengths, generate, parse_lengths
from validation.harness.config import config_from_dict, load_spec

SPEC_DIR = Path(__file__).resolve().parents[2] / "model_specs"


def _masked_sdpa(q, k, v, mask):
    """SDPA with a boolean mask on the memory-efficient kernel (math if it cannot run), never
    cuDNN's, which builds a plan for every new shape (a decode batch's span grows by one
    position an iteration: ~40 ms each, seen in this harness's first run)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def probe_masked_attention(device="cuda") -> dict:
    """Milliseconds of one masked decode attention ([2 slots, 8 KV heads, 4 queries each,
    head dim 64]) at three new spans (700, 701, 702 positions) through SDPA's default choice
    of kernel and through _masked_sdpa: a kernel that plans per shape shows in every call."""
    import torch
    import torch.nn.functional as F

    out = {}
    for label, attend in (("default", lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
                          ("efficient", _masked_sdpa)):
        times = []
        for span in (700, 701, 702):
            q = torch.randn(2, 8, 4, 64, device=device, dtype=torch.bfloat16)
            k, v = (torch.randn(2, 8, span, 64, device=device, dtype=torch.bfloat16) for _ in range(2))
            mask = torch.ones(2, 1, 1, span, device=device, dtype=torch.bool)
            torch.cuda.synchronize()
            t = time.perf_counter()
            attend(q, k, v, mask)
            torch.cuda.synchronize()
            times.append(round((time.perf_counter() - t) * 1e3, 3))
        out[label] = times
    return out


class MixedBatch:
    """The mixed forward pass over a RefDecoder's weights with a slot KV cache."""

    def __init__(self, model, slots: int, max_len: int):
        import torch

        c = model.cfg
        self.m, self.c = model, c
        shape = (c.layers, slots, c.kv_heads, max_len, c.head_dim)
        self.k = torch.zeros(shape, device=model.device, dtype=model.dtype)
        self.v = torch.zeros(shape, device=model.device, dtype=model.dtype)
        self.last_token = torch.zeros(slots, device=model.device, dtype=torch.long)
        self.free = list(range(slots))
        self.slot_of: dict[int, int] = {}

    # ---------------------------------------------------------------- slots
    def assign(self, running: list[int], chunks) -> None:
        """Free the slots of requests no longer running; give new ones the lowest free slot."""
        alive = set(running)
        for r in [r for r in self.slot_of if r not in alive]:
            self.free.append(self.slot_of.pop(r))
        self.free.sort()
        for ch in chunks:
            r = ch.ids[0]
            if r not in self.slot_of:
                self.slot_of[r] = self.free.pop(0)

    # ---------------------------------------------------------------- the pass
    def forward(self, chunks, prompt_ids=None):
        """One iteration over ``chunks`` (policy.Chunk, one request each); returns the logits
        of each entry's last token (decode entries first). A chunk's tokens are random, or
        ``prompt_ids[request][start:start + length]`` when given (the self-check)."""
        import torch
        import torch.nn.functional as F

        from validation.harness.model import _mm, _rope, _sdpa_ctx

        m, c = self.m, self.c
        dev = m.device
        H, KV, hd = c.heads, c.kv_heads, c.head_dim
        G = H // KV
        dec = [ch for ch in chunks if ch.length == 1]
        pre = [ch for ch in chunks if ch.length > 1]
        order = dec + pre
        slots = [self.slot_of[ch.ids[0]] for ch in order]
        positions, token_slots = [], []
        for ch, s in zip(order, slots):
            positions.extend(range(ch.start, ch.start + ch.length))
            token_slots.extend([s] * ch.length)
        T, D = len(positions), len(dec)
        pos = torch.tensor(positions, device=dev)
        tok_slot = torch.tensor(token_slots, device=dev)
        ids = []
        if D:
            ids.append(self.last_token[tok_slot[:D]])
        if T > D and prompt_ids is not None:
            ids.extend(prompt_ids[ch.ids[0]][ch.start:ch.start + ch.length] for ch in pre)
        elif T > D:
            ids.append(torch.randint(0, c.vocab, (T - D,), device=dev))
        x = F.embedding(torch.cat(ids) if len(ids) > 1 else ids[0], m.embed)
        cos, sin = m.cos[pos].view(T, 1, hd), m.sin[pos].view(T, 1, hd)
        if D:
            hi = max(slots[:D]) + 1
            dec_slots = tok_slot[:D]
            span = max(ch.start for ch in dec) + 1
            slot_pos = torch.zeros(hi, device=dev, dtype=torch.long)
            slot_pos[dec_slots] = pos[:D]
            mask = (torch.arange(span, device=dev).view(1, span) <= slot_pos.view(hi, 1)).view(hi, 1, 1, span)
        chunk_masks = {}
        for ch in pre:
            if ch.start > 0:
                kpos = torch.arange(ch.start + ch.length, device=dev).view(1, 1, -1)
                qpos = torch.arange(ch.start, ch.start + ch.length, device=dev).view(1, -1, 1)
                chunk_masks[ch] = (kpos <= qpos).expand(G, -1, -1).reshape(G * ch.length, -1)
        for l in range(c.layers):
            h = F.rms_norm(x, (c.hidden,), m.ln1[l], c.rms_norm_eps)
            qkv = _mm(h, m.wqkv[l])
            if c.qkv_bias:
                qkv = qkv + m.bqkv[l]
            qkv = qkv.view(T, H + 2 * KV, hd)
            q, k, v = qkv[:, :H], qkv[:, H:H + KV], qkv[:, H + KV:]
            if c.qk_norm:
                q = F.rms_norm(q, (hd,), m.qn[l], c.rms_norm_eps)
                k = F.rms_norm(k, (hd,), m.kn[l], c.rms_norm_eps)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            kc, vc = self.k[l], self.v[l]
            kc[tok_slot, :, pos] = k
            vc[tok_slot, :, pos] = v
            outs = []
            if D:
                qg = torch.zeros(hi, KV, G, hd, device=dev, dtype=q.dtype)
                qg[dec_slots] = q[:D].reshape(D, KV, G, hd)
                o = _masked_sdpa(qg, kc[:hi, :, :span], vc[:hi, :, :span], mask)
                outs.append(o[dec_slots].reshape(D, H * hd))
            offset = D
            for ch, s in zip(pre, slots[D:]):
                L = ch.length
                qc = q[offset:offset + L].transpose(0, 1)                     # [H, L, hd]
                if ch.start == 0:
                    with _sdpa_ctx(dev.type):
                        o = F.scaled_dot_product_attention(qc[None], k[offset:offset + L].transpose(0, 1)[None],
                                                           v[offset:offset + L].transpose(0, 1)[None],
                                                           is_causal=True, enable_gqa=KV < H)[0]
                else:
                    end = ch.start + L
                    o = _masked_sdpa(qc.reshape(1, KV, G * L, hd), kc[s:s + 1, :, :end], vc[s:s + 1, :, :end],
                                     chunk_masks[ch])
                    o = o.reshape(H, L, hd)
                outs.append(o.transpose(0, 1).reshape(L, H * hd))
                offset += L
            o = torch.cat(outs) if len(outs) > 1 else outs[0]
            x = x + _mm(o, m.wo[l])
            x = m._mlp_and_residual(l, x)
        x = F.rms_norm(x, (c.hidden,), m.final_norm, c.rms_norm_eps)
        ends, total = [], 0
        for ch in order:
            total += ch.length
            ends.append(total - 1)
        logits = x[torch.tensor(ends, device=dev)] @ m.lm_head.t()
        self.last_token[torch.tensor(slots, device=dev)] = logits.argmax(dim=-1)
        return logits


def self_check(cfg, device="cuda") -> dict:
    """The mixed pass against the reference decoder's prefill: two requests (prompts 40 and
    23) prefilled in chunks (0-24 and 24-40 beside 0-23), then one decode iteration of both
    at their own positions; each entry's logits against RefDecoder.prefill of the same
    tokens. Returns the largest relative error (bf16: about 1e-2) and whether argmax agrees."""

    from simulator.serving.policy import Chunk
    from validation.harness.model import RefDecoder

    m = RefDecoder(cfg, device=device, max_positions=128, seed=3)
    batch = MixedBatch(m, 4, 64)
    toks = {0: m.random_tokens(41), 1: m.random_tokens(24)}
    steps = [[Chunk((0,), 0, 24), Chunk((1,), 0, 23)], [Chunk((0,), 24, 16)], [Chunk((0,), 40, 1), Chunk((1,), 23, 1)]]
    checks = [(0, 24), (1, 23), (0, 40), (0, 41), (1, 24)]          # (request, tokens) whose last logits to compare
    got = []
    for i, chunks in enumerate(steps):
        batch.assign([0, 1], chunks)
        if i == 2:
            batch.last_token[batch.slot_of[0]] = toks[0][40]
            batch.last_token[batch.slot_of[1]] = toks[1][23]
        logits = batch.forward(chunks, toks)
        dec = [ch for ch in chunks if ch.length == 1]
        got.extend(logits[j] for j in range(len(dec)))
        got.extend(logits[len(dec) + j] for j in range(len(chunks) - len(dec)))
    worst, same = 0.0, True
    for (r, n), g in zip(checks, got):
        k, v = m.new_cache(1, 64)
        _, ref = m.prefill(toks[r][:n].view(1, n), k, v, return_logits=True)
        ref, g = ref[0].double(), g.double()
        worst = max(worst, ((g - ref).norm() / ref.norm()).item())
        same = same and bool(g.argmax() == ref.argmax())
    return {"logits_rel_err": worst, "argmax_equal": same}


def serve(batch: MixedBatch, policy: Policy, reqs: list[Request], pool_blocks: int, cap_s: float,
          task_every_s: float = 0.0) -> dict:
    """Serve ``reqs`` in real time; returns the per-request and per-iteration records. With
    ``task_every_s`` > 0, between iterations at most that often, serving_monitor.task on this
    thread (about 1 ms: the run's own CPU's speed), its start and seconds kept (``cpu_task``)."""
    import torch

    from validation.harness.serving_monitor import task

    sched = Scheduler(policy, reqs, pool_blocks)
    tokens: list[list[float]] = [[] for _ in reqs]
    it = {k: [] for k in ("start_s", "end_s", "decode", "prefill_tokens", "entries", "running", "waiting",
                          "host_s", "host_cpu_s")}
    arrived, done = 0, 0
    t0 = time.perf_counter()
    status = "complete"
    tasks = {"start_s": [], "task_s": []}
    while done < len(reqs):
        if task_every_s > 0 and (not tasks["start_s"] or time.perf_counter() - t0 - tasks["start_s"][-1] >= task_every_s):
            tasks["start_s"].append(round(time.perf_counter() - t0, 6))
            tasks["task_s"].append(round(task(), 7))
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
    tokens = []
    waves = (([Request(0.0, max(prompts), 8) for _ in range(8)], 8), ([Request(0.0, p, 16) for p in prompts], 1))
    for reqs, per_step in waves:
        sched = Scheduler(policy, reqs, pool_blocks)
        arrived = 0
        while arrived < len(reqs) or not sched.idle:
            for _ in range(min(per_step, len(reqs) - arrived)):
                sched.arrive(arrived)
                arrived += 1
            chunks = sched.step()
            if chunks:
                batch.assign(sched.running, chunks)
                batch.forward(chunks)
                tokens.append(sum(len(ch.ids) * ch.length for ch in chunks))
                sched.finish(chunks, 0.0)
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
