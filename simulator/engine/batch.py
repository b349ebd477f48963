"""Scenarios of one configuration as arrays: ``pack`` flattens a prepared model (and a
draft) on a layout into what kernels/scenario.py takes, ``evaluate_many`` runs that kernel
over arrays of (B, S, N) in one numba call, no Python per scenario. ``predict`` is the
same kernel on one scenario, so a sweep row equals ``simulator.predict`` by construction.

Speed: the prefill depends on (B, S) only and a decode step's operator lines on B only, so
consecutive scenarios sharing B, or B and S (a grid in B x S x N order), reuse them; per
scenario only the closed-form range sums remain.
"""
from __future__ import annotations

import dataclasses
import functools

import numba
import numpy as np
from numba import njit, prange

from simulator.engine.collectives import collective_time_s
from simulator.engine.kernels import scenario as sc
from simulator.errors import WorkloadError
from simulator.graph.ops import KV_COLUMNS, ONE, OpKind
from simulator.specs.workload import INT64_MAX

BLOCK = 512                 # fewest scenarios per parallel work item
TABLE_RUN = 32              # scenarios per batch size, on average, past which step tables pay (evaluate_many)
GROUP_RUN = 4               # below this many scenarios per run of one batch size, evaluate_many sorts by (B, S)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a model is spread: tp x pp devices per replica, dp replicas, ep expert-parallel
    devices (attention data parallel), m pipeline microbatches; speculative decoding with
    ``draft_tokens`` drafted per iteration (0: off), each accepted with ``acceptance``."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    microbatches: int = 1
    draft_tokens: int = 0
    acceptance: float = 0.0

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.dp * self.ep


@dataclasses.dataclass(frozen=True)
class Packed:
    """A target (and a draft: the target again when there is none) as kernel tuples."""

    target: tuple
    draft: tuple
    n_ops: int
    draft_ops: int

    @property
    def params(self) -> np.ndarray:
        return self.target[sc.M_PARAMS]


def stage_transfer_s(prep, layout: Layout, tokens: float) -> float:
    """The (m + pp - 2) activation transfers between pipeline stages in one pass over
    ``tokens`` tokens (each a send/receive of tokens x the stream bytes per token)."""
    if layout.pp == 1:
        return 0.0
    link = prep.hardware.interconnect[0] if prep.hardware.interconnect else None
    if link is None:
        raise WorkloadError("pp", f"{prep.hardware.name} has no interconnect for pipeline stages")
    payload = tokens * prep.table.stream_bytes_per_token
    one = collective_time_s(OpKind.SEND_RECV, payload, 2, link.bandwidth_per_direction_bytes_per_s, link.latency_s)
    return (layout.microbatches + layout.pp - 2) * one


def weights_per_device_bytes(table, pp: int) -> float:
    """Pipeline stages split the layers; the embeddings sit on the first stage, the head on
    the last: the fuller of the two counts."""
    outside = table.weight_bytes - table.layer_weight_bytes
    if pp > 1:
        outside = max(table.first_stage_weight_bytes, table.last_stage_weight_bytes)
    return table.layer_weight_bytes / pp + outside


def transient_bytes(table) -> np.ndarray:
    """[ops, features] bytes of each operator's prefill working set: its token- and
    sequence-proportional bytes (weights and KV cache columns zeroed)."""
    transient = table.bytes.copy()
    transient[:, [ONE, *KV_COLUMNS]] = 0.0
    return np.ascontiguousarray(transient)


def _model(prep, layout: Layout) -> tuple:
    """One prepared model on a layout as the kernel's model tuple (scenario.M_*)."""
    table, rates, em, hw = prep.table, prep.rates, prep.energy, prep.hardware
    p = dict.fromkeys(sc.PARAMS, 0.0)
    transfer0 = stage_transfer_s(prep, layout, 0)
    slots = layout.microbatches + layout.pp - 1         # pipeline slots per pass; each stage works m of them
    p.update(prefill_step_overhead_s=rates.profile.prefill_step_overhead_s, host_launch_s=rates.host_launch_s,
             decode_step_overhead_s=rates.step_overhead_s, window=table.window, pp=layout.pp,
             stages=slots / layout.pp,
             weight_bytes=weights_per_device_bytes(table, layout.pp), kv_bytes_per_token=table.kv_bytes_per_token,
             local_kv_bytes_per_token=table.local_kv_bytes_per_token,
             capacity_bytes=hw.capacity_bytes,
             transfer_s=transfer0, transfer_s_per_token=stage_transfer_s(prep, layout, 1) - transfer0,
             devices=layout.devices, copies=layout.microbatches * layout.tp * layout.dp * layout.ep, ep=1.0,
             replicas=layout.dp * layout.ep, microbatches=layout.microbatches,
             draft_tokens=layout.draft_tokens, acceptance=layout.acceptance,
             busy_fraction=layout.microbatches / slots,
             decode_host_s=0.0 if prep.stack.decode_graphs else rates.host_launch_s)
    if table.moe:
        p.update(experts=table.moe[0], experts_per_token=table.moe[1], ep=table.moe[2])
    joules = np.zeros((2, table.flops.shape[1]))
    if em is not None:
        p.update(has_energy=1.0, idle_w=em.idle_w, tdp_w=em.tdp_w)
        joules = np.ascontiguousarray([em.prefill_joules_per_feature, em.decode_joules_per_feature], dtype=np.float64)
    flops, mem_s, alt_mem_s, op_prefill = rates.pass_arrays("prefill")
    return (np.ascontiguousarray(flops), np.ascontiguousarray(mem_s), np.ascontiguousarray(alt_mem_s),
            op_prefill, rates.op_params("decode"), transient_bytes(table), joules,
            np.array([p[k] for k in sc.PARAMS]))


