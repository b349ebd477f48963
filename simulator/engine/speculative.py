"""Speculative decoding: a draft model proposes k tokens, the target verifies them in one pass.

Per iteration (Leviathan et al., 2023): the draft runs k decode steps, the target one pass
over k + 1 tokens per sequence; with a per-token acceptance rate a, an iteration yields
E = (1 - a^(k+1)) / (1 - a) tokens on average (the accepted prefix plus the target's own
next token). So TPOT = (k x draft step + verify pass) / E, taken at the mean position of the
generation. Both models prefill the prompt; both sit in memory with their KV caches.
"""
from __future__ import annotations

from simulator.engine.kernels import roofline
from simulator.engine.kernels.phases import chunk_features
from simulator.engine.result import MemoryReport, SpeculativeReport


def tokens_per_iteration(draft_tokens: int, acceptance: float) -> float:
    if acceptance >= 1.0:
        return draft_tokens + 1.0
    return (1.0 - acceptance ** (draft_tokens + 1)) / (1.0 - acceptance)


def verify_pass(prep, batch: int, position: int, draft_tokens: int) -> tuple[float, float]:
    """(seconds, joules) of the target's pass over draft_tokens + 1 tokens per sequence."""
    table, bound = prep.table, prep.bound
    feats = chunk_features(batch, position, draft_tokens + 1, table.window, table.moe)
    time_s = float(roofline.evaluate_point(*bound.kernel_args("decode"), feats)[0].sum())
    time_s += bound.profile.decode_step_overhead_s
    if prep.energy is None:
        return time_s, None
    dynamic = prep.energy.dynamic_j(feats, "decode")
    time_s = prep.energy.power_limited_s(time_s, dynamic)
    return time_s, prep.energy.energy_j(time_s, dynamic)


def combine(target, draft, w, verify_s: float, verify_j: float | None):
    """The speculative Prediction from the target's and the draft's plain ones."""
    k, a = w.draft_tokens, w.acceptance
    per_iteration = tokens_per_iteration(k, a)
    iteration_s = k * draft.tpot_s + verify_s
    tpot = iteration_s / per_iteration
    ttft = target.ttft_s + draft.ttft_s
    e2e = ttft + (w.output - 1) * tpot
    energy = step_energy = None
    if target.prefill_energy_j is not None and draft.decode_step_energy_j is not None and verify_j is not None:
        step_energy = (k * draft.decode_step_energy_j + verify_j) / per_iteration
        energy = target.prefill_energy_j + draft.prefill_energy_j + (w.output - 1) * step_energy
    tm, dm = target.memory, draft.memory
    total = tm.total_bytes + dm.weights_bytes + dm.kv_cache_bytes
    memory = MemoryReport(weights_bytes=tm.weights_bytes + dm.weights_bytes,
                          kv_cache_bytes=tm.kv_cache_bytes + dm.kv_cache_bytes,
                          activation_bytes=tm.activation_bytes, total_bytes=total,
                          capacity_bytes=tm.capacity_bytes, fits=total <= tm.capacity_bytes)
    report = SpeculativeReport(draft_model=draft.model, draft_tokens=k, acceptance=a,
                               tokens_per_iteration=per_iteration, draft_step_s=draft.tpot_s,
                               verify_pass_s=verify_s, plain_tpot_s=target.tpot_s,
                               speedup=target.tpot_s / tpot)
    return target.model_copy(update=dict(
        ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, output_tokens_per_s=w.batch * w.output / e2e,
        prefill_energy_j=None if energy is None else target.prefill_energy_j + draft.prefill_energy_j,
        decode_step_energy_j=step_energy, energy_j=energy,
        tokens_per_j=None if energy is None else w.batch * w.output / energy, memory=memory,
        speculative=report))
