"""`llmsim sweep` as a process of its own: the prepared grid kept on disk (simulator/cache.py)
gives the rows a cold process and an in-process sweep give, follows an edited spec, and a
warm process neither reads YAML nor builds a graph; cached kernels load without numba's
compiler set-up (explore/startup.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator import cache
from simulator.explore import startup
from simulator.explore.sweep import sweep

ROOT = Path(__file__).resolve().parent.parent
GRID = """models: llama-3.2-1b
hardware: {device}
tp: [1, 3]                      # 3 divides no head count: skipped
batch: {{from: 1, to: 4, step: 1}}
prompt: [128, 1000]
output: [1, 16, 300]
"""
PROBE = """import sys
sys.argv = ["llmsim", *sys.argv[1:]]
from simulator.cli.main import main
code = main()
print(*sorted(m for m in ("networkx", "simulator.specs.registry", "numba.typed.typeddict") if m in sys.modules), file=sys.stderr)
raise SystemExit(code)
"""


def _llmsim(env, *args, probe: bool = False):
    cmd = [sys.executable, "-c", PROBE, *args] if probe else [sys.executable, "-m", "simulator.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)


@pytest.fixture
def grid(tmp_path):
    device = tmp_path / "device.yaml"
    device.write_text((ROOT / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text())
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(device=device))
    return path, device


def test_a_warm_process_writes_what_a_cold_one_and_the_library_write(tmp_path, grid):
    path, device = grid
    env = {**os.environ, cache.ENV_DIR: str(tmp_path / "cache")}
    off = {**env, cache.ENV_SWITCH: "off"}
    sweep(path, tmp_path / "lib.csv")
    expected = (tmp_path / "lib.csv").read_bytes()
    cold = _llmsim(env, "sweep", str(path), "--out", str(tmp_path / "cold.csv"))
    assert list((tmp_path / "cache").glob("*.pickle"))
    warm = _llmsim(env, "sweep", str(path), "--out", str(tmp_path / "warm.csv"), probe=True)
    _llmsim(off, "sweep", str(path), "--out", str(tmp_path / "off.csv"))
    for name in ("cold", "warm", "off"):
        assert (tmp_path / f"{name}.csv").read_bytes() == expected, name
    assert "skipped 1 configurations" in cold.stdout and "skipped 1 configurations" in warm.stdout
    assert warm.stderr.split() == []                    # no spec reading, graph or numba's compiler registries
    assert _llmsim(env, "sweep", str(path)).stdout.encode() == expected      # rows to stdout
    text = device.read_text()
    assert "capacity: 80 GiB" in text
    device.write_text(text.replace("capacity: 80 GiB", "capacity: 40 GiB"))
    _llmsim(env, "sweep", str(path), "--out", str(tmp_path / "edited.csv"))
    _llmsim(off, "sweep", str(path), "--out", str(tmp_path / "edited-off.csv"))
    edited = (tmp_path / "edited.csv").read_bytes()
    assert edited == (tmp_path / "edited-off.csv").read_bytes() != expected


def test_a_warm_process_writes_the_parquet_the_library_writes(tmp_path, grid):
    pq = pytest.importorskip("pyarrow.parquet")
    path, _ = grid
    env = {**os.environ, cache.ENV_DIR: str(tmp_path / "cache")}
    sweep(path, tmp_path / "lib.parquet")
    for name in ("cold", "warm"):
        _llmsim(env, "sweep", str(path), "--out", str(tmp_path / f"{name}.parquet"))
        got, expected = pq.read_table(tmp_path / f"{name}.parquet"), pq.read_table(tmp_path / "lib.parquet")
        assert got.schema == expected.schema and got.num_rows == 24            # 1 configuration x 4 x 2 x 3
        assert repr(got.to_pylist()) == repr(expected.to_pylist())             # repr: nan as 'nan'
    types = {f.name: str(f.type) for f in got.schema}
    assert types["model"] == "string" and types["tp"] == "int64" and types["fits"] == "bool"
    assert types["ttft_s"] == types["acceptance"] == "double" and not any(f.nullable for f in got.schema)


def test_load_light_applies_once_and_only_to_a_cached_dispatcher():
    numba = pytest.importorskip("numba")

    @numba.njit(cache=False)
    def uncached(x):
        return x + 1

    assert not startup.load_light(uncached)              # its cache is numba's NullCache
    assert not startup.load_light(lambda x: x)           # a kernel running as plain Python
    assert uncached(1) == 2


KERNEL = """import sys
import numpy as np
from numba import njit, prange
from simulator.explore.startup import load_light

@njit(cache=True, parallel=True)
def grow(x):
    out = np.empty(x.shape[0] * 2)          # NRT allocations, a parallel loop
    for i in prange(out.shape[0]):
        out[i] = x[i // 2] * 1.5
    return out

assert load_light(grow) and not load_light(grow)      # once per dispatcher
print(grow(np.arange(5.0)).sum(), "numba.typed.typeddict" in sys.modules)
"""


def test_a_light_load_compiles_on_a_miss_and_loads_the_cached_kernel_after(tmp_path):
    (tmp_path / "kernel.py").write_text(KERNEL)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, str(tmp_path / "kernel.py")], capture_output=True, text=True, env=env,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][0] == runs[1][0] == "30.0"
    assert runs[0][1] == "True" and runs[1][1] == "False"      # compiled (registries loaded), then only loaded
