"""What this machine's CPU is, read from the OS, and its memory bandwidth, measured.

Facts come from /proc/cpuinfo, /proc/meminfo and /sys/devices/system/cpu (Linux); the
bandwidth is a STREAM-style triad (a = b + s c) run by numba on every usable core, arrays
well beyond the last-level cache, best of several passes. No torch needed.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import time
from pathlib import Path

import numpy as np

from simulator.errors import SimulatorError

_SYS_CPU = Path("/sys/devices/system/cpu")
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
                     "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve", "hypervisor")


def _cpuinfo(text: str) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as {key: value}."""
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _size_bytes(text: str) -> int:
    """'48K', '2048K', '105M' (sysfs cache sizes) in bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)\s*", text)
    if not m:
        raise ValueError(f"unreadable size {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def caches(cpu_dir: Path = _SYS_CPU / "cpu0" / "cache") -> list[dict]:
    """Cache levels of cpu0: level, type, size in bytes and how many CPUs share it."""
    out = []
    for index in sorted(cpu_dir.glob("index*")):
        read = lambda name: (index / name).read_text().strip()   # noqa: E731
        shared = read("shared_cpu_list") if (index / "shared_cpu_list").exists() else "0"
        n_shared = sum(int(b) - int(a) + 1 for a, _, b in (p.partition("-") if "-" in p else (p, "", p)
                                                           for p in shared.split(",")))
        out.append(dict(level=int(read("level")), type=read("type"), size_bytes=_size_bytes(read("size")),
                        shared_by_cpus=n_shared))
    return out


def cpu_facts() -> dict:
    """This CPU as the OS describes it (Linux; elsewhere what platform/os can tell)."""
    info = {}
    try:
        info = _cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        pass
    flags = set(info.get("flags", info.get("Features", "")).split())
    mem_total = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem_total = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    try:
        cache_list = caches()
    except (OSError, ValueError):
        cache_list = []
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mhz = float(info["cpu MHz"]) if "cpu MHz" in info else None
    return dict(model_name=info.get("model name") or platform.processor() or platform.machine(),
                machine=platform.machine(), logical_cpus=os.cpu_count(), usable_cpus=usable,
                cpu_mhz=mhz, flags=sorted(f for f in FLAGS_OF_INTEREST if f in flags),
                caches=cache_list, memory_total_bytes=mem_total, os=platform.platform())


def last_level_cache_bytes(facts: dict) -> int:
    sizes = [c["size_bytes"] for c in facts.get("caches", []) if c["type"] != "Instruction"]
    return max(sizes, default=32 << 20)


def _triad_kernel():
    import numba

    @numba.njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]
    return triad


def stream_triad(facts: dict, passes: int = 7) -> dict:
    """Sustained memory bandwidth in bytes/s (3 x 8 B per element: two reads and one write),
    arrays of 4x the last-level cache each (at least 64 MiB), best and median of the passes."""
    n = max(4 * last_level_cache_bytes(facts), 64 << 20) // 8
    a, b, c = np.empty(n), np.random.default_rng(0).random(n), np.random.default_rng(1).random(n)
    triad = _triad_kernel()
    triad(a, b, c, 3.0)                                   # compile / page in
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        triad(a, b, c, 3.0)
        times.append(time.perf_counter() - t0)
    moved = 3 * 8 * n
    return dict(array_bytes=8 * n, bytes_moved=moved, passes=passes, best_bytes_per_s=moved / min(times),
                median_bytes_per_s=moved / float(np.median(times)), spread=float(max(times) / min(times) - 1.0))


def numpy_matmul(n: int = 2048, reps: int = 5) -> dict:
    """fp32 n^3 matmul through numpy's BLAS: best FLOP/s (a sanity floor for the derived peak)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return dict(n=n, best_flop_per_s=2 * n ** 3 / min(times), median_flop_per_s=2 * n ** 3 / float(np.median(times)))


