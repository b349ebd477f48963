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
import functools
import threading

import numpy as np

from simulator.accuracy.confidence import scope_of
from simulator.engine.batch import (Layout, Packed, bound_call, evaluate_into, pack, results_array, transient_bytes,
                                    weights_per_device_bytes)
from simulator.engine.bind import Rates, attention_dtype, bind, peak_for
from simulator.engine.energy import EnergyModel, energy_model
from simulator.engine.kernels import roofline
from simulator.engine.kernels import scenario as sc
from simulator.engine.kernels.phases import decode_step_features, mean_decode_position, prefill_features
from simulator.engine.result import (MemoryReport, OperatorShare, Prediction, SpeculativeReport, built, field_names,
                                     fields_set, trusted)
from simulator.graph.lower import OpTable, lower
from simulator.graph.ops import OpKind
from simulator.specs.base import Dtype
from simulator.specs.hardware import HardwareSpec
from simulator.specs.model import Architecture
from simulator.specs.stack import ProfileChoice, StackSpec
from simulator.specs.workload import Workload

_UNITS = ("host", "memory")      # where an operator ran: the processor, or inside memory (PIM)
_KEPT_BATCHES = 32               # batch sizes whose workspaces (~10 kB each) an Evaluator keeps


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
    evaluators: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)   # evaluator()
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
    table = lower(arch, weight_format, activation_dtype, kv_dtype, tp=tp, ep=ep, **stack.lowering())
    choice = choice or stack.choose(hardware)
    rates = bind(table, hardware, stack, activation_dtype, choice.profile, attention_dtype(activation_dtype, kv_dtype))
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
    params[[sc.P_WINDOW, sc.P_KV_BYTES_PER_TOKEN, sc.P_LOCAL_KV_BYTES_PER_TOKEN, sc.P_PP, sc.P_WEIGHT_BYTES,
            sc.P_CAPACITY_BYTES]] = (table.window, table.kv_bytes_per_token, table.local_kv_bytes_per_token, w.pp,
                                     weights_per_device_bytes(table, w.pp), hw.capacity_bytes)
    res = np.zeros(sc.N_OUTPUTS)
    sc.memory_rows(params, sc.activation_bytes(transient_bytes(table), pre_feats), float(w.replica_batch),
                   float(w.prompt + w.output), res)
    return _memory(res, hw.capacity_bytes)


_MEMORY_SET = fields_set(MemoryReport)


def _memory(res, capacity: float) -> MemoryReport:
    """The memory rows of a result vector (a list of floats) as a MemoryReport (its fields
    in declared order, a test checks)."""
    return built(MemoryReport, {"weights_bytes": res[sc.WEIGHTS_BYTES], "kv_cache_bytes": res[sc.KV_CACHE_BYTES],
                                "activation_bytes": res[sc.ACTIVATION_BYTES], "total_bytes": res[sc.TOTAL_BYTES],
                                "capacity_bytes": capacity, "fits": res[sc.FITS] > 0.0}, _MEMORY_SET)


def _notes(host_launch_s: float, res) -> list[str]:
    """What bounds a scenario beyond the roofline: the host launching the prefill's kernels.
    (The power limit stretches no pass: kernels/scenario.py's power note.)"""
    notes = []
    device_s = res[sc.PREFILL_DEVICE_S]
    if host_launch_s > device_s:
        notes.append(f"prefill is host-bound: launching its kernels takes {host_launch_s * 1e3:.2f} ms, "
                     f"the device work {device_s * 1e3:.2f} ms")
    return notes


# rows of the result vector that become a Prediction's optional times (None when NaN)
_TIMED = (("ttft_s", sc.TTFT_S), ("tpot_s", sc.TPOT_S), ("e2e_s", sc.E2E_S), ("output_tokens_per_s", sc.TOKENS_PER_S),
          ("prefill_energy_j", sc.PREFILL_ENERGY_J), ("decode_step_energy_j", sc.DECODE_STEP_ENERGY_J),
          ("energy_j", sc.ENERGY_J), ("tokens_per_j", sc.TOKENS_PER_J))
_TIMED_NAMES, _TIMED_ROWS = (tuple(x) for x in zip(*_TIMED))
# a Prediction's fields before and after batch, prompt and output that the workload fixes
_HEAD = ("model", "hardware", "stack")
_FIXED = ("weight_dtype", "activation_dtype", "kv_dtype", "tp", "pp", "dp", "ep", "microbatches", "devices")
_FIELDS = (*_HEAD, "batch", "prompt", "output", *_FIXED, *_TIMED_NAMES, "memory", "speculative", "note", "confidence")
_PREDICTION_SET = fields_set(Prediction)


