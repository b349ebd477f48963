"""Speed of one prediction, against llm-analysis 0.2.2 measured in the same run.

  process      one `llmsim predict` process (llama-3.1-8b, h100-sxm, B 8, S 1024, N 128,
               JSON; its disk cache warm, and LLMSIM_CACHE=off) against one llm-analysis
               `infer` process (Llama-2-7b, h100-sxm-80gb, the same B, S, N), interleaved: llm-analysis as pip installs it (it then imports
               transformers) and its own core alone (transformers made unimportable). Also
               `llmsim predict` with an empty numba cache (a fresh install; its kernels run
               as plain Python, engine/kernels/interpreted.py, so nothing is compiled) and an
               empty disk cache.
  in process   simulator.configure(...).predict and simulator.predict per call over 10,000
               distinct random scenarios (B 1..16, S 16..2048, N 2..256: each validated on
               first sight) and over 36 repeated ones, against llm-analysis's
               LLMAnalysis.inference per call (its configs built once; it refuses scenarios
               that do not fit, hence the ranges); simulator.predict_many per scenario.

Bytecode: pip compiles an installed package's modules (the peer's and numpy's .pyc are
there); this source tree's are compiled here first (compileall into its __pycache__ folders,
as a first run would write them) so that neither side pays Python's compiler in the timings:
an environment with PYTHONDONTWRITEBYTECODE=1 (this one) otherwise recompiles llmsim's ~45
modules in every process (~0.15 s here).

llm-analysis runs in its own interpreter: LLMSIM_PEER_PYTHON, else .venv-bench/bin/python
(`make bench` creates it: its transformers and huggingface-hub pins would change this
venv). Without it the peer lines are skipped. This machine's timings vary 30-40% from run
to run: medians with (min, max) over interleaved repeats; CPU time where stated.
"""
from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LLMSIM = [sys.executable, "-m", "simulator.cli.main", "predict", "--model", "llama-3.1-8b", "--hardware", "h100-sxm",
          "--batch", "8", "--prompt", "1024", "--output", "128", "--format", "json"]
PEER_ARGS = ["infer", "--model_name", "NousResearch_Llama-2-7b-hf", "--gpu_name", "h100-sxm-80gb",
             "--batch_size_per_gpu", "8", "--seq_len", "1024", "--num_tokens_to_generate", "128", "--log_level", "ERROR"]
PEER_LEAN = ("import sys, runpy; sys.modules['transformers'] = None; sys.argv = ['analysis', *sys.argv[1:]]; "
             "runpy.run_module('llm_analysis.analysis', run_name='__main__')")
PEER_IN_PROCESS = """
import random, sys, time
sys.modules['transformers'] = None
from llm_analysis.analysis import LLMAnalysis
from llm_analysis.config import ParallelismConfig, get_dtype_config_by_name, get_gpu_config_by_name, \\
    get_model_config_by_name
import logging; logging.disable(logging.CRITICAL)
a = LLMAnalysis(get_model_config_by_name('NousResearch_Llama-2-7b-hf'), get_gpu_config_by_name('h100-sxm-80gb'),
                get_dtype_config_by_name('w16a16e16'), ParallelismConfig())
rng = random.Random(0)
calls = [(rng.randint(1, 16), rng.randint(16, 2048), rng.randint(2, 256)) for _ in range(int(sys.argv[1]))]
for b, s, n in calls[:20]:
    a.inference(batch_size_per_gpu=b, seq_len=s, num_tokens_to_generate=n)
t0 = time.process_time()
for b, s, n in calls:
    a.inference(batch_size_per_gpu=b, seq_len=s, num_tokens_to_generate=n)
print((time.process_time() - t0) / len(calls))
"""


def peer_python() -> str | None:
    candidate = os.environ.get("LLMSIM_PEER_PYTHON") or str(ROOT / ".venv-bench" / "bin" / "python")
    if not Path(candidate).exists():
        return None
    probe = subprocess.run([candidate, "-c", "import llm_analysis"], capture_output=True)
    return candidate if probe.returncode == 0 else None


