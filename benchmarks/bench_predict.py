"""Speed of the simulator itself: one `llmsim predict` process (warm numba cache) and
10,000 in-process `simulator.predict` calls. Prints median and spread over repeats."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ARGS = ["predict", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "8", "--prompt", "1024",
        "--output", "128", "--format", "json"]


def process_wall_s(repeats: int = 7) -> list[float]:
    cmd = [sys.executable, "-m", "simulator.cli.main", *ARGS]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)       # warms the numba cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return times


def in_process_s(calls: int = 10_000, repeats: int = 3) -> list[float]:
    import simulator
    scenarios = [(b, s, n) for b in (1, 4, 16, 64) for s in (128, 1024, 4096) for n in (16, 128, 512)]
    simulator.predict(model="llama-3.1-8b", hardware="h100-sxm")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(calls):
            b, s, n = scenarios[i % len(scenarios)]
            simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=b, prompt=s, output=n)
        times.append(time.perf_counter() - t0)
    return times


def _summary(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})"


if __name__ == "__main__":
    print(f"cpu cores: {os.cpu_count()}")
    print(f"one `llmsim predict` process, warm numba cache: {_summary(process_wall_s())}")
    t = in_process_s()
    print(f"10,000 in-process simulator.predict calls: {_summary(t)}"
          f" = {10_000 / statistics.median(t):,.0f} predictions/s")
