"""Pictures (matplotlib, the `plot` extra, imported only when a plot is asked for)."""
from __future__ import annotations

from pathlib import Path

from simulator.errors import SimulatorError

BOUND_COLOURS = {"compute": "#d95f02", "memory": "#1b9e77", "overhead": "#7570b3"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SimulatorError("plots need matplotlib: pip install 'llmsim[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def validation_scatter(points, errors, path: Path) -> Path:
    """Predicted against measured latency, one panel per (hardware, phase), log-log, with the
    10% and 20% bands."""
    plt = _pyplot()
    keys = sorted({(p.hardware, p.phase) for p in points if p.metric == "latency"})
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2), squeeze=False)
    for ax, (hardware, phase) in zip(axes[0], keys):
        idx = [i for i, p in enumerate(points) if (p.hardware, p.phase, p.metric) == (hardware, phase, "latency")]
        measured = [points[i].measured * 1e3 for i in idx]
        predicted = [points[i].measured * 1e3 * (1 + errors[i]) for i in idx]
        lo, hi = min(measured + predicted) / 1.3, max(measured + predicted) * 1.3
        for band, alpha in ((0.2, 0.08), (0.1, 0.15)):
            ax.fill_between([lo, hi], [lo * (1 - band), hi * (1 - band)], [lo * (1 + band), hi * (1 + band)],
                            color="grey", alpha=alpha, lw=0, label=f"±{band:.0%}")
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        models = sorted({points[i].model for i in idx})
        for model in models:
            sel = [k for k, i in enumerate(idx) if points[i].model == model]
            ax.scatter([measured[k] for k in sel], [predicted[k] for k in sel], s=10, label=model)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured (ms)",
               ylabel="predicted (ms)", title=f"{hardware} {phase} (n={len(idx)})")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.tick_params(which="minor", labelbottom=False, labelleft=False)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def breakdown_bars(prediction, path: Path, top: int = 12) -> Path:
    """Where the time goes: each operator's prefill time and mean decode-step time, coloured
    by what bounds it."""
    plt = _pyplot()
    ops = sorted(prediction.breakdown, key=lambda o: o.share, reverse=True)[:top][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * len(ops) + 1.6), sharey=True)
    for ax, phase in zip(axes, ("prefill", "decode")):
        times = [(o.prefill_time_s if phase == "prefill" else o.decode_step_time_s) * 1e3 for o in ops]
        colours = [BOUND_COLOURS[o.prefill_bound if phase == "prefill" else o.decode_bound] for o in ops]
        ax.barh([o.name for o in ops], times, color=colours)
        ax.set(xlabel=f"{'prefill' if phase == 'prefill' else 'decode step'} time (ms)")
        ax.grid(True, axis="x", lw=0.3, alpha=0.5)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in BOUND_COLOURS.values()]
    axes[1].legend(handles, list(BOUND_COLOURS), title="bound by", fontsize=8)
    p = prediction
    fig.suptitle(f"{p.model} on {p.hardware} ({p.stack}): batch {p.batch}, prompt {p.prompt}, output {p.output}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