def _wall_s(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - t0


def compile_bytecode() -> None:
    """The package's .pyc, as pip writes them on install (see the module docstring)."""
    import compileall

    compileall.compile_dir(str(ROOT / "simulator"), quiet=1)


def processes(peer: str | None, repeats: int) -> dict[str, list[float]]:
    """Wall seconds per process, the commands interleaved in each repeat (one warm-up each).
    ``llmsim predict`` with its disk cache (simulator/cache.py: the configuration's specs and
    tables, not the answer: every process evaluates its scenario) and without it."""
    commands = {"llmsim predict": LLMSIM, "llmsim predict, LLMSIM_CACHE=off": LLMSIM}
    envs = {"llmsim predict, LLMSIM_CACHE=off": {**os.environ, "LLMSIM_CACHE": "off"}}
    if peer:
        commands["llm-analysis infer, as installed"] = [peer, "-m", "llm_analysis.analysis", *PEER_ARGS]
        commands["llm-analysis infer, core only"] = [peer, "-c", PEER_LEAN, *PEER_ARGS]
    for name, cmd in commands.items():
        _wall_s(cmd, envs.get(name))
    times = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(_wall_s(cmd, envs.get(name)))
    return times


def fresh_install_s(repeats: int = 3) -> list[float]:
    """`llmsim predict` with an empty numba cache and an empty disk cache (a new folder each)."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            times.append(_wall_s(LLMSIM, {**os.environ, "NUMBA_CACHE_DIR": cache, "LLMSIM_CACHE_DIR": cache}))
    return times


def in_process(distinct: int = 10_000, repeats: int = 5) -> dict[str, list[float]]:
    """CPU seconds per call of each way to predict in this process."""
    import numpy as np

    import simulator
    rng = random.Random(0)
    scenarios = [(rng.randint(1, 16), rng.randint(16, 2048), rng.randint(2, 256)) for _ in range(distinct)]   # the peer's
    repeated = [(b, s, n) for b in (1, 4, 16, 64) for s in (128, 1024, 4096) for n in (16, 128, 512)] * 100
    configured = simulator.configure("llama-3.1-8b", "h100-sxm")

    def by_name(b, s, n):
        return simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=b, prompt=s, output=n)

    ways = {"configure(...).predict, distinct": (configured.predict, scenarios),
            "configure(...).predict, repeated": (configured.predict, repeated),
            "simulator.predict, distinct": (by_name, scenarios),
            "simulator.predict, repeated": (by_name, repeated)}
    for f, calls in ways.values():
        for b, s, n in calls[:50]:
            f(b, s, n)
    times = {name: [] for name in ways}
    for _ in range(repeats):
        for name, (f, calls) in ways.items():
            t0 = time.process_time()
            for b, s, n in calls:
                f(b, s, n)
            times[name].append((time.process_time() - t0) / len(calls))
    grid = np.meshgrid(np.arange(1, 17), np.linspace(16, 2048, 64).astype(int), np.arange(2, 257, 25), indexing="ij")
    arrays = {"simulator.predict_many (wall)": [np.array(a) for a in zip(*scenarios)],
              "predict_many, 16x64x10 grid (wall)": [a.ravel() for a in grid]}
    for name, (b, s, n) in arrays.items():
        simulator.predict_many("llama-3.1-8b", "h100-sxm", batch=b, prompt=s, output=n)
        many = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            simulator.predict_many("llama-3.1-8b", "h100-sxm", batch=b, prompt=s, output=n)
            many.append((time.perf_counter() - t0) / len(b))
        times[name] = many
    spec = str(ROOT / "model_specs" / "llama-3.1-8b.yaml")
    t0 = time.process_time()
    for _ in range(10_000):
        os.stat(spec)
    times["one os.stat (by name: 3 a call)"] = [(time.process_time() - t0) / 10_000]
    return times


def peer_in_process(peer: str, calls: int = 2000, repeats: int = 5) -> list[float]:
    out = [subprocess.run([peer, "-c", PEER_IN_PROCESS, str(calls)], check=True, capture_output=True, text=True)
           for _ in range(repeats)]
    return [float(o.stdout.strip()) for o in out]


def _spread(values: list[float], scale: float, unit: str) -> str:
    med = statistics.median(values)
    return f"median {med * scale:,.3f} {unit} (min {min(values) * scale:,.3f}, max {max(values) * scale:,.3f}, n={len(values)})"


def main(repeats: int = int(os.environ.get("LLMSIM_BENCH_REPEATS", "7"))) -> None:
    print(f"cpu cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    peer = peer_python()
    if peer is None:
        print("llm-analysis not found (LLMSIM_PEER_PYTHON or .venv-bench): peer lines skipped")
    compile_bytecode()
    print("\none process, warm caches, compiled bytecode (wall s)")
    times = processes(peer, repeats)
    ours = statistics.median(times["llmsim predict"])
    for name, values in times.items():
        ratio = "" if name.startswith("llmsim") else f"   llmsim / this = {ours / statistics.median(values):.2f}x"
        print(f"  {name:<36} {_spread(values, 1, 's')}{ratio}")
    print(f"  {'llmsim predict, empty numba cache':<36} {_spread(fresh_install_s(), 1, 's')}")
    print("\nin process (CPU us per prediction)")
    calls = in_process()
    peer_us = statistics.median(peer_in_process(peer)) if peer else None
    for name, values in calls.items():
        ratio = f"   llm-analysis / this = {peer_us / statistics.median(values):.1f}x" if peer_us else ""
        print(f"  {name:<36} {_spread(values, 1e6, 'us')}{ratio}")
    for name in ("simulator.predict_many (wall)", "predict_many, 16x64x10 grid (wall)"):
        print(f"  {name}: {1 / statistics.median(calls[name]):,.0f} scenarios/s")
    if peer_us:
        print(f"  {'llm-analysis LLMAnalysis.inference':<36} median {peer_us * 1e6:,.1f} us")


if __name__ == "__main__":
    main()
