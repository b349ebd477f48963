"""Microbenchmark of what a serving run meets and the serving microbenchmark's warmed grid
(serving_micro.py) does not: a mixed iteration's first use of a shape, and an iteration after
the engine sat idle or decoded for a while (validation/harness/serving.py: MixedBatch.forward,
timed as serving_micro.time_once: slots assigned, the pass, to the device synchronize).

(a) shapes: per model, for each of LENGTHS (fresh-chunk lengths no earlier pass of the
    process used) and each decode count of DECODES (entries at context 512), four passes:
      new      D decodes + a fresh chunk of L: its token count T = D + L and its chunk length
               L both new to the process
      repeat   the same pass again, twice (both seen)
      new_t    D + 8 decodes + the same chunk of L: a new token count, the chunk length seen
      new_l    (D >= 8) D - 8 decodes + a chunk of L + 8: the token count T seen, the chunk
               length new
    the token counts and lengths of the four kept apart from every other point's (WARM's two
    passes run first, untimed: the process's first mixed passes);
(b) idle: a fixed mixed pass (SEEN: 4 decodes + a 512-token chunk) and a fixed decode-only
    pass (16 decodes) after the engine slept s seconds (IDLE_S), and the mixed pass after 0
    and 100 decode-only passes (16 decodes), REPS each, interleaved;
(c) the host probe (serving_probe.PROBE) before and after, as the serving runs carry it.
Nothing is fitted from the serving runs; this file is read by simulator/calibration/
serving_host.py (first-shape cost) and printed by nothing else.

    python -m validation.harness.serving_shapes --out DIR [--models llama-3.2-1b,llama-3.1-8b]
writes ``serving-shapes-<gpu-slug>.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from validation.harness.config import load_spec
from validation.harness.serving import SPEC_DIR, MixedBatch, environment
from validation.harness.serving_micro import MAX_LEN, SLOTS, time_once

SCHEMA = "llmsim-harness-serving-shapes/1"
# chunk lengths: odd, 37 apart, none in serving_micro's grid and none a token count of another
LENGTHS = tuple(range(203, 1400, 74))
DECODES = (0, 16, 48)                       # + 8 + the chunk: within SLOTS
CONTEXT = 512
SEEN = (4, 512, 1, 512, 0, 0, 0)            # serving_micro point layout (D, c, F, Lf, K, s, Lk)
DECODE_ONLY = (16, 512, 0, 0, 0, 0, 0)
IDLE_S = (0.0, 0.02, 0.1, 0.5, 1.0)
STRETCH = (0, 100)
REPS = 4
WARM = ((8, 512, 1, 100, 0, 0, 0), (32, 512, 1, 1500, 0, 0, 0))   # the process's first mixed passes, untimed


def point(decode: int, length: int) -> tuple:
    return (decode, CONTEXT, 1 if length else 0, length, 0, 0, 0)


def shapes(batch: MixedBatch, sync) -> list[dict]:
    """Section (a): wall seconds of the four passes per (L, D)."""
    rows = []
    for length in LENGTHS:
        for d in DECODES:
            row = dict(decode=d, fresh_length=length, tokens=d + length)
            row["new_s"] = time_once(batch, point(d, length), sync)[1]
            row["repeat_s"] = [time_once(batch, point(d, length), sync)[1] for _ in range(2)]
            row["new_t_s"] = time_once(batch, point(d + 8, length), sync)[1]      # d + 8 + 1 slots
            row["new_l_s"] = time_once(batch, point(d - 8, length + 8), sync)[1] if d >= 8 else None
            rows.append(row)
    return rows


def idle(batch: MixedBatch, sync) -> dict:
    """Section (b): {"after_sleep": {s: {"mixed_s": [...], "decode_s": [...]}}, "after_decodes": {n: [...]}}."""
    for p in (SEEN, DECODE_ONLY):                 # seen before timing
        time_once(batch, p, sync)
        time_once(batch, p, sync)
    sleep = {s: {"mixed_s": [], "decode_s": []} for s in IDLE_S}
    stretch = {n: [] for n in STRETCH}
    for _ in range(REPS):
        for s in IDLE_S:
            for key, p in (("mixed_s", SEEN), ("decode_s", DECODE_ONLY)):
                time.sleep(s)
                sleep[s][key].append(time_once(batch, p, sync)[1])
        for n in STRETCH:
            for _ in range(n):
                time_once(batch, DECODE_ONLY, sync)
            stretch[n].append(time_once(batch, SEEN, sync)[1])
    return {"after_sleep": {str(s): v for s, v in sleep.items()}, "after_decodes": {str(n): v for n, v in stretch.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="llama-3.2-1b,llama-3.1-8b")
    args = ap.parse_args(argv)
    import torch

    from validation.harness import serving_probe as probe
    from validation.harness.model import RefDecoder

    sync = torch.cuda.synchronize
    env = environment()
    doc = dict(schema=SCHEMA, harness="serving_shapes", environment=env, slots=SLOTS, slot_max_len=MAX_LEN,
               context=CONTEXT, seen_point=list(SEEN), decode_point=list(DECODE_ONLY), models=[])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serving-shapes-{env['gpu_name'].lower().replace(' ', '-')}.json"
    for name in args.models.split(","):
        cfg = load_spec(SPEC_DIR / f"{name}.yaml")
        batch = MixedBatch(RefDecoder(cfg, device="cuda", max_positions=MAX_LEN + 64), SLOTS, MAX_LEN)
        before = probe.host_probe(batch)            # also the process's first passes (decode 16)
        for p in WARM:                              # kernels and allocator blocks of a mixed pass, once
            time_once(batch, p, sync)
        t = time.perf_counter()
        rows = shapes(batch, sync)
        rest = idle(batch, sync)
        after = probe.host_probe(batch)
        doc["models"].append(dict(model=name, layers=cfg.layers, shapes=rows, **rest,
                                  host_probe=probe.record(before, after), wall_s=round(time.perf_counter() - t, 3)))
        path.write_text(json.dumps(doc, indent=1))
        new = sorted(r["new_s"] / min(r["repeat_s"]) for r in rows)
        print(f"{name}: {len(rows)} shape points, new / repeat median {new[len(new) // 2]:.3f}; "
              f"{probe.summary(doc['models'][-1]['host_probe'])}", flush=True)
        del batch
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
