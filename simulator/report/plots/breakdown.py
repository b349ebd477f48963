"""`llmsim predict --plot`: where one scenario's time goes, and its memory footprint.

Left: the prefill pass and the mean decode step (the target model's step under speculative
decoding) as bars of 100%, stacked by operator kind; "other" is the phase's time outside
its operators (per-pass overhead, the eager host's launch time, a TDP power cap, pipeline
transfers). Right: weights, KV cache and activations per device against its capacity.
"""
from __future__ import annotations

from pathlib import Path

from simulator.graph.ops import OpKind
from simulator.report.plots import pyplot, save
from simulator.units import format_si

OTHER = "other"
MEMORY_PARTS = (("weights", "weights_bytes", "#4c72b0"), ("KV cache", "kv_cache_bytes", "#dd8452"),
                ("activations", "activation_bytes", "#55a868"))


def kind_colour(kind: str):
    """A fixed colour per operator kind (the same in every picture); grey for OTHER."""
    plt = pyplot()
    return "#bbbbbb" if kind == OTHER else plt.get_cmap("tab20")(OpKind[kind.upper()].value % 20)


def phase_shares(p) -> list[tuple[str, float, dict[str, float]]]:
    """[(phase label, phase time s, {kind: fraction of it})] for the phases with a time."""
    decode_s = p.speculative.plain_tpot_s if p.speculative else p.tpot_s
    phases = [("prefill", p.ttft_s, "prefill_time_s"), ("decode step", decode_s, "decode_step_time_s")]
    out = []
    for label, total, field in phases:
        if not total:
            continue
        by_kind: dict[str, float] = {}
        for o in p.breakdown:
            by_kind[o.kind] = by_kind.get(o.kind, 0.0) + getattr(o, field)
        by_kind[OTHER] = max(total - sum(by_kind.values()), 0.0)
        scale = max(total, sum(by_kind.values()))
        out.append((label, total, {k: v / scale for k, v in by_kind.items() if v > 0}))
    return out


def _time_bars(ax, p) -> None:
    phases = phase_shares(p)
    if not phases:
        ax.text(0.5, 0.5, p.note or "no times predicted", ha="center", va="center", wrap=True, fontsize=9)
        ax.set(xticks=[], yticks=[], xlabel="share of the phase's time (%)")
        return
    weight = {k: sum(s.get(k, 0.0) for *_, s in phases) for _, _, s in phases for k in s}
    kinds = sorted(weight, key=lambda k: (k == OTHER, -weight[k]))          # largest first, other last
    labelled = set()
    for y, (label, total, shares) in enumerate(phases):
        left = 0.0
        for kind in (k for k in kinds if k in shares):
            ax.barh(y, 100 * shares[kind], left=left, color=kind_colour(kind), edgecolor="white", lw=0.5,
                    label=None if kind in labelled else kind)
            labelled.add(kind)
            left += 100 * shares[kind]
    ax.set_yticks(range(len(phases)), [f"{label}\n{format_si(total, 's')}" for label, total, _ in phases])
    ax.invert_yaxis()
    ax.set(xlim=(0, 100), xlabel="share of the phase's time (%)")
    ax.legend(title="operator kind", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _memory_bar(ax, m) -> None:
    bottom = 0.0
    for label, field, colour in MEMORY_PARTS:
        value = getattr(m, field) / 1e9
        ax.bar(0, value, bottom=bottom, color=colour, width=0.6, label=label)
        bottom += value
    ax.axhline(m.capacity_bytes / 1e9, color="black", ls="--", lw=1,
               label=f"capacity {format_si(m.capacity_bytes, 'B')}")
    ax.set(xticks=[], xlim=(-0.6, 0.6), ylim=(0, max(bottom, m.capacity_bytes / 1e9) * 1.15),
           ylabel="memory per device (GB)")
    ax.set_title(f"{format_si(m.total_bytes, 'B')}: {'fits' if m.fits else 'does not fit'}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def draw(p, path: Path):
    """The figure of a Prediction."""
    plt = pyplot()
    fig, (t_ax, m_ax) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3.2, 1]})
    _time_bars(t_ax, p)
    _memory_bar(m_ax, p.memory)
    fig.suptitle(f"{p.model} on {p.hardware} ({p.stack}): batch {p.batch}, prompt {p.prompt}, output {p.output}, "
                 f"weights {p.weight_dtype}" + (f", {p.devices} devices" if p.devices > 1 else ""), fontsize=10)
    fig.tight_layout()
    return save(fig, path)
