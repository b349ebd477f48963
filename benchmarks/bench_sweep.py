"""Speed of `llmsim sweep` with a warm numba cache. Prints median and spread (min, max) over
repeats; this machine's timings vary 30-40% from run to run.

  one model, one device   examples/sweep-one-device.yaml: llama-3.1-8b on h100-sxm, batch
                          1..128 x 64 prompts x 128 outputs = 1,048,576 scenarios: the batch
                          kernel alone (wall, both cores; and CPU time per scenario of the
                          serial kernel), the whole sweep to CSV in process, and `llmsim
                          sweep ... --out` processes to CSV and Parquet (start-up, imports,
                          loading numba's cached kernels and the grid prepared on disk by an
                          earlier process, writing, exit)
  mixed grid              examples/sweep-mixed.yaml: 10 models x 20 devices x 512
                          scenarios = 102,400: the whole sweep to CSV, every configuration
                          prepared again in each repeat (model lowering stays cached)
  versus predict          a Python loop of simulator.predict over 1,000 scenarios drawn from
                          each grid: its rate, and the sweep's rate over it
"""
from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402

from simulator import predict  # noqa: E402
from simulator.engine import batch as kernel  # noqa: E402
from simulator.explore.sweep import configured, sweep  # noqa: E402
from simulator.explore.grid import Grid, load_grid  # noqa: E402

ONE_DEVICE = ROOT / "examples" / "sweep-one-device.yaml"
PROCESS_REPEATS = 7             # `llmsim sweep` processes (after one that warms the caches)
MIXED = ROOT / "examples" / "sweep-mixed.yaml"


def _timed(fn, repeats: int) -> list[float]:
    fn()                                        # warm: numba cache, lowering, registry
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _rate(count: int, times: list[float]) -> str:
    rates = sorted(count / t for t in times)
    return (f"{statistics.median(rates):>12,.0f} scenarios/s  (min {rates[0]:,.0f}, max {rates[-1]:,.0f}; "
            f"median {statistics.median(times):.3f} s, n={len(times)})")


def kernel_only(grid: Grid, repeats: int) -> list[float]:
    packed, _ = configured(grid.groups[0])
    b, s, n = grid.slice_axes(grid.batch, grid.prompt, grid.output, 0, grid.scenarios_per_group)
    return _timed(lambda: kernel.evaluate_many(packed, b, s, n), repeats)


def kernel_cpu_ns(grid: Grid, repeats: int) -> float:
    """CPU nanoseconds per scenario of the serial kernel (the least over repeats)."""
    packed, _ = configured(grid.groups[0])
    b, s, n = grid.slice_axes(grid.batch, grid.prompt, grid.output, 0, grid.scenarios_per_group)
    kernel.evaluate_many(packed, b, s, n, parallel=False)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        kernel.evaluate_many(packed, b, s, n, parallel=False)
        best = min(best, time.process_time() - t0)
    return best / len(b) * 1e9


def whole_sweep(grid: Grid, out: Path, repeats: int, cold_configurations: bool = False) -> list[float]:
    def run():
        if cold_configurations:
            configured.cache_clear()
        sweep(grid, out)
    return _timed(run, repeats)


def process(grid_path: Path, out: Path, repeats: int) -> list[float]:
    cmd = [sys.executable, "-m", "simulator.cli.main", "sweep", str(grid_path), "--out", str(out)]
    return _timed(lambda: subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT), repeats)


def predict_loop(grid: Grid, samples: int = 1000, seed: int = 0) -> float:
    """simulator.predict calls per second over random scenarios of the grid."""
    rng = np.random.default_rng(seed)
    picks = [(grid.groups[rng.integers(len(grid.groups))], int(k))
             for k in rng.integers(0, grid.scenarios_per_group, samples)]
    calls = []
    for g, k in picks:
        b, s, n = (int(a[0]) for a in grid.slice_axes(grid.batch, grid.prompt, grid.output, k, k + 1))
        calls.append(dict(model=g.model, hardware=g.hardware, stack=g.stack, batch=b, prompt=s, output=n,
                          weight_dtype=g.weight_dtype, activation_dtype=g.activation_dtype.value,
                          kv_dtype=g.kv_dtype.value, tp=g.layout.tp, pp=g.layout.pp))
    for c in calls[:20]:
        predict(**c)
    t0 = time.perf_counter()
    for c in calls:
        predict(**c)
    return samples / (time.perf_counter() - t0)


def main(repeats: int = 5) -> None:
    print(f"cpu cores: {os.cpu_count()}; numba threads: {numba.get_num_threads()}")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.csv"
        one, mixed = load_grid(ONE_DEVICE), load_grid(MIXED)
        print(f"\none model, one device ({one.scenarios:,} scenarios)")
        print(f"  batch kernel only           {_rate(one.scenarios, kernel_only(one, repeats))}")
        swept = whole_sweep(one, out, repeats)
        print(f"  whole sweep to CSV          {_rate(one.scenarios, swept)}")
        print(f"  `llmsim sweep` process, CSV {_rate(one.scenarios, process(ONE_DEVICE, out, PROCESS_REPEATS))}")
        if importlib.util.find_spec("pyarrow"):
            parquet = Path(folder) / "rows.parquet"
            print(f"  `llmsim sweep` process, Parquet "
                  f"{_rate(one.scenarios, process(ONE_DEVICE, parquet, PROCESS_REPEATS))}")
        print(f"  serial kernel, CPU time     {kernel_cpu_ns(one, repeats):.0f} ns per scenario (one core)")
        print(f"\nmixed grid: 10 models x 20 devices ({mixed.scenarios:,} scenarios)")
        mixed_swept = whole_sweep(mixed, out, repeats, cold_configurations=True)
        print(f"  whole sweep to CSV          {_rate(mixed.scenarios, mixed_swept)}")
        print(f"  `llmsim sweep` process      {_rate(mixed.scenarios, process(MIXED, out, PROCESS_REPEATS))}")
        print("\nversus a Python loop of simulator.predict (1,000 random scenarios of each grid)")
        for name, grid, times in (("one device", one, swept), ("mixed", mixed, mixed_swept)):
            loop = predict_loop(grid)
            sweep_rate = grid.scenarios / statistics.median(times)
            print(f"  {name:<11} predict loop {loop:>9,.0f} scenarios/s; sweep / loop = {sweep_rate / loop:,.0f}x")


if __name__ == "__main__":
    main()
