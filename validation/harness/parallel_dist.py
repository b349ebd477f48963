"""One process per device for the harness's parallel modes, without torchrun: spawn, join a
process group (NCCL on CUDA, gloo on the CPU), time across ranks, describe the environment.

``launch(world, fn, *args)`` starts ``world`` processes (torch.multiprocessing, spawn), each
calling ``fn(ctx, *args)`` with a ``Rank`` context after joining the group over a TCP store on
127.0.0.1; it returns rank 0's return value. NVLink multicast stays off on every rank: the
variables of ``NCCL_SAFE_ENV`` are set before the processes start (the device notes: a
program that uses multicast can take the host's GPUs out of service). torch is imported
inside functions.
"""
from __future__ import annotations

import os
import pickle
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# NVLink SHARP / multicast off in NCCL, PyTorch's symmetric memory and NVSHMEM (KINDS.md)
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
RECORDED_ENV_PREFIXES = ("NCCL_", "TORCH_SYMM", "NVSHMEM_", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")


@dataclass
class Rank:
    """One process of a parallel run: its rank, the world, the device and the backend."""

    rank: int
    world: int
    device: str            # "cuda:<rank>" or "cpu"
    backend: str           # "nccl" or "gloo"

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def sync(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()

    def barrier(self):
        import torch.distributed as dist

        self.sync()
        dist.barrier()
        self.sync()

    def slowest(self, seconds: list[float]) -> list[float]:
        """Each repeat's time as the slowest rank saw it (an all-reduce MAX over ranks)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor(seconds, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, world, port, backend, fn, args, result_path):
    import torch
    import torch.distributed as dist

    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    else:                                  # the CPU's cores shared among the ranks
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    kw = {"device_id": torch.device(device)} if backend == "nccl" else {}
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, **kw)
    try:
        out = fn(Rank(rank, world, device, backend), *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    if rank == 0:
        Path(result_path).write_bytes(pickle.dumps(out))


def pick_backend(requested: str | None = None) -> str:
    """``requested`` ("nccl" or "gloo"), else NCCL when CUDA is there, else gloo."""
    import torch

    backend = requested or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend {backend!r}: expected nccl or gloo")
    return backend


def launch(world: int, fn, *args, backend: str | None = None):
    """Run ``fn(Rank, *args)`` on ``world`` spawned processes; rank 0's return value."""
    import torch
    import torch.multiprocessing as mp

    backend = pick_backend(backend)
    if backend == "nccl" and torch.cuda.device_count() < world:
        raise ValueError(f"world size {world} needs {world} GPUs; {torch.cuda.device_count()} visible")
    os.environ.update(NCCL_SAFE_ENV)       # inherited by the spawned processes
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "rank0.pkl"
        mp.spawn(_entry, args=(world, _free_port(), backend, fn, args, str(result)), nprocs=world, join=True)
        return pickle.loads(result.read_bytes())


def timed(ctx: Rank, fn, repeats: int, warmups: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` calls of fn() started together on every rank (a barrier
    before each), as the slowest rank saw them: CUDA events on a GPU, perf_counter on the CPU."""
    import torch

    for _ in range(warmups):
        fn()
    ts = []
    for _ in range(repeats):
        ctx.barrier()
        if ctx.cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return ctx.slowest(ts)


def summary(ts: list[float]) -> dict:
    return dict(latency_median_s=statistics.median(ts), latency_min_s=min(ts), latency_max_s=max(ts), repeats=len(ts))


def environment(ctx: Rank) -> dict:
    """The e2e/micro environment block of this device (gpu.environment on CUDA, the CPU's
    facts otherwise) plus the parallel run's: backend, world size, NCCL version, variables."""
    import torch

    from validation.harness import gpu as G

    if ctx.cuda:
        env = G.environment(G.Nvml())
    else:
        from simulator.calibration.hostprobe import cpu_facts
        from validation.harness.cpu import environment as cpu_environment

        env = cpu_environment(cpu_facts())
    nccl = None
    if ctx.backend == "nccl":
        v = torch.cuda.nccl.version()
        nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    env.update(backend=ctx.backend, world_size=ctx.world, nccl_version=nccl,
               env_vars={k: v for k, v in sorted(os.environ.items()) if k.startswith(RECORDED_ENV_PREFIXES)})
    return env


def slowest_int(ctx: Rank, value: int) -> int:
    """The largest of every rank's ``value`` (so that all ranks take the same decision)."""
    return int(ctx.slowest([float(value)])[0])


def slug(env: dict) -> str:
    """The device part of a file name: the GPU's slug, or the CPU's."""
    return env.get("gpu_slug") or env.get("cpu_slug") or "cpu"


def run_block(world: int, quick: bool, **extra) -> dict:
    """A parallel file's ``run`` block as the launching process knows it (flush adds the
    status and the elapsed seconds)."""
    import sys

    from validation.harness import HARNESS_VERSION

    return dict(harness_version=HARNESS_VERSION, quick=quick, argv=sys.argv[1:], world_size=world, **extra,
                started_unix_s=time.time(), status="running", elapsed_s=None)


def flush(ctx: Rank, out: Path, name: str, doc: dict, status: str = "running") -> Path:
    """Rank 0 writes ``doc`` (checked against its schema, jsonfile.write_json) as out/name with
    its status and elapsed seconds, so a run cut short still leaves every point measured so far."""
    from validation.harness.jsonfile import write_json

    path = out / name
    if ctx.rank == 0:
        doc["run"].update(status=status, elapsed_s=time.time() - doc["run"]["started_unix_s"])
        out.mkdir(parents=True, exist_ok=True)
        write_json(path, doc)
    return path
