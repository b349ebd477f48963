"""Assemble a Prediction: lower the model, bind it to the device and stack, run the kernels.

Semantics (workload B, S, N):
  ttft  = the prefill pass over B x S tokens (its LM head yields the first token): the
          longer of its device time and, for an eager stack, the host's time to launch its
          kernels (the host runs ahead of the device, so the two overlap)
  tpot  = mean decode step over tokens 2..N; the step for token k takes its input at
          position S + k - 2 and attends over S + k - 1 positions
  e2e   = ttft + (N - 1) tpot
Parallelism: the batch is split over dp replicas (and over ep expert-parallel devices,
whose attention runs data parallel) of tp x pp devices. The operator table is one
device's share of all layers (collectives included). A pipeline
of pp stages runs m microbatches of B / (dp m) sequences: a pass takes
(m + pp - 1) / pp x T(microbatch) + (m + pp - 2) stage-boundary transfers, where T is the
whole model's time at one device's rates (with m = 1 the stages simply run in turn).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from simulator.engine.kernels import roofline
from simulator.engine.bind import bind, peak_for
from simulator.engine.collectives import collective_time_s
from simulator.engine.energy import energy_model
from simulator.engine.memory import activation_bytes, kv_cache_bytes
from simulator.engine.kernels.phases import (decode_segments, decode_step_features, mean_decode_position,
                                     prefill_features)
from simulator.engine.result import MemoryReport, OperatorShare, Prediction
from simulator.errors import WorkloadError
from simulator.graph.lower import lower
from simulator.graph.ops import OpKind
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.workload import Workload

_BOUNDS = ("compute", "memory", "overhead")
_COMMON = ("model", "hardware", "stack", "batch", "prompt", "output", "weight_dtype", "activation_dtype", "kv_dtype",
           "tp", "pp", "dp", "ep", "microbatches", "devices")
_UNITS = ("host", "memory")      # where an operator ran: the processor, or inside memory (PIM)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything about a (model, device, stack, precisions, tp) that does not depend on batch
    and lengths: lowered once, bound once, then evaluated for any number of scenarios."""

    model_name: str
    hardware: object
    stack: object
    table: object
    bound: object
    energy: object          # EnergyModel or None


def prepare(*args, **kwargs) -> Prepared:
    """_prepare, cached when every argument is hashable (names, dtypes; not a what-if spec
    object): a repeated configuration is lowered and bound once."""
    try:
        hash((args, tuple(sorted(kwargs.items()))))
    except TypeError:
        return _prepare(*args, **kwargs)
    return _prepare_cached(*args, **kwargs)


def _prepare(model, hardware, stack: str, weight_dtype, activation_dtype: Dtype,
            kv_dtype: Dtype, tp: int = 1, profile_from: str | None = None, ep: int = 1) -> Prepared:
    """``model`` is a registry name, a path, or a (name, Architecture) pair; ``hardware`` a
    registry name, a path, or a hardware spec object (e.g. a what-if copy); ``stack`` a name,
    a path or a StackSpec (a provisional profile while calibrating); ``weight_dtype``
    a Dtype or a WeightFormat (group-scaled storage). ``profile_from`` names another device
    whose stack profile to use (estimating a device from one you measured)."""
    model_name, arch = model if isinstance(model, tuple) else registry.model(model)[:2]
    hw = registry.hardware(hardware) if isinstance(hardware, str) else hardware
    st = registry.stack(stack) if isinstance(stack, str) else stack
    if profile_from is not None:
        st = st.model_copy(update={"devices": {**st.devices, hw.name: st.profile_for(profile_from, hw.kind)}})
    try:
        table = lower(arch, weight_dtype, activation_dtype, kv_dtype, st.attention == "unfused", tp, ep)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise WorkloadError(field, message) from None
    bound = bind(table, hw, st, activation_dtype)
    em = energy_model(hw, bound.profile, activation_dtype, peak_for(hw.peak_flops(), activation_dtype, hw.name),
                      bound)
    return Prepared(model_name, hw, st, table, bound, em)


_prepare_cached = functools.lru_cache(maxsize=1024)(_prepare)
prepare.cache_clear = _prepare_cached.cache_clear


