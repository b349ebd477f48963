"""Why a host-bound prefill's repeats split into a fast and a slow mode (about 2x apart).

The e2e suites time each prefill point as the e2e harness does (gpu.time_events: synchronize,
event, the eager pass, event, synchronize); where the pass is bound by the host's launches,
some points' repeats land near t and others near 2 t. This records each repeat, not only
their median, under conditions that each remove one suspected cause:

  default   as the e2e harness times it
  nogc      the same with Python's garbage collector off
  pinned    the same with the process pinned to one CPU
  idle5ms   a 5 ms sleep before each repeat (the CPU idles, as between e2e points)

and, per repeat, the host seconds the eager pass takes to return (its launches) beside the
event seconds, and the CPU's clock (/proc/cpuinfo, MHz) after the repeat. A sync debug pass
counts the device synchronizations inside one pass (a hidden .item() would serialise host
and device). Usage (on the GPU machine):

  python -m validation.harness.host_modes --out DIR [--reps 40]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
import warnings
from pathlib import Path

MODELS = (("llama-3.1-8b", "fp8"), ("llama-3.1-8b", "bf16"), ("llama-3.2-1b", "bf16"))
POINTS = ((1, 128), (1, 512), (4, 128), (1, 1024), (1, 2048))   # (batch, prompt)
CONDITIONS = ("default", "nogc", "pinned", "idle5ms")


def cpu_mhz() -> float:
    """Mean 'cpu MHz' over /proc/cpuinfo's processors (nan where the file has none)."""
    try:
        vals = [float(l.split(":")[1]) for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("cpu MHz")]
    except OSError:
        vals = []
    return round(statistics.fmean(vals), 1) if vals else float("nan")


def repeats(fn, reps: int, condition: str) -> dict:
    """Per repeat: event seconds, host seconds until fn() returns, CPU MHz after."""
    import torch

    events, host, mhz = [], [], []
    for _ in range(reps):
        if condition == "idle5ms":
            time.sleep(0.005)
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        a.record()
        fn()
        t1 = time.perf_counter()
        b.record()
        b.synchronize()
        events.append(round(a.elapsed_time(b) / 1e3, 6))
        host.append(round(t1 - t0, 6))
        mhz.append(cpu_mhz())
    return dict(event_s=events, host_s=host, cpu_mhz=mhz)


def syncs_in_pass(fn) -> int:
    """Device synchronizations torch reports (sync debug mode 'warn') during one call of fn."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum(1 for w in caught if "synchroniz" in str(w.message).lower())


def run_condition(fn, reps: int, condition: str) -> dict:
    cpus = os.sched_getaffinity(0)
    enabled = gc.isenabled()
    try:
        if condition == "nogc":
            gc.collect()
            gc.disable()
        if condition == "pinned":
            os.sched_setaffinity(0, {min(cpus)})
        return repeats(fn, reps, condition)
    finally:
        os.sched_setaffinity(0, cpus)
        if enabled:
            gc.enable()


def main(argv=None) -> int:
    import torch

    from validation.harness.config import load_spec
    from validation.harness.model import RefDecoder
    from validation.harness.serving import environment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    doc = dict(harness="host_modes", environment=environment(), reps=args.reps, conditions=list(CONDITIONS),
               cpu_count=os.cpu_count(), affinity=sorted(os.sched_getaffinity(0)), points=[])
    for name, linear in MODELS:
        cfg = load_spec(root / "model_specs" / f"{name}.yaml").variant(linear)
        model = RefDecoder(cfg, device="cuda", max_positions=2048 + 128)
        for B, S in POINTS:
            kc, vc = model.new_cache(B, S + 64)
            toks = model.random_tokens(B, S)
            fn = lambda: model.prefill(toks, kc, vc)  # noqa: E731
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            rec = dict(model=name, linear_dtype=linear, batch=B, prompt=S, syncs_per_pass=syncs_in_pass(fn))
            for cond in CONDITIONS:
                rec[cond] = run_condition(fn, args.reps, cond)
                ev = rec[cond]["event_s"]
                print(f"{name} {linear} B={B} S={S} {cond}: event ms median {statistics.median(ev) * 1e3:.1f} "
                      f"min {min(ev) * 1e3:.1f} max {max(ev) * 1e3:.1f}; host ms median "
                      f"{statistics.median(rec[cond]['host_s']) * 1e3:.1f}", flush=True)
            doc["points"].append(rec)
            del kc, vc, toks
        del model
        gc.collect()
        torch.cuda.empty_cache()
        (out / "host-modes-nvidia-h200.json").write_text(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
