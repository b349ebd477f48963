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