class Evaluator:
    """A prepared model (and draft) on one layout, with the Prediction fields its workload
    fixes (names, precisions, parallelism): one kernel call per scenario (B, S, N) after that.
    The per-operator breakdown is computed when first read (the same kernel, keeping each
    operator's times)."""

    def __init__(self, prep: Prepared, w: Workload, draft: Prepared | None = None, require_fit: bool = True):
        layout = layout_of(w) if draft is not None else dataclasses.replace(layout_of(w), draft_tokens=0)
        self.prep, self.draft, self.require_fit = prep, draft, require_fit
        self.packed = prep.packed(layout, draft)
        self.split = w.dp * w.ep * w.microbatches        # B / split = one microbatch's sequences
        self._head = (prep.model_name, prep.hardware.name, prep.stack.name)      # _HEAD's values
        self._fixed = (w.weight_dtype, w.activation_dtype.value, w.kv_dtype.value, w.tp, w.pp, w.dp, w.ep,
                       w.microbatches, w.devices)                                 # _FIXED's values
        self.speculation = (w.draft_tokens, w.acceptance)
        self.confidence = scope_of(prep, w)                 # accuracy/confidence.py: per scenario, cheap
        self.capacity_bytes = prep.hardware.capacity_bytes
        self.host_launch_s = prep.rates.host_launch_s
        self._lock = threading.Lock()
        self._scratch: dict = {}          # batch -> _scratch_call(): its workspace keeps that batch's decode lines

    def _workspaces(self):
        """(target workspace, draft workspace, out): one scenario's kernel arguments."""
        p = self.packed
        ws_t = sc.workspace(p.n_ops)
        ws_d = sc.workspace(p.draft_ops) if p.draft is not p.target else ws_t
        return ws_t, ws_d, results_array(2)          # column 0 used

    def _scratch_call(self):
        """(batch.bound_call on the reused workspaces, its result vector)."""
        ws_t, ws_d, out = self._workspaces()
        return bound_call(self.packed, ws_t, ws_d, self.require_fit, out), out[:, 0]

    def results(self, batch: int, prompt: int, output: int, keep: bool = False):
        """(result vector as a list, per-operator prefill times, summed decode times) of one
        scenario (batch.evaluate_into; the per-operator times only when ``keep``). Each batch
        size (up to _KEPT_BATCHES) has workspaces of its own, reused: its decode lines are
        computed once (~5 us here), the prefill again only when S changes (~4 us); ``keep``
        and a thread that finds them busy take fresh ones (a reused prefill leaves the
        per-operator times unfilled)."""
        if not keep and self._lock.acquire(blocking=False):
            try:
                kept = self._scratch.get(batch)
                if kept is None:
                    if len(self._scratch) >= _KEPT_BATCHES:
                        self._scratch.clear()
                    kept = self._scratch[batch] = self._scratch_call()
                call, column = kept
                call(batch, prompt, output)
                return column.tolist(), None, None
            finally:
                self._lock.release()
        ws_t, ws_d, out = self._workspaces()
        ws_t[sc.W_STATE][sc.S_KEEP_OPS] = 1.0 if keep else 0.0
        evaluate_into(self.packed, ws_t, ws_d, batch, prompt, output, self.require_fit, out)
        if keep:
            return out[:, 0].tolist(), ws_t[sc.W_PREFILL_T].copy(), ws_t[sc.W_DECODE_T].copy()
        return out[:, 0].tolist(), None, None

    def __call__(self, batch: int, prompt: int, output: int, notes=()) -> Prediction:
        """The Prediction of one scenario; ``notes`` (e.g. a dtype fallback) come first."""
        res = self.results(batch, prompt, output)[0]
        memory = _memory(res, self.capacity_bytes)
        confidence = self.confidence(batch, prompt, output)
        if res[sc.TTFT_S] != res[sc.TTFT_S]:                  # NaN: it does not fit
            note = "; ".join([*notes, f"does not fit: needs {memory.total_bytes / 1e9:.1f} GB per device of "
                                      f"{memory.capacity_bytes / 1e9:.1f} GB"])
            return built(Prediction, self._values(batch, prompt, output, (None,) * len(_TIMED), memory, None,
                                                  note, confidence), {"_breakdown_of": list}, _PREDICTION_SET)
        timed = [None if x != x else x for x in map(res.__getitem__, _TIMED_ROWS)]
        speculative = self._speculative(res) if res[sc.TOKENS_PER_ITERATION] == res[sc.TOKENS_PER_ITERATION] else None
        note = "; ".join([*notes, *_notes(self.host_launch_s, res)])
        return built(Prediction, self._values(batch, prompt, output, timed, memory, speculative, note, confidence),
                     {"_breakdown_of": functools.partial(self.breakdown, batch, prompt, output)}, _PREDICTION_SET)

    def _values(self, batch, prompt, output, timed, memory, speculative, note, confidence) -> dict:
        """A Prediction's fields in declared order (_FIELDS), for result.built."""
        (model, hardware, stack), f, t = self._head, self._fixed, timed
        return {"model": model, "hardware": hardware, "stack": stack, "batch": batch, "prompt": prompt,
                "output": output, "weight_dtype": f[0], "activation_dtype": f[1], "kv_dtype": f[2], "tp": f[3],
                "pp": f[4], "dp": f[5], "ep": f[6], "microbatches": f[7], "devices": f[8], "ttft_s": t[0],
                "tpot_s": t[1], "e2e_s": t[2], "output_tokens_per_s": t[3], "prefill_energy_j": t[4],
                "decode_step_energy_j": t[5], "energy_j": t[6], "tokens_per_j": t[7], "memory": memory,
                "speculative": speculative, "note": note, "confidence": confidence}

    def _speculative(self, res) -> SpeculativeReport:
        k, a = self.speculation
        return trusted(SpeculativeReport, dict(
            draft_model=self.draft.model_name, draft_tokens=k, acceptance=a,
            tokens_per_iteration=res[sc.TOKENS_PER_ITERATION], draft_step_s=res[sc.DRAFT_STEP_S],
            verify_pass_s=res[sc.VERIFY_PASS_S], plain_tpot_s=res[sc.PLAIN_TPOT_S],
            speedup=res[sc.PLAIN_TPOT_S] / res[sc.TPOT_S]))

    def breakdown(self, batch: int, prompt: int, output: int) -> list[OperatorShare]:
        """Per operator: its prefill time, mean decode-step time, share of the (plain) request,
        and what bounds it at the prefill and at the middle decode step."""
        prep, table = self.prep, self.prep.table
        res, pre_t, dec_t = self.results(batch, prompt, output, keep=True)
        mb, steps, stages = batch // self.split, output - 1, float(self.packed.params[sc.P_STAGES])
        pre_feats = prefill_features(mb, prompt, table.window, table.moe)
        _, pre_bound, pre_unit = roofline.evaluate_point(*prep.rates.pass_arrays("prefill"), pre_feats)
        dec_bound, dec_unit = pre_bound, pre_unit
        if steps:
            feats = decode_step_features(mb, mean_decode_position(prompt, output), table.window, table.moe)
            _, dec_bound, dec_unit = roofline.evaluate_point(*prep.rates.pass_arrays("decode"), feats)
        e2e = res[sc.PLAIN_E2E_S]
        names = roofline.BOUND_NAMES
        return [trusted(OperatorShare, dict(
                    name=name, kind=prep.kinds[i], prefill_time_s=stages * float(pre_t[i]),
                    decode_step_time_s=stages * float(dec_t[i]) / steps if steps else 0.0,
                    share=stages * float(pre_t[i] + dec_t[i]) / e2e if e2e > 0 else 0.0,
                    prefill_bound=names[pre_bound[i]], decode_bound=names[dec_bound[i]],
                    prefill_unit=_UNITS[pre_unit[i]], decode_unit=_UNITS[dec_unit[i]]))
                for i, name in enumerate(table.names)]


def evaluator(prep: Prepared, w: Workload, draft: Prepared | None = None, require_fit: bool = True) -> Evaluator:
    """The Evaluator of a prepared model on w's layout and precisions, kept on ``prep``."""
    key = (layout_of(w), id(draft), require_fit, w.weight_dtype, w.activation_dtype, w.kv_dtype)
    kept = prep.evaluators.get(key)
    if kept is None or kept.draft is not draft:
        kept = prep.evaluators[key] = Evaluator(prep, w, draft, require_fit)
    return kept


def evaluate(prep: Prepared, w: Workload, require_fit: bool = True, draft: Prepared | None = None,
             notes: tuple[str, ...] = ()) -> Prediction:
    """One scenario of a prepared (model, device, stack, tp, ep), speculative when ``draft``
    is given. ``require_fit=False`` predicts times even when the footprint exceeds capacity
    (re-predicting a run that did happen). ``notes`` (e.g. a dtype fallback) are prepended."""
    return evaluator(prep, w, draft, require_fit)(w.batch, w.prompt, w.output, notes)