def pack(prep, layout: Layout = Layout(), draft=None) -> Packed:
    """Flatten a predict.Prepared (prepared for layout.tp and layout.ep) and a draft's
    Prepared (speculative decoding, layout.draft_tokens > 0) into kernel tuples, once for
    any B, S, N. Raises WorkloadError when pp > 1 and the device has no link."""
    target = _model(prep, layout)
    if draft is None:
        return Packed(target, target, len(prep.table), len(prep.table))
    return Packed(target, _model(draft, dataclasses.replace(layout, draft_tokens=0)), len(prep.table),
                  len(draft.table))


def results_array(scenarios: int) -> np.ndarray:
    """An empty [len(scenario.OUTPUTS), scenarios] result array, each scenario's results
    adjacent in memory (Fortran order): the kernel writes a scenario's ~20 results at once,
    and in C order they would land on ~20 pages (2.2x slower per scenario here)."""
    return np.empty((scenarios, sc.N_OUTPUTS)).T


def evaluate_many(packed: Packed, batch, prompt, output, parallel: bool = True,
                  require_fit: bool = True, rows: bool = False) -> np.ndarray:
    """Results [len(scenario.OUTPUTS), scenarios] (fits 1.0 or 0.0) for equal-length integer
    arrays of batch B, prompt S and output N; fastest when scenarios sharing B and S are
    adjacent (arrays whose B changes every few scenarios are evaluated grouped by B and S:
    here a new B costs its decode lines, ~1.5 us, 2.3 with step tables, a new S its prefill,
    ~0.5 us, a repeat ~40 ns; llama-3.1-8b on h100-sxm). ``parallel`` spreads contiguous runs
    of scenarios over numba's threads, one each; the serial kernel releases the GIL (threaded
    Dask workers). Both give bitwise-identical results. The array is in Fortran order (each
    scenario's results adjacent: results_array), or with ``rows`` in C order (each quantity's
    row contiguous: what predict_many returns, put back from a grouped order in that layout
    directly, ~0.5 ms per 10,000 scenarios here, where one copy per row took ~1.5 ms more).
    When runs of one batch size are long (TABLE_RUN on average) decode steps are summed from
    step tables (kernels/steptable.py), equal to the per-operator sums to rounding."""
    b, s, n = (np.ascontiguousarray(a, dtype=np.int64) for a in (batch, prompt, output))
    if np.count_nonzero(b[1:] != b[:-1]) * GROUP_RUN <= b.shape[0]:
        out = _evaluate(packed, b, s, n, parallel, require_fit)
        return np.ascontiguousarray(out) if rows else out
    order = grouped_order(b, s)                 # B changes often: evaluate grouped by (B, S), then put back
    got = _evaluate(packed, b[order], s[order], n[order], parallel, require_fit)
    if rows:
        out = np.empty((sc.N_OUTPUTS, b.shape[0]))
        out.T[order] = got.T                    # scenario k's results to column order[k], row by row
    else:
        out = results_array(b.shape[0])
        out[:, order] = got
    return out


