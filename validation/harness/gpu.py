"""GPU helpers: NVML, environment block, ceilings, timing and energy loops.

torch and pynvml are imported inside functions so that this module imports on
a machine without either.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
import time

from . import HARNESS_VERSION

GiB = 1 << 30


def gpu_slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "unknown-gpu"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def sync():
    import torch

    torch.cuda.synchronize()


# --------------------------------------------------------------------------- NVML
class Nvml:
    """Thin, failure-tolerant NVML wrapper for the GPU torch uses as device 0."""

    def __init__(self):
        self.ok = False
        self.error = None
        self.h = None
        try:
            import pynvml

            self.nv = pynvml
            pynvml.nvmlInit()
            self.h = self._match_handle()
            self.ok = True
        except Exception as e:  # no NVML, no driver, ...
            self.error = f"{type(e).__name__}: {e}"

    def _match_handle(self):
        nv = self.nv
        n = nv.nvmlDeviceGetCount()
        want = None
        try:
            import torch

            want = str(torch.cuda.get_device_properties(0).uuid).lower()
        except Exception:
            pass
        if want:
            for i in range(n):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                u = nv.nvmlDeviceGetUUID(h)
                u = u.decode() if isinstance(u, bytes) else u
                if want in u.lower():
                    return h
        vis = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        idx = int(vis) if vis.isdigit() else 0
        return nv.nvmlDeviceGetHandleByIndex(idx)

    def _call(self, fn, *a):
        if not self.ok:
            return None
        try:
            r = getattr(self.nv, fn)(*a)
            return r.decode() if isinstance(r, bytes) else r
        except Exception:
            return None

    def power_w(self):
        mw = self._call("nvmlDeviceGetPowerUsage", self.h)
        return None if mw is None else mw / 1000.0

    def energy_mj(self):
        return self._call("nvmlDeviceGetTotalEnergyConsumption", self.h)

    def info(self) -> dict:
        nv = getattr(self, "nv", None)
        d = {"nvml_ok": self.ok, "nvml_error": self.error}
        if not self.ok:
            return d

        def mw(x):
            return None if x is None else x / 1000.0

        d.update(
            nvml_name=self._call("nvmlDeviceGetName", self.h),
            driver_version=self._call("nvmlSystemGetDriverVersion"),
            power_limit_w=mw(self._call("nvmlDeviceGetPowerManagementLimit", self.h)),
            enforced_power_limit_w=mw(self._call("nvmlDeviceGetEnforcedPowerLimit", self.h)),
            default_power_limit_w=mw(self._call("nvmlDeviceGetPowerManagementDefaultLimit", self.h)),
            max_sm_clock_mhz=self._call("nvmlDeviceGetMaxClockInfo", self.h, nv.NVML_CLOCK_SM),
            max_mem_clock_mhz=self._call("nvmlDeviceGetMaxClockInfo", self.h, nv.NVML_CLOCK_MEM),
            sm_clock_mhz_at_start=self._call("nvmlDeviceGetClockInfo", self.h, nv.NVML_CLOCK_SM),
            mem_clock_mhz_at_start=self._call("nvmlDeviceGetClockInfo", self.h, nv.NVML_CLOCK_MEM),
            temperature_c_at_start=self._call("nvmlDeviceGetTemperature", self.h, nv.NVML_TEMPERATURE_GPU),
            energy_counter_available=self.energy_mj() is not None,
        )
        return d

    def clocks_now(self) -> dict:
        if not self.ok:
            return {}
        nv = self.nv
        return dict(
            sm_clock_mhz=self._call("nvmlDeviceGetClockInfo", self.h, nv.NVML_CLOCK_SM),
            mem_clock_mhz=self._call("nvmlDeviceGetClockInfo", self.h, nv.NVML_CLOCK_MEM),
            temperature_c=self._call("nvmlDeviceGetTemperature", self.h, nv.NVML_TEMPERATURE_GPU),
        )


def idle_power(nvml: Nvml, seconds: float = 2.0, period: float = 0.02) -> dict:
    """Mean of nvmlDeviceGetPowerUsage over `seconds` with the GPU idle, and
    the energy counter's mean over the same window."""
    sync()
    e0 = nvml.energy_mj()
    t0 = time.perf_counter()
    samples = []
    while time.perf_counter() - t0 < seconds:
        p = nvml.power_w()
        if p is not None:
            samples.append(p)
        time.sleep(period)
    dt = time.perf_counter() - t0
    e1 = nvml.energy_mj()
    out = {"duration_s": dt, "samples": len(samples)}
    out["idle_power_w"] = statistics.fmean(samples) if samples else None
    out["idle_power_min_w"] = min(samples) if samples else None
    out["idle_power_max_w"] = max(samples) if samples else None
    out["idle_power_from_energy_w"] = (e1 - e0) / 1000.0 / dt if (e0 is not None and e1 is not None) else None
    return out


# --------------------------------------------------------------------------- timing
def time_events(fn, reps: int, warmups: int = 2, sync_each: bool = True):
    """CUDA events around each call of fn(); returns the list of seconds."""
    import torch

    for _ in range(warmups):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        if sync_each:
            sync()
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1000.0)
    return ts


