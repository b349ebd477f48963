"""A host-speed monitor beside the serving runs (validation/harness/serving.py --host-monitor):
a separate process, pinned to the machine's last CPU (the run's process is not pinned), times
a fixed pure-Python task (TASK_OPS multiply-adds) every PERIOD_S and keeps every sample's
(start on the monotonic clock, seconds). It touches no GPU and shares no interpreter lock
with the run, so its samples say how fast a CPU of the machine runs Python while the run is
under way: a machine-wide slow phase shows in them, a slow phase of the run's own CPU alone
does not. The serving file keeps each rate's samples (``host_monitor``: seconds from that
rate's start, seconds); nothing is fitted from them. launch_task is the tensor-launch
counterpart of task that the run's own thread times (serving.py's cpu_task).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

TASK_OPS = 20_000
PERIOD_S = 0.01
LAUNCHES = 100                    # launch_task's tensor operations


def task() -> float:
    """Seconds of the fixed task once."""
    t = time.perf_counter()
    x = 0
    for i in range(TASK_OPS):
        x += i * i
    return time.perf_counter() - t


def launch_task(x) -> float:
    """Host seconds of LAUNCHES elementwise operations on the one-element tensor ``x`` (on the
    GPU: each a dispatch through PyTorch and a kernel launch, a microsecond of device work),
    until the last launch returns, then a synchronize outside the timing: the kind of host
    work a pass's launches are (MixedBatch.forward), where task() times the interpreter only.
    Run between iterations, with the device idle, so no launch waits on a full queue."""
    import torch

    t = time.perf_counter()
    y = x
    for _ in range(LAUNCHES):
        y = y + x
    took = time.perf_counter() - t
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return took


def _loop(conn, cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    samples: list[tuple[float, float]] = []
    while True:
        start = time.perf_counter()
        samples.append((start, task()))
        if conn.poll():
            msg = conn.recv()
            if msg is None:
                conn.close()
                return
            lo, hi = msg
            conn.send([(s, d) for s, d in samples if lo <= s <= hi])
        time.sleep(max(PERIOD_S - (time.perf_counter() - start), 0.0))


class Monitor:
    """The monitor process (module docstring), started at construction."""

    def __init__(self, cpu: int | None = None):
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cpu = cpu if cpu is not None else (cpus[-1] if len(cpus) > 1 else None)
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_loop, args=(child, self.cpu), daemon=True)
        self.proc.start()

    def since(self, t0_perf_s: float, wall_s: float) -> dict:
        """The samples from t0_perf_s (the monotonic clock) over wall_s seconds, as seconds from t0."""
        self.conn.send((t0_perf_s, t0_perf_s + wall_s))
        rows = self.conn.recv()
        return dict(cpu=self.cpu, task_ops=TASK_OPS, period_s=PERIOD_S,
                    start_s=[round(s - t0_perf_s, 6) for s, _ in rows], task_s=[round(d, 7) for _, d in rows])

    def stop(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=5)
