"""A workload checked against the model and the device it runs on: the one place for the
rules that need all three (each spec alone is checked where it is parsed).

``check_workload(workload, arch, hardware)`` raises WorkloadError (or SpecError) for an
impossible combination and returns notes (one line each) for a possible one the prediction
should mention. ``tp_problem`` / ``ep_problem`` are the divisibility rules of tensor and
expert parallelism (graph/transformer.py shards by them; a search over tp degrees should
keep the degrees for which they return None); ``fallback_dtype`` is the dtype a device
computes in when it has no dense peak for the one asked for.
"""
from __future__ import annotations

from simulator.errors import SpecError, WorkloadError
from simulator.specs.base import Dtype
from simulator.specs.model import Architecture

# narrowest first: a dtype the device lacks runs as the next wider one it has
BY_WIDTH = (Dtype.fp4, Dtype.int4, Dtype.fp8, Dtype.int8, Dtype.fp16, Dtype.bf16, Dtype.tf32, Dtype.fp32)
_SIBLING = {Dtype.bf16: Dtype.fp16, Dtype.fp16: Dtype.bf16}


def fallback_dtype(peaks: dict, dtype: Dtype) -> Dtype | None:
    """The dtype whose dense peak ``dtype`` runs at on a device with ``peaks``: itself, its
    same-width sibling (bf16 <-> fp16), else the next wider dtype it has; None if none."""
    for candidate in (dtype, _SIBLING.get(dtype), *BY_WIDTH[BY_WIDTH.index(dtype) + 1:]):
        if candidate is not None and candidate in peaks:
            return candidate
    return None


def tp_problem(arch: Architecture, tp: int) -> str | None:
    """Why ``tp`` tensor-parallel devices cannot split ``arch`` (Megatron style: attention heads
    and every FFN's columns split; KV heads split, or replicated when fewer than tp; an MLA
    latent cache is replicated), or None when they can."""
    if tp == 1:
        return None
    kv = arch.num_kv_heads
    parts = [(arch.num_heads, "heads"), (arch.ffn_size, "FFN columns"), (arch.expert_ffn_size, "expert FFN columns"),
             (arch.shared_ffn_size, "shared-expert FFN columns")]
    failing = [f"{n} {what}" for n, what in parts if n and n % tp]
    if not (arch.is_mla or kv % tp == 0 or tp % kv == 0):
        failing.append(f"{kv} KV heads (nor is it a multiple of them)")
    if failing:
        listed = failing[0] if len(failing) == 1 else f"{', '.join(failing[:-1])} and {failing[-1]}"
        return f"{tp} does not divide the model's {listed}"
    return None


def ep_problem(arch: Architecture, ep: int) -> str | None:
    """Why ``ep`` expert-parallel devices cannot split ``arch``'s experts, or None."""
    if ep == 1:
        return None
    if not arch.is_moe:
        return f"{ep} expert-parallel devices need a mixture-of-experts model"
    if arch.num_experts % ep:
        return f"{ep} must divide the model's {arch.num_experts} experts"
    return None


def check_workload(workload, arch: Architecture, hardware, model_name: str = "the model") -> list[str]:
    """Check a Workload against the model's Architecture and the device's hardware spec.

    Raises WorkloadError(field, message) for what cannot run:
      pp > num_layers (a stage holds at least one layer), tp that does not split the heads,
      KV heads and FFN columns (tp_problem), ep that does not split the experts (ep_problem),
      several devices (tp, pp or ep > 1) on a device without an interconnect;
    and SpecError(hardware name, "peak", ...) when the device has no dense peak for the
    activation dtype nor any wider one.
    Returns notes for what runs but differs from what was asked, e.g.
      "fp4 has no dense peak on h100-sxm: runs at fp8's",
      "prompt + output = 40000 positions exceed ...'s max_position_embeddings (32768): ...",
      "pp 3 does not divide the 32 layers: stages of 11 or 10 layers, predicted as an even split".
    """
    w, notes = workload, []
    if w.pp > arch.num_layers:
        raise WorkloadError("pp", f"{w.pp} pipeline stages for {model_name}'s {arch.num_layers} layers: "
                                  f"expected at most one stage per layer")
    if arch.num_layers % w.pp:
        more = -(-arch.num_layers // w.pp)
        notes.append(f"pp {w.pp} does not divide the {arch.num_layers} layers: stages of {more} or {more - 1} "
                     f"layers, predicted as an even split")
    for field, problem in (("tp", tp_problem(arch, w.tp)), ("ep", ep_problem(arch, w.ep))):
        if problem:
            raise WorkloadError(field, problem)
    tokens = w.prompt + w.output
    if arch.max_positions is not None and tokens > arch.max_positions:      # the arithmetic holds; the model's
        notes.append(f"prompt + output = {tokens} positions exceed {model_name}'s "     # quality may not
                     f"max_position_embeddings ({arch.max_positions}): predicted beyond its trained context")
    linked = max((("tp", w.tp), ("pp", w.pp), ("ep", w.ep)), key=lambda item: item[1])
    if linked[1] > 1 and not hardware.interconnect:
        raise WorkloadError(linked[0], f"{hardware.name} has no interconnect to join {linked[1]} devices")
    notes += _dtype_notes(w.activation_dtype, hardware)
    return notes


def _dtype_notes(dtype: Dtype, hardware) -> list[str]:
    """The note (or error) for a compute dtype the device (or its PIM units) has no peak for."""
    notes = []
    units = [("peak", hardware.peak_flops())]
    units += [(f"memory.{i}.pim.peak", level.pim.peak) for i, level in enumerate(hardware.memory) if level.pim]
    for field, peaks in units:
        used = fallback_dtype(peaks, dtype)
        if used is None:
            have = ", ".join(sorted(d.value for d in peaks))
            raise SpecError(hardware.name, field, f"no dense peak for {dtype.value} or a wider dtype (has: {have}); "
                                                  f"choose a dtype it has with --activation-dtype")
        if used not in (dtype, _SIBLING.get(dtype)):          # a same-width sibling runs at the same rate
            where = hardware.name if field == "peak" else f"{hardware.name}'s processing-in-memory units"
            notes.append(f"{dtype.value} has no dense peak on {where}: runs at {used.value}'s")
    return notes