def capture_graph(fn, warmups: int = 3):
    """Warm up fn on a side stream, then capture one call in a CUDA graph.
    Returns (graph, output of the captured call)."""
    import torch

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmups):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    sync()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    sync()
    return g, out


def time_replays(g, replays: int, warm: int = 3):
    import torch

    for _ in range(warm):
        g.replay()
    sync()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(replays)]
    for a, b in ev:
        a.record()
        g.replay()
        b.record()
    sync()
    return [a.elapsed_time(b) / 1000.0 for a, b in ev]


def bench_graph(launch, n_inner: int, replays: int = 5, warm_calls: int = 2):
    """Capture n_inner calls launch(i) (i = 0..n_inner-1) in one CUDA graph and
    time replays; returns (median seconds per call, min per call, replays)."""
    import torch

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(min(warm_calls, n_inner)):
            launch(i)
    torch.cuda.current_stream().wait_stream(s)
    sync()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(n_inner):
            launch(i)
    ts = time_replays(g, replays, warm=1)
    del g
    return statistics.median(ts) / n_inner, min(ts) / n_inner, replays


def summarize(ts):
    return dict(latency_median_s=statistics.median(ts), latency_min_s=min(ts), latency_max_s=max(ts), repeats=len(ts))


def energy_loop(nvml: Nvml, launch, per_call_s: float, min_s: float) -> dict:
    """Run launch() back to back for at least min_s; NVML total energy before and after."""
    chunk = max(1, min(2000, int(0.1 / max(per_call_s, 1e-6))))
    sync()
    e0 = nvml.energy_mj()
    t0 = time.perf_counter()
    n = 0
    while True:
        for _ in range(chunk):
            launch()
        n += chunk
        sync()
        if time.perf_counter() - t0 >= min_s:
            break
    dt = time.perf_counter() - t0
    e1 = nvml.energy_mj()
    out = dict(calls=n, duration_s=dt, time_per_call_s=dt / n)
    if e0 is None or e1 is None:
        out.update(energy_j=None, energy_per_call_j=None, power_mean_w=None, error="NVML energy counter unavailable")
    else:
        ej = (e1 - e0) / 1000.0
        out.update(energy_j=ej, energy_per_call_j=ej / n, power_mean_w=ej / dt)
    out.update({k + "_after": v for k, v in nvml.clocks_now().items()})
    return out


# --------------------------------------------------------------------------- ceilings
def matmul_ceiling(n: int = 8192, reps: int = 10) -> dict:
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ts = time_events(lambda: a @ b, reps, warmups=3, sync_each=False)
    med = statistics.median(ts)
    flops = 2.0 * n ** 3
    del a, b
    return dict(size=n, flops=flops, latency_median_s=med, latency_min_s=min(ts), repeats=reps, flop_per_s=flops / med)


def copy_ceiling(nbytes: int = 2 * GiB, reps: int = 10) -> dict:
    import torch

    src = torch.empty(nbytes // 2, device="cuda", dtype=torch.bfloat16).normal_()
    dst = torch.empty_like(src)
    ts = time_events(lambda: dst.copy_(src), reps, warmups=2, sync_each=False)
    med = statistics.median(ts)
    del src, dst
    return dict(bytes=nbytes, bytes_moved=2 * nbytes, latency_median_s=med, latency_min_s=min(ts), repeats=reps,
                bytes_per_s=2 * nbytes / med)


def environment(nvml: Nvml) -> dict:
    import torch

    p = torch.cuda.get_device_properties(0)
    env = dict(
        harness_version=HARNESS_VERSION,
        date_utc=utc_now(),
        gpu_name=torch.cuda.get_device_name(0),
        gpu_slug=gpu_slug(torch.cuda.get_device_name(0)),
        sm_count=p.multi_processor_count,
        compute_capability=f"{p.major}.{p.minor}",
        total_memory_bytes=p.total_memory,
        l2_cache_bytes=getattr(p, "L2_cache_size", None),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        cudnn_version=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        python_version=platform.python_version(),
        device_count=torch.cuda.device_count(),
        stack="pytorch-ref",
        stack_notes=[
            "random bf16 weights; x @ W.t(); fused QKV matmul, q/k/v bias as a separate add kernel",
            "rotary as separate elementwise ops (neg, cat, mul, mul, add) on q and k",
            "static KV cache [layers, batch, kv_heads, max_len, head_dim] (max_len = needed length rounded up to 64)",
            "SDPA with the flash backend forced; prefill causal + enable_gqa; decode grouped q over C+1 positions, no mask",
            "final rms_norm over all positions, LM head on the last position only, argmax",
            "prefill eager (events around the call, synchronized before each rep); decode step as one CUDA graph replay",
        ],
    )
    env.update(nvml.info())
    return env


def count_kernels(fn, top: int = 40) -> dict:
    """Device kernels (and memcpy/memset) that one call of fn() launches, by
    torch.profiler; names shortened. Eager execution."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    import warnings

    sync()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            sync()
    names = {}
    for e in prof.events():
        if getattr(e, "device_type", None) != DeviceType.CUDA:
            continue
        n = e.name
        n = n if len(n) <= 120 else n[:117] + "..."
        names[n] = names.get(n, 0) + 1
    items = sorted(names.items(), key=lambda kv: -kv[1])
    return dict(total=sum(names.values()), distinct=len(names), by_name=dict(items[:top]))
