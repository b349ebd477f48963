"""Plain-text tables (no dependencies): a prediction, and generic rows. A quantity that is
missing (None: no decode step, no power figures, no price, does not fit) or not finite is
written "n/a", never "nan" or "inf"."""
from __future__ import annotations

import math

from simulator.units import format_si

MISSING = "n/a"


def present(value) -> bool:
    """A quantity to print: not None and finite."""
    return value is not None and math.isfinite(value)


def quantity(value, unit: str, missing: str = MISSING) -> str:
    """``value`` with an SI prefix and ``unit``, or ``missing``."""
    return format_si(value, unit) if present(value) else missing


def number(value, spec: str, missing: str = MISSING) -> str:
    """``format(value, spec)``, or ``missing``."""
    return format(value, spec) if present(value) else missing


def render(headers: list[str], rows: list[list[str]], align_right: set[int] | None = None) -> str:
    """Monospace table with a rule under the header; columns in ``align_right`` right-aligned."""
    align_right = align_right if align_right is not None else set(range(1, len(headers)))
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in align_right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *[line(r) for r in rows]])


def prediction_table(p, top: int = 8) -> str:
    """The headline numbers, the memory footprint and the operators that bound the request."""
    head = (f"{p.model} on {p.hardware} ({p.stack}): batch {p.batch}, prompt {p.prompt}, output {p.output}, "
            f"weights {p.weight_dtype}, KV {p.kv_dtype}")
    if p.devices > 1:
        head += f"; {p.devices} devices (tp {p.tp}, pp {p.pp}, dp {p.dp}, ep {p.ep}, microbatches {p.microbatches})"
    m = p.memory
    metrics = [
        ["time to first token", quantity(p.ttft_s, "s")],
        ["time per output token", quantity(p.tpot_s, "s")],
        ["end-to-end latency", quantity(p.e2e_s, "s")],
        ["output tokens/s", number(p.output_tokens_per_s, ",.1f")],
        ["energy (request)", quantity(p.energy_j, "J")],
        ["tokens/J", number(p.tokens_per_j, ".3g")],
        ["memory: weights" + (" (per device)" if p.devices > 1 else ""), quantity(m.weights_bytes, "B")],
        ["memory: KV cache", quantity(m.kv_cache_bytes, "B")],
        ["memory: activations", quantity(m.activation_bytes, "B")],
        ["memory: total / capacity", f"{quantity(m.total_bytes, 'B')} / {quantity(m.capacity_bytes, 'B')}"
                                     f" ({'fits' if m.fits else 'DOES NOT FIT'})"],
    ]
    if p.speculative:
        s = p.speculative
        metrics.insert(2, ["  speculative decoding", f"{s.draft_model} drafts {s.draft_tokens}, acceptance "
                                                     f"{s.acceptance:.2f}: {s.tokens_per_iteration:.2f} tokens an "
                                                     f"iteration, {s.speedup:.2f}x the plain {quantity(s.plain_tpot_s, 's')}"])
    out = [head, "", render(["metric", "value"], metrics)]
    if p.confidence is not None:
        out += ["", *confidence_lines(p.confidence, timed=p.ttft_s is not None)]
    if p.note:
        out += ["", p.note]
    if p.breakdown:
        ops = sorted(p.breakdown, key=lambda o: o.share, reverse=True)[:top]
        rows = [[o.name, f"{100 * o.share:.1f}%", quantity(o.prefill_time_s, "s"), o.prefill_bound,
                 quantity(o.decode_step_time_s, "s"), o.decode_bound] for o in ops]
        out += ["", render(["operator", "share", "prefill", "bound", "decode step", "bound"], rows,
                           align_right={1, 2, 4})]
    return "\n".join(out)


def _band(name: str, band) -> str:
    return f"{name} ±{100 * band.half_width:.0f}% ({band.low:.2f}-{band.high:.2f}x)"


def confidence_lines(c, timed: bool = True) -> list[str]:
    """A Confidence as lines: the bands (measured relative to predicted; none when no times were
    predicted), the profile, where the band comes from, why the scenario is extrapolated, and
    any assumption."""
    b = c.error_band if timed else None
    bands = [_band(n, x) for n, x in (("TTFT", b.ttft), ("TPOT", b.tpot)) if x is not None] if b else []
    if bands:
        head = f"confidence: {', '.join(bands)} (measured / predicted, {100 * b.coverage:.0f}% of validated points)"
    else:
        head = "confidence: no error band" + ("" if timed else " (no times predicted)")
    out = [f"{head}; {'calibrated' if c.calibrated else 'NOT calibrated on this device'}",
           f"  profile: {c.profile}"]
    if b is not None:
        out.append(f"  band from {b.source}")
        if b.assumption:
            out.append(f"  assumption: {b.assumption}")
    out += [f"  extrapolated: {reason}" for reason in c.extrapolated]
    return out