def predict_workload(model: str, hardware: str, stack: str, workload: Workload) -> Prediction:
    w = workload
    prep = prepare(model, hardware, stack, w.weight_format, w.activation_dtype, w.kv_dtype, w.tp, ep=w.ep)
    if w.draft_model is None:
        return evaluate(prep, w)
    return _speculative(prep, w, hardware, stack)


def _speculative(prep: Prepared, w: Workload, hardware, stack) -> Prediction:
    """Target and draft on the same devices (speculative.py)."""
    from simulator.engine import speculative

    plain = w.model_copy(update={"draft_model": None})
    if w.output < 2:                                       # no decode step to speculate on
        return evaluate(prep, plain)
    target = evaluate(prep, plain, require_fit=False)
    draft_prep = prepare(w.draft_model, hardware, stack, w.weight_format, w.activation_dtype, w.kv_dtype, w.tp)
    draft = evaluate(draft_prep, plain, require_fit=False)
    position = mean_decode_position(w.prompt, w.output)
    verify_s, verify_j = speculative.verify_pass(prep, w.microbatch, position, w.draft_tokens)
    p = speculative.combine(target, draft, w, verify_s, verify_j)
    if not p.memory.fits:
        return _not_fitting({**p.model_dump(include=set(_COMMON)), "memory": p.memory}, p.memory)
    return p


def decode_sums(bound, batch: int, first: int, last: int, window: int, moe: tuple | None = None):
    """Per-operator time summed over decode steps at positions first..last, and the sum of
    the steps' feature vectors."""
    time_s = np.zeros(len(bound.table))
    feats = np.zeros(bound.table.flops.shape[1])
    for f0, f1, lo, hi in decode_segments(batch, first, last, window, moe):
        time_s += roofline.evaluate_range(*bound.kernel_args(), f0, f1, float(lo), float(hi))
        count = hi - lo + 1
        feats += f0 * count + f1 * (lo + hi) * count / 2.0
    return time_s, feats


def _decode_bounds(bound, batch, position, window, moe):
    """Bound of each operator at one decode step (for the breakdown)."""
    return roofline.evaluate_point(*bound.kernel_args(), decode_step_features(batch, position, window, moe))[1:]


def memory_report(table, hw, w: Workload, pre_feats) -> MemoryReport:
    """Per device: weights (pipeline stages split the layers; the embeddings sit on the first
    stage, the head on the last: the fuller of the two counts), KV cache of its replica's
    sequences and its layers, activations."""
    pp = w.pp
    outside = table.weight_bytes - table.layer_weight_bytes
    if pp > 1:
        outside = max(table.first_stage_weight_bytes, table.last_stage_weight_bytes)
    weights = table.layer_weight_bytes / pp + outside
    kv = kv_cache_bytes(table, w.replica_batch, w.prompt + w.output) / pp
    act = activation_bytes(table, pre_feats)
    capacity = sum(level.capacity_bytes for level in hw.memory)
    total = weights + kv + act
    return MemoryReport(weights_bytes=weights, kv_cache_bytes=kv, activation_bytes=act,
                        total_bytes=total, capacity_bytes=capacity, fits=total <= capacity)


def _stage_transfer_s(prep: Prepared, w: Workload, tokens: int) -> float:
    """Time of the (m + pp - 2) activation transfers between pipeline stages in one pass."""
    if w.pp == 1:
        return 0.0
    link = prep.hardware.interconnect[0] if prep.hardware.interconnect else None
    if link is None:
        raise WorkloadError("pp", f"{prep.hardware.name} has no interconnect for pipeline stages")
    payload = tokens * prep.table.stream_bytes_per_token
    one = collective_time_s(OpKind.SEND_RECV, payload, 2, link.bandwidth_per_direction_bytes_per_s, link.latency_s)
    return (w.microbatches + w.pp - 2) * one


def _not_fitting(common: dict, memory: MemoryReport) -> Prediction:
    return Prediction(**common, ttft_s=None, tpot_s=None, e2e_s=None, output_tokens_per_s=None,
                      prefill_energy_j=None, decode_step_energy_j=None, energy_j=None,
                      tokens_per_j=None, breakdown=[],
                      note=f"does not fit: needs {memory.total_bytes / 1e9:.1f} GB per device of "
                           f"{memory.capacity_bytes / 1e9:.1f} GB")


