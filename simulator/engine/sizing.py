"""The fewest devices that hold a scenario: a search over tensor x pipeline parallelism.

Tensor-parallel degrees are the powers of two (up to 64) that split the model's heads
and FFN columns (KV heads split or replicated); pipeline stages run from 1 to the layer
count. Candidates are tried by total device count, ties broken towards more tensor
parallelism (shorter per-token latency than more pipeline stages).
"""
from __future__ import annotations

from simulator.engine.kernels.phases import prefill_features
from simulator.engine.predict import memory_report
from simulator.graph.lower import lower
from simulator.specs import registry
from simulator.specs.workload import Workload

TP_DEGREES = (1, 2, 4, 8, 16, 32, 64)


def _tp_degrees(arch) -> list[int]:
    kv = arch.num_kv_heads
    return [t for t in TP_DEGREES
            if arch.num_heads % t == 0 and arch.ffn_size % t == 0 and (kv % t == 0 or t % kv == 0)]


def largest_split(model: str, w: Workload) -> Workload:
    """``w`` split as far as tensor x pipeline parallelism goes (most tp, then every layer a stage)."""
    _, arch, _ = registry.model(model)
    return w.model_copy(update={"tp": _tp_degrees(arch)[-1], "pp": arch.num_layers, "dp": 1, "microbatches": 1})


def fewest_devices(model: str, hardware: str, stack: str, w: Workload, max_devices: int = 4096) -> Workload | None:
    """A copy of ``w`` with the smallest tp x pp that fits, or None (no link, or too many)."""
    _, arch, _ = registry.model(model)
    hw = registry.hardware(hardware)
    unfused = registry.stack(stack).attention == "unfused"
    candidates = sorted(((tp * pp, -tp, tp, pp) for tp in _tp_degrees(arch)
                         for pp in range(1, arch.num_layers + 1) if tp * pp <= max_devices))
    for devices, _, tp, pp in candidates:
        if devices > 1 and not hw.interconnect:
            return None
        candidate = w.model_copy(update={"tp": tp, "pp": pp, "dp": 1, "microbatches": 1})
        table = lower(arch, w.weight_format, w.activation_dtype, w.kv_dtype, unfused, tp)
        if memory_report(table, hw, candidate, prefill_features(w.batch, w.prompt, table.window, table.moe)).fits:
            return candidate
    return None
