"""The host's speed during one serving run, from the harness's probe (validation/harness/
serving.py: a fixed host-bound synthetic iteration timed just before and just after each
rate's run, in the same process):

  host_scale = host seconds the probe took / mixed_host_s(probe)
  host seconds the probe took: h with combine(device_s, h, p) = median(probe wall s),
                     (m^p - d^p)^(1/p) (m itself when p is 0: the max)
  scaled host terms = host_scale x every term of iteration.host_terms (pass, layers, groups,
                      scheduler; the overlap exponent p kept)
mixed_host_s(probe) is the profile's host seconds of that very pass and device_s its device
seconds (iteration.iteration_device_s); calibration/serving_host.py fits the host terms and
p from the serving microbenchmark, pooled over its sessions: an average host. The probe's
decode batch keeps its device seconds under DEVICE_SHARE of its host seconds (checked:
``host_bound``), so its wall time measures the host. The scale is the environment's state
(a shared host's CPUs ran 1x to 3x slower over tens of seconds in the committed runs),
measured by a microbenchmark, never by the run it scales.

Within a run the host moves too (a shared host's CPU ran a run's passes 1.6-1.8x slower for
seconds between probes that read it normal). The harness times a fixed CPU task
(validation/harness/serving_monitor.task, ~1 ms) on the run's own thread every 0.25 s
between iterations (``cpu_task``) and after each probe's passes (``task_before_s``,
``task_after_s``); a run that has them is simulated in segments (host_segments):
  segment j from the j-th task's start: scale_j = host_scale x m_j / median(task at the probes)
m_j the median of the SEGMENT_SAMPLES task times centred on j: the CPU's speed on that
thread, a measurement of the environment beside the run's passes, not of them. Since
session serving-2026-12-02-launch the harness also times a fixed set of tensor launches
there (serving_monitor.launch_task: ``launch_s``, ``launch_before_s``, ``launch_after_s``),
the kind of host work the passes do; a run that has them is segmented by those instead.
Where the probe times a launch task after each of its passes (``launch_paired``), the
conversion from launch seconds to host scale is the median over those pairs
(launch_conversion) rather than the ratio of the two medians.
"""
from __future__ import annotations

import dataclasses
import statistics

import numpy as np

from simulator.engine.kernels.iteration import H_ON, H_OVERLAP, decode_cache, iteration_device_s, mixed_host_s
from simulator.graph.ops import N_FEATURES

DEVICE_SHARE = 0.5                # the probe's device seconds must stay under this share of its host seconds
SEGMENT_SAMPLES = 5               # task samples in each segment's running median (0.25 s apart: ~1.25 s)


def probe_entries(probe: dict) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the probe's decode entries: ``decode`` sequences at positions
    context .. context + decode - 1 (serving_micro.entries' decode rows)."""
    d, c = int(probe["decode"]), int(probe["context"])
    return np.arange(c, c + d, dtype=np.int64), np.ones(d, dtype=np.int64)


def probe_seconds(eng, probe: dict) -> tuple[float, float]:
    """(device seconds, profile host seconds) of the probe pass."""
    starts, lengths = probe_entries(probe)
    n = len(starts)
    cache = decode_cache(eng.model[0].shape[0], n)
    device_s, _ = iteration_device_s(eng.model, cache, np.ones(n, dtype=np.int64), starts, lengths, n,
                                     np.zeros(N_FEATURES), np.zeros(N_FEATURES))
    return device_s, mixed_host_s(eng.host, starts, lengths, n)


def host_scale(eng, probe: dict) -> float | None:
    """The host's speed the probe measured over the profile's (module docstring), the probe's
    median over its samples before and after the run; None when the profile has no host
    terms or the probe is not host-bound."""
    samples = list(probe.get("before_s", [])) + list(probe.get("after_s", []))
    if eng.host[H_ON] <= 0.0 or not samples:
        return None
    device_s, host_s = probe_seconds(eng, probe)
    measured = statistics.median(samples)
    if device_s >= DEVICE_SHARE * min(host_s, measured):
        return None
    return _host_took_s(measured, device_s, eng.host[H_OVERLAP]) / host_s


def _host_took_s(measured_s: float, device_s: float, p: float) -> float:
    """The host seconds h of a pass of measured_s wall and device_s device seconds:
    combine(device_s, h, p) = measured_s, so h = (m^p - d^p)^(1/p) (m itself when p is 0)."""
    return max(measured_s ** p - device_s ** p, 0.0) ** (1.0 / p) if p > 0.0 else measured_s


def launch_conversion(eng, probe: dict) -> float | None:
    """Host scale per launch-task second from a probe whose passes each came with a launch
    task (``launch_paired``): the median over the pairs of host_s(pass i) / mixed_host_s(probe)
    / launch_i, so a slow phase that caught the passes and not the launches, or the
    reverse, moves a pair and not the median; None when the probe is not paired, not
    host-bound or the profile has no host terms."""
    if not probe.get("launch_paired") or host_scale(eng, probe) is None:
        return None
    device_s, host_s = probe_seconds(eng, probe)
    p = eng.host[H_OVERLAP]
    passes = list(probe["before_s"]) + list(probe["after_s"])
    launches = list(probe["launch_before_s"]) + list(probe["launch_after_s"])
    return statistics.median(_host_took_s(m, device_s, p) / host_s / t for m, t in zip(passes, launches))


def scaled(eng, scale: float):
    """The engine with every host term times ``scale`` (the on flag and the overlap exponent kept)."""
    host = eng.host * scale
    host[H_ON], host[H_OVERLAP] = eng.host[H_ON], eng.host[H_OVERLAP]
    return dataclasses.replace(eng, host=host)


def host_segments(eng, point: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(segment starts s, host scales) of a measured run whose harness timed its CPU task
    during the run and at its probes (module docstring; the launch task where the run has it,
    else the interpreter's); None without them or a probe scale."""
    probe, task = point.get("host_probe") or {}, point.get("cpu_task") or {}
    kind = "launch" if task.get("launch_s") and probe.get("launch_before_s") else "task"
    ref = list(probe.get(f"{kind}_before_s", [])) + list(probe.get(f"{kind}_after_s", []))
    times = np.asarray(task.get(f"{kind}_s" if kind == "task" else "launch_s", []), dtype=np.float64)
    base = host_scale(eng, probe) if probe else None
    if base is None or not ref or times.size < SEGMENT_SAMPLES:
        return None
    half = SEGMENT_SAMPLES // 2
    smooth = np.array([np.median(times[max(i - half, 0):i + half + 1]) for i in range(times.size)])
    per_second = launch_conversion(eng, probe) if kind == "launch" else None
    if per_second is None:
        per_second = base / statistics.median(ref)
    return np.asarray(task["start_s"], dtype=np.float64), per_second * smooth
