"""The host's state around a serving run (validation/harness/serving.py): a fixed host-bound
iteration timed before and after each rate's run, and the CPUs' counters.

  before_s, after_s  wall seconds of PROBE (serving_micro.GRID's 16 decode entries at context
                     128; serving_micro.time_once: slots assigned, the pass, to the device
                     synchronize), REPS times each
  cpu_before, cpu_after  /proc/stat's summed CPU jiffies (user, nice, system, idle, iowait,
                     irq, softirq, steal) and the mean of /proc/cpuinfo's "cpu MHz" (Linux;
                     {} elsewhere): steal counts the time a hypervisor gave this machine's
                     CPUs to others
  task_before_s, task_after_s  TASKS timings of serving_monitor.task just after each probe's
                     passes (the thread's CPU speed at the probe, beside the run's cpu_task)
  launch_before_s, launch_after_s  serving_monitor.launch_task just after each of the probe's
                     passes (``launch_paired``: one a pass, in order; before that flag, TASKS
                     timings after all the passes)
The simulator reads the probe times (simulator/serving/host_state.py); the counters are
recorded to tell a slow host's causes apart.
"""
from __future__ import annotations

import statistics
from pathlib import Path

PROBE = (16, 128, 0, 0, 0, 0, 0)
REPS = 20
TASKS = 10                        # serving_monitor.task after the probe's passes, on the same thread
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_counters() -> dict:
    """{field: jiffies} of /proc/stat's cpu line and cpu_mhz (mean over CPUs), or {}."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0].split()
        out = {k: int(v) for k, v in zip(STAT_FIELDS, line[1:])}
    except (OSError, IndexError, ValueError):
        return {}
    try:
        mhz = [float(x.split(":")[1]) for x in Path("/proc/cpuinfo").read_text().splitlines()
               if x.startswith("cpu MHz")]
        if mhz:
            out["cpu_mhz"] = round(statistics.fmean(mhz), 1)
    except (OSError, ValueError, IndexError):
        pass
    return out


def host_probe(batch, reps: int = REPS) -> dict:
    """PROBE's wall seconds ``reps`` times, each followed by serving_monitor.launch_task (a
    pair seconds apart at most, so a slow phase of the thread shows in both), then every slot
    freed; with the CPU counters and TASKS timings of serving_monitor.task. A slot cache too
    short for PROBE's positions (a test's) takes the context that fits."""
    import torch

    from validation.harness.serving_micro import time_once
    from validation.harness.serving_monitor import launch_task, task

    d, c = PROBE[:2]
    point = (d, max(min(c, batch.k.shape[3] - d - 1), 0), *PROBE[2:])
    sync = torch.cuda.synchronize if batch.m.device.type == "cuda" else (lambda: None)
    one = torch.ones(1, device=batch.m.device, dtype=batch.m.dtype)
    cpu = cpu_counters()
    times, launches = [], []
    for _ in range(reps):
        times.append(round(time_once(batch, point, sync)[1], 7))
        launches.append(round(launch_task(one), 7))
    batch.assign([], [])
    return dict(decode=d, context=point[1], times_s=times, cpu=cpu, task_s=[round(task(), 7) for _ in range(TASKS)],
                launch_s=launches)


def record(before: dict, after: dict) -> dict:
    """A point's host_probe entry (module docstring) from the probes before and after it."""
    return dict(decode=before["decode"], context=before["context"], before_s=before["times_s"],
                after_s=after["times_s"], cpu_before=before["cpu"], cpu_after=after["cpu"],
                task_before_s=before.get("task_s", []), task_after_s=after.get("task_s", []),
                launch_before_s=before.get("launch_s", []), launch_after_s=after.get("launch_s", []),
                launch_paired=True)


def summary(entry: dict) -> str:
    """One log line: the probe medians and the run's share of CPU time stolen."""
    b, a = (statistics.median(entry[k]) * 1e3 for k in ("before_s", "after_s"))
    text = f"host probe median {b:.2f} ms before, {a:.2f} ms after"
    c0, c1 = entry["cpu_before"], entry["cpu_after"]
    if c0 and c1 and all(k in c0 and k in c1 for k in STAT_FIELDS):
        total = sum(c1[k] - c0[k] for k in STAT_FIELDS)
        if total > 0:
            text += f"; CPU steal {(c1['steal'] - c0['steal']) / total:.1%}, idle {(c1['idle'] - c0['idle']) / total:.1%}"
    return text