def grouped_order(b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """A permutation that puts the scenarios of one (B, S) together, in B then S order: the
    argsort of B (max S + 1) + S (a quicksort, ~10 ns a scenario here against lexsort's ~75),
    or lexsort where that key could pass int64. The order among equal (B, S) does not matter:
    a scenario's results depend on its own B, S and N only."""
    span = int(s.max()) + 1
    if int(b.max()) < (INT64_MAX - span) // span:
        return np.argsort(b * span + s)
    return np.lexsort((s, b))


def _evaluate(packed: Packed, b, s, n, parallel: bool, require_fit: bool) -> np.ndarray:
    """evaluate_many's kernel call on int64 arrays, in their order (the results of one
    scenario, or none, in a two-column array: numba types an array that is both C- and
    F-contiguous as C, another overload to compile and load)."""
    out = results_array(max(b.shape[0], 2))     # one column would be C- and F-contiguous: a kernel of its own
    table = b.shape[0] >= TABLE_RUN * (1 + np.count_nonzero(b[1:] != b[:-1]))
    args = (packed.target, packed.draft, packed.n_ops, packed.draft_ops, b, s, n, require_fit, table, out)
    if parallel:
        parallel_kernel(*args, _work_items(b.shape[0]))
    else:
        serial_kernel(*args)
    return out[:, :b.shape[0]]


def _work_items(scenarios: int) -> int:
    """The parallel kernel's work items: one contiguous run of scenarios per thread, of at
    least BLOCK scenarios. Each item keeps its workspace throughout, so a batch size's decode
    lines and step tables are built once per thread, not once per block of 512 (that cost a
    quarter of a sweep's time with the per-scenario work at ~40 ns)."""
    threads = getattr(numba, "get_num_threads", lambda: 1)()      # 1 where numba is the plain-Python stand-in
    return max(1, min(threads, -(-scenarios // BLOCK)))


def evaluate_one(packed: Packed, batch: int, prompt: int, output: int, require_fit: bool = True):
    """One scenario: (result vector, target workspace) — the workspace holds the per-operator
    prefill times and summed decode times (scenario.W_PREFILL_T, W_DECODE_T)."""
    ws_t = sc.workspace(packed.n_ops)
    ws_d = sc.workspace(packed.draft_ops) if packed.draft is not packed.target else ws_t
    ws_t[sc.W_STATE][sc.S_KEEP_OPS] = 1.0
    out = results_array(2)                  # F order: the kernel's one compiled layout; scenario 0 only
    evaluate_into(packed, ws_t, ws_d, batch, prompt, output, require_fit, out)
    return out[:, 0], ws_t


def evaluate_into(packed: Packed, ws_t, ws_d, batch: int, prompt: int, output: int, require_fit: bool, out) -> None:
    """One scenario (integers B, S, N) into out[:, 0] on the workspaces ws_t, ws_d (the
    target's again without a draft): scenario.scenarios on one point. A call's cost here is
    mostly numba unboxing its arrays (~0.1 us each), so a configuration without a draft
    passes its model and workspace once and B, S, N as scalars."""
    if packed.draft is packed.target:
        _one_plain(packed.target, ws_t, require_fit, out, batch, prompt, output)
    else:
        _one(packed.target, packed.draft, ws_t, ws_d, require_fit, out, batch, prompt, output)


def bound_call(packed: Packed, ws_t, ws_d, require_fit: bool, out):
    """f(batch, prompt, output): evaluate_into on these workspaces and ``out``, bound once.
    Compiled, it calls the kernel's machine code for these argument types directly: numba's
    dispatcher would type the two tuples of arrays again on every call (~2-3 us here)."""
    plain = packed.draft is packed.target
    fn = _one_plain if plain else _one
    head = (packed.target, ws_t) if plain else (packed.target, packed.draft, ws_t, ws_d)
    overloads = getattr(fn, "overloads", None)          # None: kernels running as plain Python
    if overloads is not None:
        types = tuple(fn.typeof_pyval(a) for a in (*head, require_fit, out, 0, 0, 0))
        compiled = overloads.get(types)
        if compiled is None:
            fn.compile(types)                           # from numba's cache when it has them
            compiled = overloads.get(types)
        if compiled is not None:
            fn = compiled.entry_point
    return functools.partial(fn, *head, require_fit, out)


@njit(cache=True, error_model="numpy")
def _scenario_arrays(batch, prompt, output):
    b, s, n = np.empty(1, dtype=np.int64), np.empty(1, dtype=np.int64), np.empty(1, dtype=np.int64)
    b[0], s[0], n[0] = batch, prompt, output
    return b, s, n


@njit(cache=True, error_model="numpy")
def _one_plain(model, ws, require_fit, out, batch, prompt, output):
    b, s, n = _scenario_arrays(batch, prompt, output)
    sc.scenarios(model, model, ws, ws, b, s, n, require_fit, out, 0, 1)


@njit(cache=True, error_model="numpy")
def _one(target, draft, ws_t, ws_d, require_fit, out, batch, prompt, output):
    b, s, n = _scenario_arrays(batch, prompt, output)
    sc.scenarios(target, draft, ws_t, ws_d, b, s, n, require_fit, out, 0, 1)


@njit(cache=True, error_model="numpy")
def _block(target, draft, n_ops, draft_ops, batch, prompt, output, require_fit, table, out, start, stop):
    sc.scenarios(target, draft, sc.workspace(n_ops, table), sc.workspace(draft_ops, table), batch, prompt, output,
                 require_fit, out, start, stop)


@njit(cache=True, error_model="numpy", nogil=True)
def serial_kernel(target, draft, n_ops, draft_ops, batch, prompt, output, require_fit, table, out):
    """Scenarios 0..len(batch)-1 into out[:, k] on one thread (evaluate_many's arguments,
    table: sum decode steps from step tables)."""
    _block(target, draft, n_ops, draft_ops, batch, prompt, output, require_fit, table, out, 0, batch.shape[0])


@njit(cache=True, error_model="numpy", parallel=True)
def parallel_kernel(target, draft, n_ops, draft_ops, batch, prompt, output, require_fit, table, out, chunks):
    """serial_kernel's scenarios in ``chunks`` contiguous runs, one per numba thread
    (_work_items; a sweep loads this kernel before timing itself)."""
    n = batch.shape[0]
    size = (n + chunks - 1) // chunks
    for c in prange(chunks):
        _block(target, draft, n_ops, draft_ops, batch, prompt, output, require_fit, table, out, min(n, c * size),
               min(n, (c + 1) * size))
