"""`llmsim calibrate --this-machine`: measure this CPU, write its hardware spec and its
`pytorch-ref` stack entry.

1. hostprobe: cores, clock, flags and caches from the OS; DRAM bandwidth from a triad.
2. With torch installed: the harness's CPU
   microbenchmarks in each dtype the CPU computes in (fp32, and bf16 where it has bf16
   instructions), written under validation/measurements/<name>/this-machine-<date>/.
3. calibrate_dtypes(): the GPUs' fits per dtype; bf16's is the profile and the other dtypes'
   go in its ``dtypes`` overrides.
Without torch only the hardware spec is written (the stack's cpu class default applies).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.util
from pathlib import Path

from simulator.calibration import hostprobe
from simulator.errors import SimulatorError
from simulator.specs import registry
from simulator.specs.base import Dtype

PROFILE_MODELS = ("smollm-135m", "llama-3.2-1b")   # whose operator shapes the microbenchmarks use


def harness_cpu():
    """The harness's CPU path (validation.harness.cpu, installed with the simulator), imported
    only here, where torch is needed; or a one-line error saying what is missing."""
    if importlib.util.find_spec("torch") is None:
        raise SimulatorError("measuring the reference stack needs torch: pip install 'llmsim[measure]' "
                             "(on this machine: pip install torch==2.13.0)")
    try:
        from validation.harness import cpu
    except ImportError as exc:
        raise SimulatorError(f"measuring the reference stack needs the harness package validation.harness "
                             f"(installed with llmsim; {exc})") from None
    return cpu


def compute_dtypes(spec: dict) -> list[Dtype]:
    return [Dtype.fp32] + ([Dtype.bf16] if "bf16" in spec["cpu"]["vector_dtypes"] else [])


@dataclasses.dataclass(frozen=True)
class Probe:
    """What probing this machine found, kept for the measurements that follow."""

    facts: dict                  # hostprobe.cpu_facts()
    spec: dict                   # the hardware spec, validated, not yet written
    est_flop_per_s: float        # half numpy's BLAS fp32 rate: the harness plans its time with it


def measure_micro(probe: Probe, out_dir: Path, quick: bool, log=lambda m: None) -> dict[Dtype, Path]:
    """The harness's CPU microbenchmarks, one file per compute dtype."""
    cpu = harness_cpu()
    shapes, heads = cpu.micro_inputs(cpu.model_configs(PROFILE_MODELS))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for dtype in compute_dtypes(probe.spec):
        res = cpu.CpuMicro(probe.facts, dtype.value, shapes, log, quick=quick).run(probe.est_flop_per_s, heads)
        path = out_dir / f"micro-{probe.spec['name']}-{dtype.value}.json"
        cpu.write_json(path, res)
        files[dtype] = path
    return files


def session_dir(name: str) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M")
    return registry.data_root() / "validation" / "measurements" / name / f"this-machine-{stamp}"


def probe(name: str | None = None, log=lambda m: None) -> Probe:
    """This machine: its facts, its hardware spec (validated against the schema, not yet
    written) and a matmul rate to plan measurements with."""
    facts = hostprobe.cpu_facts()
    log(f"this machine: {facts['model_name']}, {facts['usable_cpus']} usable CPUs, flags {', '.join(facts['flags'])}")
    triad = hostprobe.stream_triad(facts)
    log(f"STREAM triad: best {triad['best_bytes_per_s'] / 1e9:.1f} GB/s, median "
        f"{triad['median_bytes_per_s'] / 1e9:.1f} GB/s over {triad['passes']} passes")
    blas = hostprobe.numpy_matmul()
    log(f"numpy BLAS fp32 matmul: {blas['best_flop_per_s'] / 1e9:.0f} GFLOP/s")
    spec = hostprobe.hardware_spec(facts, triad, name, blas)
    registry.validate(registry._HARDWARE, spec, f"hardware_specs/cpu/{spec['name']}.yaml")
    return Probe(facts, spec, 0.5 * blas["best_flop_per_s"])