def slug(facts: dict) -> str:
    """A spec name for this machine: the CPU model without trademarks and filler words, the
    usable core count, and '-vm' under a hypervisor (e.g. 'intel-xeon-2c-vm')."""
    name = re.sub(r"\((r|tm)\)|@.*$|\b(cpu|processor)\b", " ", facts["model_name"].lower())
    base = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or facts.get("machine", "cpu")
    return f"{base}-{facts['usable_cpus']}c" + ("-vm" if "hypervisor" in facts["flags"] else "")


def vector_width_bits(flags: list[str]) -> int:
    if "avx512f" in flags:
        return 512
    if "avx2" in flags or "avx" in flags:
        return 256
    return 128                                            # SSE / NEON


def hardware_spec(facts: dict, triad: dict, name: str | None = None, blas: dict | None = None) -> dict:
    """A CPU hardware spec (the registry's schema) of this machine, marked as measured;
    ``blas`` (numpy_matmul's result) is recorded against the derived fp32 peak."""
    if not facts.get("cpu_mhz"):
        raise SimulatorError("this machine: the OS does not report a CPU clock (/proc/cpuinfo 'cpu MHz'); "
                             "write the spec by hand (see hardware_specs/cpu/)")
    flags = facts["flags"]
    width = vector_width_bits(flags)
    vector = ["fp32"] + (["bf16"] if "avx512_bf16" in flags else []) + (["fp16"] if "avx512_fp16" in flags else [])
    matrix = {**({"bf16": 1024} if "amx_bf16" in flags else {}), **({"int8": 2048} if "amx_int8" in flags else {})}
    cores = facts["usable_cpus"]
    ghz = facts["cpu_mhz"] / 1e3
    today = _dt.date.today().isoformat()
    llc = last_level_cache_bytes(facts)
    fp32_peak = cores * facts["cpu_mhz"] * 1e6 * 2 * 2 * width / 32
    blas_note = (f" numpy's BLAS ran an fp32 {blas['n']}^3 matmul at {blas['best_flop_per_s'] / 1e9:.0f} GFLOP/s, "
                 f"{100 * blas['best_flop_per_s'] / fp32_peak:.0f}% of the derived fp32 peak "
                 f"({fp32_peak / 1e9:.0f} GFLOP/s).") if blas else ""
    return {
        "name": name or slug(facts), "kind": "cpu", "vendor": facts["model_name"].split()[0].replace("(R)", ""),
        "product": f"{facts['model_name']} ({cores} usable CPUs)", "status": "measured",
        "cpu": {"sockets": 1, "cores": cores, "clock": f"{ghz:.3f} GHz", "vector_width_bits": width,
                "fma_units_per_core": 2, "vector_dtypes": vector,
                **({"matrix_ops_per_cycle_per_core": matrix} if matrix else {})},
        "memory": [{"name": "DRAM (measured STREAM triad)",
                    "capacity": f"{facts['memory_total_bytes'] / 1e9:.2f} GB",
                    "bandwidth": f"{triad['best_bytes_per_s'] / 1e9:.2f} GB/s"}],
        "compute_units": cores, "clock": f"{ghz:.3f} GHz",
        "provenance": {
            "sources": [f"llmsim calibrate --this-machine on {today}: /proc/cpuinfo, /proc/meminfo, sysfs caches, "
                        f"a numba STREAM triad over {triad['array_bytes'] / 2**20:.0f} MiB arrays"],
            "date": today,
            "notes": (f"Measured on {facts['os']}. Cores are the CPUs this process may use ({cores}); clock is "
                      f"the OS-reported {facts['cpu_mhz']:.0f} MHz. Vector width {width} bits from the flags "
                      f"({', '.join(flags)}); 2 FMA units per core and AMX at 1024 bf16 / 2048 int8 ops per "
                      f"cycle are assumptions for this class (not measurable from the OS). Bandwidth is the best of "
                      f"{triad['passes']} triad passes (median {triad['median_bytes_per_s'] / 1e9:.2f} GB/s, "
                      f"spread {100 * triad['spread']:.0f}%), not the DIMMs' peak; last-level cache "
                      f"{llc / 2**20:.0f} MiB (left out as a level: no bandwidth measured). No power "
                      f"(no RAPL counter read).{blas_note}"),
        },
    }
