"""One scenario: lower the model, bind it to the device and stack, run the scenario kernel
(kernels/scenario.py, whose docstring gives the semantics) on one point and dress the result
as a Prediction with its per-operator breakdown. Takes spec objects only: names and paths
are resolved at the API edge (simulator/api.py).

Semantics (workload B, S, N): ttft is the prefill pass over B x S tokens (its LM head
yields the first token), the longer of its device time and, for an eager stack, the host's
time to launch its kernels; tpot the mean decode step over tokens 2..N (the step for token
k takes its input at position S + k - 2 and attends over S + k - 1 positions);
e2e = ttft + (N - 1) tpot.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.engine.batch import Layout, Packed, evaluate_one, pack, transient_bytes, weights_per_device_bytes
from simulator.engine.bind import Rates, bind, peak_for
from simulator.engine.energy import EnergyModel, energy_model
from simulator.engine.kernels import roofline
from simulator.engine.kernels import scenario as sc
from simulator.engine.kernels.phases import decode_step_features, mean_decode_position, prefill_features
from simulator.engine.result import MemoryReport, OperatorShare, Prediction, SpeculativeReport
from simulator.graph.lower import OpTable, lower
from simulator.graph.ops import OpKind
from simulator.specs.base import Dtype
from simulator.specs.hardware import HardwareSpec
from simulator.specs.model import Architecture
from simulator.specs.stack import ProfileChoice, StackSpec
from simulator.specs.workload import Workload

_UNITS = ("host", "memory")      # where an operator ran: the processor, or inside memory (PIM)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything about a (model, device, stack, precisions, tp, ep) that does not depend on
    batch and lengths: lowered once, bound once, then evaluated for any number of scenarios."""

    model_name: str
    hardware: HardwareSpec
    stack: StackSpec
    table: OpTable
    rates: Rates
    energy: EnergyModel | None
    kinds: tuple[str, ...] = ()  # each operator's kind name (the breakdown's)
    packs: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    choice: ProfileChoice | None = None   # the stack entry used and why (StackSpec.choose)
    scope: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # accuracy/confidence.py's

    def packed(self, layout: Layout, draft: Prepared | None = None) -> Packed:
        """batch.pack of this model on ``layout`` (and a draft), kept for the next call."""
        key = (layout, id(draft))
        kept = self.packs.get(key)
        if kept is None or kept[0] is not draft:          # identity, not just an id that was reused
            kept = self.packs[key] = (draft, pack(self, layout, draft))
        return kept[1]


def prepare(model_name: str, arch: Architecture, hardware, stack: StackSpec, weight_format, activation_dtype: Dtype,
            kv_dtype: Dtype, tp: int = 1, ep: int = 1, choice: ProfileChoice | None = None) -> Prepared:
    """Lower ``arch`` at these precisions on tp x ep devices and bind it to ``hardware`` and
    ``stack`` (``weight_format`` a Dtype or a WeightFormat: group-scaled storage) with the
    stack entry ``choice`` (default: StackSpec.choose without a registry spec to compare)."""
    table = lower(arch, weight_format, activation_dtype, kv_dtype, stack.attention == "unfused", tp, ep)
    choice = choice or stack.choose(hardware)
    rates = bind(table, hardware, stack, activation_dtype, choice.profile)
    em = energy_model(hardware, rates.profile, activation_dtype,
                      peak_for(hardware.peak_flops(), activation_dtype, hardware.name), rates)
    kinds = tuple(OpKind(int(code)).name.lower() for code in table.kind)
    return Prepared(model_name, hardware, stack, table, rates, em, kinds, choice=choice)


def layout_of(w: Workload) -> Layout:
    return Layout(tp=w.tp, pp=w.pp, dp=w.dp, ep=w.ep, microbatches=w.microbatches,
                  draft_tokens=w.draft_tokens if w.draft_model is not None else 0, acceptance=w.acceptance)


def memory_report(table: OpTable, hw, w: Workload, pre_feats: np.ndarray) -> MemoryReport:
    """Per device: weights (weights_per_device_bytes), the KV cache of its replica's sequences
    and its layers, the largest prefill transient at ``pre_feats`` (scenario.memory_rows)."""
    params = np.zeros(len(sc.PARAMS))
    params[[sc.P_WINDOW, sc.P_KV_BYTES_PER_TOKEN, sc.P_PP, sc.P_WEIGHT_BYTES, sc.P_CAPACITY_BYTES]] = (
        table.window, table.kv_bytes_per_token, w.pp, weights_per_device_bytes(table, w.pp),
        hw.capacity_bytes)
    res = np.zeros(sc.N_OUTPUTS)
    sc.memory_rows(params, sc.activation_bytes(transient_bytes(table), pre_feats), float(w.replica_batch),
                   float(w.prompt + w.output), res)
    return _memory(res, hw.capacity_bytes)


def _memory(res, capacity: float) -> MemoryReport:
    return MemoryReport(weights_bytes=res[sc.WEIGHTS_BYTES], kv_cache_bytes=res[sc.KV_CACHE_BYTES],
                        activation_bytes=res[sc.ACTIVATION_BYTES], total_bytes=res[sc.TOTAL_BYTES],
                        capacity_bytes=capacity, fits=bool(res[sc.FITS]))


def _value(res, row) -> float | None:
    x = float(res[row])
    return None if np.isnan(x) else x


