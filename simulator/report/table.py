"""Plain-text tables (no dependencies): a prediction, and generic rows."""
from __future__ import annotations

from simulator.units import format_si


def render(headers: list[str], rows: list[list[str]], align_right: set[int] | None = None) -> str:
    """Monospace table with a rule under the header; columns in ``align_right`` right-aligned."""
    align_right = align_right if align_right is not None else set(range(1, len(headers)))
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in align_right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *[line(r) for r in rows]])


def _q(value, unit: str) -> str:
    return "n/a" if value is None else format_si(value, unit)


def prediction_table(p, top: int = 8) -> str:
    """The headline numbers, the memory footprint and the operators that bound the request."""
    head = (f"{p.model} on {p.hardware} ({p.stack}): batch {p.batch}, prompt {p.prompt}, output {p.output}, "
            f"weights {p.weight_dtype}, KV {p.kv_dtype}")
    if p.devices > 1:
        head += f"; {p.devices} devices (tp {p.tp}, pp {p.pp}, dp {p.dp}, ep {p.ep}, microbatches {p.microbatches})"
    m = p.memory
    metrics = [
        ["time to first token", _q(p.ttft_s, "s")],
        ["time per output token", _q(p.tpot_s, "s")],
        ["end-to-end latency", _q(p.e2e_s, "s")],
        ["output tokens/s", "n/a" if p.output_tokens_per_s is None else f"{p.output_tokens_per_s:,.1f}"],
        ["energy (request)", _q(p.energy_j, "J")],
        ["tokens/J", "n/a" if p.tokens_per_j is None else f"{p.tokens_per_j:.3g}"],
        ["memory: weights" + (" (per device)" if p.devices > 1 else ""), format_si(m.weights_bytes, "B")],
        ["memory: KV cache", format_si(m.kv_cache_bytes, "B")],
        ["memory: activations", format_si(m.activation_bytes, "B")],
        ["memory: total / capacity", f"{format_si(m.total_bytes, 'B')} / {format_si(m.capacity_bytes, 'B')}"
                                     f" ({'fits' if m.fits else 'DOES NOT FIT'})"],
    ]
    if p.speculative:
        s = p.speculative
        metrics.insert(2, ["  speculative decoding", f"{s.draft_model} drafts {s.draft_tokens}, acceptance "
                                                     f"{s.acceptance:.2f}: {s.tokens_per_iteration:.2f} tokens an "
                                                     f"iteration, {s.speedup:.2f}x the plain {_q(s.plain_tpot_s, 's')}"])
    out = [head, "", render(["metric", "value"], metrics)]
    if p.note:
        out += ["", p.note]
    if p.breakdown:
        ops = sorted(p.breakdown, key=lambda o: o.share, reverse=True)[:top]
        rows = [[o.name, f"{100 * o.share:.1f}%", _q(o.prefill_time_s, "s"), o.prefill_bound,
                 _q(o.decode_step_time_s, "s"), o.decode_bound] for o in ops]
        out += ["", render(["operator", "share", "prefill", "bound", "decode step", "bound"], rows,
                           align_right={1, 2, 4})]
    return "\n".join(out)
