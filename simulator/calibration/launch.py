"""Per-kernel and per-pass fixed costs from a micro file's launch, eager and host_layer
sections."""
from __future__ import annotations

import numpy as np

from simulator.calibration.profile import quantity, shift_times
from simulator.specs.measurement import MicroFile
from simulator.units import parse as parse_quantity

# operator kind -> the eager ops of the reference stack whose launch rates it averages
EAGER_OPS = {"matmul": ("matmul",), "lm_head": ("matmul",), "expert_matmul": ("matmul",), "norm": ("rms_norm",),
             "attention": ("sdpa",),
             "rotary": ("mul", "neg", "cat", "mul", "add"), "activation": ("silu", "mul"), "residual_add": ("add",),
             "kv_write": ("copy_",), "embedding": ("index_select",), "sampling": ("argmax",),
             # kinds with no eager rate of their own: the nearest ops'
             "quantize": ("add", "mul", "copy_"), "moe_route": ("argmax", "index_select", "copy_"),
             "moe_combine": ("mul", "index_select")}

# kernels of one reference-stack layer by kind (the host_layer model has no q/k/v bias)
LAYER_KERNELS = {"norm": 2, "matmul": 4, "rotary": 10, "kv_write": 2, "attention": 1, "residual_add": 2,
                 "activation": 2}


def launch_fields(micro: MicroFile) -> dict:
    """Per-kernel and per-pass fixed costs. A GPU file has CUDA-graph and eager launch rates;
    a CPU file (launch.dispatch_per_op_s) has the one cost every synchronous op pays on the
    host: no separate launch floor, no graph replay."""
    launch = micro.launch
    if launch is None:
        from simulator.errors import SpecError
        raise SpecError("micro file", "launch", "missing: calibration needs the launch section")
    if micro.from_cpu:
        return {"kernel_overhead": quantity(launch.dispatch_per_op_s, "s"), "prefill_launch_overhead": "0 s",
                "decode_step_overhead": "0 s"}
    return {"kernel_overhead": quantity(launch.graph_per_kernel_s, "s"),
            "prefill_launch_overhead": quantity(launch.eager_per_kernel_s, "s"), **eager_launch(micro),
            "decode_step_overhead": quantity(max(launch.one_kernel_graph_replay_s - launch.graph_per_kernel_s, 0.0),
                                             "s")}


def eager_launch(micro: MicroFile) -> dict:
    """Per-kind eager launch floors from the micro file's ``eager`` section (absent in files
    from harness runs before it existed: then the single tiny-add rate stands for all). When
    the file has ``host_layer`` (a tiny model's eager forward, per layer), the per-op rates
    are scaled so one layer's kernels add up to it: the model code's own host work between
    the calls (views, slicing) is spread over its kernels."""
    eager = micro.eager
    if not eager:
        return {}
    per_kind = {kind: float(np.mean([eager[op].eager_per_call_s for op in ops])) for kind, ops in EAGER_OPS.items()}
    layer = micro.host_layer
    if layer and layer.per_layer_s > 0:
        scale = layer.per_layer_s / sum(n * per_kind[k] for k, n in LAYER_KERNELS.items())
        per_kind = {k: v * max(scale, 1.0) for k, v in per_kind.items()}
    return {"prefill_launch_overhead_by_kind": {kind: quantity(v, "s") for kind, v in per_kind.items()}}


def host_floors(fields: dict, host_micros: dict[str, MicroFile] | None, host_scale: float) -> dict:
    """The prefill launch floors as the median over every session that measured them (the
    host's eager launch cost varies between machines far more than the GPU does: the same
    harness saw 209 to 508 us a layer), scaled by the in-context host scale."""
    floors = fields.get("prefill_launch_overhead_by_kind")
    sessions = {path: eager_launch(m)["prefill_launch_overhead_by_kind"]
                for path, m in sorted((host_micros or {}).items()) if eager_launch(m)}
    if floors and sessions:         # every kind some session measured, over the sessions that did
        kinds = sorted({kind for s in sessions.values() for kind in s} | set(floors))
        floors = {kind: quantity(float(np.median([parse_quantity(s[kind], "time") for s in sessions.values()
                                                  if kind in s] or [parse_quantity(floors[kind], "time")])), "s")
                  for kind in kinds}
        fields = {**fields, "host_fitted_from": sorted(sessions)}
    if floors:
        floors = {**floors, **chain_floors(floors, host_micros)}
        fields = {**fields, "prefill_launch_overhead_by_kind": shift_times(floors, scale=host_scale)}
    return fields


# operator kind -> the chain of micro_beyond's ``eager_chains`` section it launches
CHAIN_OF_KIND = {"quantize": "quantize", "moe_route": "moe_route", "moe_combine": "moe_combine",
                 "expert_matmul": "grouped_mm"}
DENSE_CHAINS = {"matmul": "matmul", "norm": "rms_norm", "residual_add": "add"}   # kind -> its chain


def chain_floors(floors: dict, host_micros: dict[str, MicroFile] | None) -> dict:
    """Eager floors of the FP8 and MoE kinds from measured chains: floor(kind) = r x the mean
    floor of matmul, norm and residual_add, r = (chain's eager s per kernel) / (the same dense
    ops' mean s per kernel, timed beside it in the same run; median over runs). The ratio is
    the host-independent part (the absolute rate moves ~2x between machines; the floors are
    the median over sessions)."""
    ratios = {kind: [] for kind in CHAIN_OF_KIND}
    for micro in (host_micros or {}).values():
        chains = (micro.model_extra or {}).get("eager_chains") or {}
        if not all(c in chains for c in DENSE_CHAINS.values()):
            continue
        per_kernel = {name: c["eager_per_call_s"] / max(c["kernels"], 1) for name, c in chains.items()}
        dense = float(np.mean([per_kernel[c] for c in DENSE_CHAINS.values()]))
        for kind, chain in CHAIN_OF_KIND.items():
            if chain in per_kernel:
                ratios[kind].append(per_kernel[chain] / dense)
    if not all(kind in floors for kind in DENSE_CHAINS):
        return {}
    base = float(np.mean([parse_quantity(floors[kind], "time") for kind in DENSE_CHAINS]))
    return {kind: quantity(float(np.median(r)) * base, "s") for kind, r in ratios.items() if r}
