"""Assemble a Prediction: lower the model, bind it to the device and stack, run the kernels.

Semantics (workload B, S, N):
  ttft  = the prefill pass over B x S tokens (its LM head yields the first token)
  tpot  = mean decode step over tokens 2..N; the step for token k takes its input at
          position S + k - 2 and attends over S + k - 1 positions
  e2e   = ttft + (N - 1) tpot
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.engine import roofline
from simulator.engine.bind import bind, peak_for
from simulator.engine.energy import energy_model
from simulator.engine.memory import activation_bytes, kv_cache_bytes
from simulator.engine.phases import decode_segments, prefill_features
from simulator.engine.result import MemoryReport, OperatorShare, Prediction
from simulator.graph.lower import lower
from simulator.graph.ops import OpKind
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.workload import Workload

_BOUNDS = ("compute", "memory", "overhead")


def decode_sums(bound, batch: int, first: int, last: int, window: int):
    """Per-operator time summed over decode steps at positions first..last, and the sum of
    the steps' feature vectors."""
    time_s = np.zeros(len(bound.table))
    feats = np.zeros(bound.table.flops.shape[1])
    for f0, f1, lo, hi in decode_segments(batch, first, last, window):
        time_s += roofline.evaluate_range(*bound.kernel_args(), f0, f1, float(lo), float(hi))
        count = hi - lo + 1
        feats += f0 * count + f1 * (lo + hi) * count / 2.0
    return time_s, feats


def _decode_bounds(bound, batch, position, window):
    """Bound of each operator at one decode step (for the breakdown)."""
    f0, f1, _, _ = decode_segments(batch, position, position, window)[-1]
    return roofline.evaluate_point(*bound.kernel_args(), f0 + f1 * position)[1]


def memory_report(table, hw, batch: int, prompt: int, output: int, pre_feats) -> MemoryReport:
    kv = kv_cache_bytes(table, batch, prompt + output)
    act = activation_bytes(table, pre_feats)
    capacity = sum(level.capacity_bytes for level in hw.memory)
    total = table.weight_bytes + kv + act
    return MemoryReport(weights_bytes=table.weight_bytes, kv_cache_bytes=kv, activation_bytes=act,
                        total_bytes=total, capacity_bytes=capacity, fits=total <= capacity)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything about a (model, device, stack, precisions) that does not depend on batch
    and lengths: lowered once, bound once, then evaluated for any number of scenarios."""

    model_name: str
    hardware: object
    stack: object
    table: object
    bound: object
    energy: object          # EnergyModel or None


def prepare(model: str, hardware, stack: str, weight_dtype: Dtype, activation_dtype: Dtype,
            kv_dtype: Dtype) -> Prepared:
    """``hardware`` is a registry name, a path, or a hardware spec object (e.g. a what-if copy)."""
    model_name, arch, _ = registry.model(model)
    hw = registry.hardware(hardware) if isinstance(hardware, str) else hardware
    st = registry.stack(stack)
    table = lower(arch, weight_dtype, activation_dtype, kv_dtype, st.attention == "unfused")
    bound = bind(table, hw, st, activation_dtype)
    em = energy_model(hw, bound.profile, activation_dtype, peak_for(hw.peak_flops(), activation_dtype, hw.name),
                      bound.placement)
    return Prepared(model_name, hw, st, table, bound, em)


def predict_workload(model: str, hardware: str, stack: str, workload: Workload) -> Prediction:
    w = workload
    prep = prepare(model, hardware, stack, w.weight_dtype, w.activation_dtype, w.kv_dtype)
    return evaluate(prep, w)


def evaluate(prep: Prepared, w: Workload) -> Prediction:
    """One scenario of a prepared (model, device, stack)."""
    model_name, hw, st, table, bound, em = (prep.model_name, prep.hardware, prep.stack, prep.table,
                                            prep.bound, prep.energy)
    B, S, N = w.batch, w.prompt, w.output
    pre_feats = prefill_features(B, S, table.window)
    memory = memory_report(table, hw, B, S, N, pre_feats)
    common = dict(model=model_name, hardware=hw.name, stack=st.name, batch=B, prompt=S, output=N,
                  weight_dtype=w.weight_dtype.value, activation_dtype=w.activation_dtype.value,
                  kv_dtype=w.kv_dtype.value, memory=memory)
    if not memory.fits:
        return Prediction(**common, ttft_s=None, tpot_s=None, e2e_s=None, output_tokens_per_s=None,
                          prefill_energy_j=None, decode_step_energy_j=None, energy_j=None,
                          tokens_per_j=None, breakdown=[],
                          note=f"does not fit: needs {memory.total_bytes / 1e9:.1f} GB of "
                               f"{memory.capacity_bytes / 1e9:.1f} GB")

    pre_t, pre_bound = roofline.evaluate_point(*bound.kernel_args(), pre_feats)
    ttft = float(pre_t.sum()) + bound.step_overhead_s
    steps = N - 1
    first, last = S, S + N - 2
    dec_t, dec_feats = decode_sums(bound, B, first, last, table.window)
    dec_time = float(dec_t.sum()) + bound.step_overhead_s * steps
    dec_bound = _decode_bounds(bound, B, (first + last) // 2, table.window) if steps else pre_bound
    tpot = dec_time / steps if steps else None
    e2e = ttft + dec_time

    pre_e = dec_e = energy = tokens_per_j = None
    if em is not None:
        pre_e = em.energy_j(ttft, *bound.totals(pre_feats))
        dec_total = em.energy_j(dec_time, *bound.totals(dec_feats))
        dec_e = dec_total / steps if steps else None
        energy = pre_e + dec_total
        tokens_per_j = B * N / energy

    breakdown = [
        OperatorShare(name=name, kind=OpKind(int(table.kind[i])).name.lower(),
                      prefill_time_s=float(pre_t[i]),
                      decode_step_time_s=float(dec_t[i]) / steps if steps else 0.0,
                      share=float(pre_t[i] + dec_t[i]) / e2e,
                      prefill_bound=_BOUNDS[pre_bound[i]], decode_bound=_BOUNDS[dec_bound[i]])
        for i, name in enumerate(table.names)
    ]
    return Prediction(**common, ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, output_tokens_per_s=B * N / e2e,
                      prefill_energy_j=pre_e, decode_step_energy_j=dec_e, energy_j=energy,
                      tokens_per_j=tokens_per_j, breakdown=breakdown)
