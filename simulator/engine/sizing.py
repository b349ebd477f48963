"""The fewest devices that hold a scenario: a search over tensor x pipeline parallelism.

Tensor-parallel degrees are the powers of two (up to 64) that split the model's heads
and FFN columns (KV heads split or replicated); pipeline stages run from 1 to the layer
count. The smallest total device count wins, ties broken towards more tensor parallelism
(shorter per-token latency than more pipeline stages).

The footprint per device never grows with the stage count (predict.memory_report: the
layers' weights and KV cache are split over the stages, the embeddings and head sit on one
stage, the activations do not depend on it), so for each tensor-parallel degree the fewest
stages that fit are found by bisection: O(log layers) footprints, not one per layer count.
"""
from __future__ import annotations

from simulator.engine.kernels.phases import prefill_features
from simulator.engine.predict import memory_report
from simulator.graph.lower import lower
from simulator.specs.consistency import tp_problem
from simulator.specs.workload import Workload

TP_DEGREES = (1, 2, 4, 8, 16, 32, 64)
MAX_DEVICES = 4096


def _tp_degrees(arch) -> list[int]:
    return [t for t in TP_DEGREES if tp_problem(arch, t) is None]


def _split(w: Workload, tp: int, pp: int) -> Workload:
    return w.model_copy(update={"tp": tp, "pp": pp, "dp": 1, "microbatches": 1})


def largest_split(arch, w: Workload) -> Workload:
    """``w`` split as far as tensor x pipeline parallelism goes (most tp, then every layer a stage)."""
    return _split(w, _tp_degrees(arch)[-1], arch.num_layers)


def _fewest_stages(fits, most: int) -> int | None:
    """The smallest pp in 1..most with fits(pp), given fits is monotone in pp; None if none."""
    if most < 1 or not fits(most):
        return None
    low, high = 1, most                  # fits(high) holds
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return high


def fewest_devices(arch, hw, stack, w: Workload, max_devices: int | None = MAX_DEVICES) -> Workload | None:
    """A copy of ``w`` with the smallest tp x pp (at most ``max_devices``; None: no limit)
    that fits ``arch`` (an Architecture) on ``hw`` (a hardware spec) with ``stack`` (a
    StackSpec), or None (nothing fits; or it needs more than one device and the device has
    no link)."""
    best = None
    for tp in _tp_degrees(arch) if hw.interconnect else [1]:
        table = lower(arch, w.weight_format, w.activation_dtype, w.kv_dtype, tp=tp, **stack.lowering())
        features = prefill_features(w.batch, w.prompt, table.window, table.moe)

        def fits(pp: int, tp=tp, table=table, features=features) -> bool:
            return memory_report(table, hw, _split(w, tp, pp), features).fits

        most = arch.num_layers if hw.interconnect else 1
        if max_devices is not None:
            most = min(most, max_devices // tp)
        pp = _fewest_stages(fits, most)
        if pp is not None and (best is None or (tp * pp, -tp) < (best[0] * best[1], -best[0])):
            best = (tp, pp)
    return None if best is None else _split(w, *best)