def evaluate(prep: Prepared, w: Workload, require_fit: bool = True) -> Prediction:
    """One scenario of a prepared (model, device, stack, tp). ``require_fit=False`` predicts
    times even when the footprint exceeds capacity (re-predicting a run that did happen)."""
    table, bound, em = prep.table, prep.bound, prep.energy
    B, S, N = w.batch, w.prompt, w.output
    mb, m = w.microbatch, w.microbatches
    pre_feats = prefill_features(mb, S, table.window, table.moe)
    memory = memory_report(table, prep.hardware, w, pre_feats)
    common = dict(model=prep.model_name, hardware=prep.hardware.name, stack=prep.stack.name, batch=B, prompt=S,
                  output=N, weight_dtype=w.weight_dtype, activation_dtype=w.activation_dtype.value,
                  kv_dtype=w.kv_dtype.value, tp=w.tp, pp=w.pp, dp=w.dp, ep=w.ep, microbatches=m, devices=w.devices,
                  memory=memory)
    if require_fit and not memory.fits:
        return _not_fitting(common, memory)

    stages = (m + w.pp - 1) / w.pp                 # pipeline slots per pass, in model-times
    pre_t, pre_bound, pre_unit = roofline.evaluate_point(*bound.kernel_args("prefill"), pre_feats)
    device_s = float(pre_t.sum()) + bound.profile.prefill_step_overhead_s
    host_bound = bound.host_launch_s > device_s      # the eager host cannot issue kernels fast enough
    ttft = stages * max(device_s, bound.host_launch_s) + _stage_transfer_s(prep, w, mb * S)
    steps = N - 1
    first, last = S, S + N - 2
    dec_t, dec_feats = decode_sums(bound, mb, first, last, table.window, table.moe)
    dec_time = (stages * (float(dec_t.sum()) + bound.step_overhead_s * steps)
                + steps * _stage_transfer_s(prep, w, mb))
    dec_bound, dec_unit = (_decode_bounds(bound, mb, mean_decode_position(S, N), table.window, table.moe) if steps
                           else (pre_bound, pre_unit))

    pre_e = dec_e = energy = tokens_per_j = None
    notes = [f"prefill is host-bound: launching its kernels takes {bound.host_launch_s * 1e3:.2f} ms, "
             f"the device work {device_s * 1e3:.2f} ms"] if host_bound else []
    if em is not None:
        work = m * w.tp * w.dp * w.ep               # table copies: microbatches x tp ranks x replicas x ep
        pre_dyn = em.dynamic_j(pre_feats, "prefill", copies=work)
        dec_dyn = em.dynamic_j(dec_feats, "decode", copies=work)
        limited = em.power_limited_s(ttft, pre_dyn, w.devices), em.power_limited_s(dec_time, dec_dyn, w.devices)
        for phase, before, after in (("prefill", ttft, limited[0]), ("decode", dec_time, limited[1])):
            if after > before * 1.001:
                notes.append(f"{phase} is power-limited: {100 * (after / before - 1):.0f}% slower than its "
                             f"roofline at {em.tdp_w:.0f} W")
        ttft, dec_time = limited
        pre_e = em.energy_j(ttft, pre_dyn, w.devices)
        dec_total = em.energy_j(dec_time, dec_dyn, w.devices)
        dec_e = dec_total / steps if steps else None
        energy = pre_e + dec_total
        tokens_per_j = B * N / energy
    tpot = dec_time / steps if steps else None
    e2e = ttft + dec_time

    breakdown = [
        OperatorShare(name=name, kind=OpKind(int(table.kind[i])).name.lower(),
                      prefill_time_s=stages * float(pre_t[i]),
                      decode_step_time_s=stages * float(dec_t[i]) / steps if steps else 0.0,
                      share=stages * float(pre_t[i] + dec_t[i]) / e2e,
                      prefill_bound=_BOUNDS[pre_bound[i]], decode_bound=_BOUNDS[dec_bound[i]],
                      prefill_unit=_UNITS[pre_unit[i]], decode_unit=_UNITS[dec_unit[i]])
        for i, name in enumerate(table.names)
    ]
    return Prediction(**common, ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, output_tokens_per_s=B * N / e2e,
                      prefill_energy_j=pre_e, decode_step_energy_j=dec_e, energy_j=energy,
                      tokens_per_j=tokens_per_j, breakdown=breakdown, note="; ".join(notes))