def _notes(prep: Prepared, res) -> list[str]:
    notes = []
    device_s = float(res[sc.PREFILL_DEVICE_S])
    if prep.rates.host_launch_s > device_s:
        notes.append(f"prefill is host-bound: launching its kernels takes {prep.rates.host_launch_s * 1e3:.2f} ms, "
                     f"the device work {device_s * 1e3:.2f} ms")
    if prep.energy is not None:
        for phase, row in (("prefill", sc.PREFILL_POWER_SLOWDOWN), ("decode", sc.DECODE_POWER_SLOWDOWN)):
            slowdown = float(res[row])
            if slowdown > 1.001:
                notes.append(f"{phase} is power-limited: {100 * (slowdown - 1):.0f}% slower than its "
                             f"roofline at {prep.energy.tdp_w:.0f} W")
    return notes


def _breakdown(prep: Prepared, w: Workload, ws, res, stages: float) -> list[OperatorShare]:
    """Per operator: its prefill time, mean decode-step time, share of the (plain) request,
    and what bounds it at the prefill and at the middle decode step."""
    table, mb, steps = prep.table, w.microbatch, w.output - 1
    pre_t, dec_t = ws[sc.W_PREFILL_T], ws[sc.W_DECODE_T]
    pre_feats = prefill_features(mb, w.prompt, table.window, table.moe)
    _, pre_bound, pre_unit = roofline.evaluate_point(*prep.rates.pass_arrays("prefill"), pre_feats)
    dec_bound, dec_unit = pre_bound, pre_unit
    if steps:
        feats = decode_step_features(mb, mean_decode_position(w.prompt, w.output), table.window, table.moe)
        _, dec_bound, dec_unit = roofline.evaluate_point(*prep.rates.pass_arrays("decode"), feats)
    e2e = float(res[sc.PLAIN_E2E_S])
    names = roofline.BOUND_NAMES
    return [OperatorShare(name=name, kind=prep.kinds[i],
                          prefill_time_s=stages * float(pre_t[i]),
                          decode_step_time_s=stages * float(dec_t[i]) / steps if steps else 0.0,
                          share=stages * float(pre_t[i] + dec_t[i]) / e2e if e2e > 0 else 0.0,
                          prefill_bound=names[pre_bound[i]], decode_bound=names[dec_bound[i]],
                          prefill_unit=_UNITS[pre_unit[i]], decode_unit=_UNITS[dec_unit[i]])
            for i, name in enumerate(table.names)]


def evaluate(prep: Prepared, w: Workload, require_fit: bool = True, draft: Prepared | None = None,
             notes: tuple[str, ...] = ()) -> Prediction:
    """One scenario of a prepared (model, device, stack, tp, ep), speculative when ``draft``
    is given. ``require_fit=False`` predicts times even when the footprint exceeds capacity
    (re-predicting a run that did happen). ``notes`` (e.g. a dtype fallback) are prepended."""
    layout = layout_of(w) if draft is not None else dataclasses.replace(layout_of(w), draft_tokens=0)
    packed = prep.packed(layout, draft)
    res, ws = evaluate_one(packed, w.batch, w.prompt, w.output, require_fit)
    capacity = prep.hardware.capacity_bytes
    memory = _memory(res, capacity)
    common = dict(model=prep.model_name, hardware=prep.hardware.name, stack=prep.stack.name, batch=w.batch,
                  prompt=w.prompt, output=w.output, weight_dtype=w.weight_dtype,
                  activation_dtype=w.activation_dtype.value, kv_dtype=w.kv_dtype.value, tp=w.tp, pp=w.pp, dp=w.dp,
                  ep=w.ep, microbatches=w.microbatches, devices=w.devices, memory=memory)
    if np.isnan(res[sc.TTFT_S]):
        return Prediction(**common, ttft_s=None, tpot_s=None, e2e_s=None, output_tokens_per_s=None,
                          prefill_energy_j=None, decode_step_energy_j=None, energy_j=None, tokens_per_j=None,
                          breakdown=[], note="; ".join([*notes, f"does not fit: needs {memory.total_bytes / 1e9:.1f} "
                                                       f"GB per device of {capacity / 1e9:.1f} GB"]))
    speculative = None
    if not np.isnan(res[sc.TOKENS_PER_ITERATION]):
        speculative = SpeculativeReport(draft_model=draft.model_name, draft_tokens=w.draft_tokens,
                                        acceptance=w.acceptance, tokens_per_iteration=res[sc.TOKENS_PER_ITERATION],
                                        draft_step_s=res[sc.DRAFT_STEP_S], verify_pass_s=res[sc.VERIFY_PASS_S],
                                        plain_tpot_s=res[sc.PLAIN_TPOT_S],
                                        speedup=res[sc.PLAIN_TPOT_S] / res[sc.TPOT_S])
    return Prediction(**common, ttft_s=_value(res, sc.TTFT_S), tpot_s=_value(res, sc.TPOT_S),
                      e2e_s=_value(res, sc.E2E_S), output_tokens_per_s=_value(res, sc.TOKENS_PER_S),
                      prefill_energy_j=_value(res, sc.PREFILL_ENERGY_J),
                      decode_step_energy_j=_value(res, sc.DECODE_STEP_ENERGY_J), energy_j=_value(res, sc.ENERGY_J),
                      tokens_per_j=_value(res, sc.TOKENS_PER_J), breakdown=_breakdown(prep, w, ws, res, packed.params[sc.P_STAGES]),
                      speculative=speculative, note="; ".join([*notes, *_notes(prep, res)]))
