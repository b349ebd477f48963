"""`llmsim validate --plot`: predicted against measured, log-log, one colour per hardware, with
the +-10% and +-20% bands: a panel per phase and metric (latency in ms, energy in J) and,
when given, one of the published runs of others (each point in its own unit)."""
from __future__ import annotations

from pathlib import Path

from simulator.report.plots import plain_log_ticks, pyplot, save

UNITS = {"latency": ("ms", 1e3), "energy": ("J", 1.0)}
PHASES = ("prefill", "decode")


def _panel(ax, pairs_by_hardware: dict, colours: dict, xlabel: str, ylabel: str, title: str) -> None:
    """Bands and the identity line, then one scatter series per hardware of (measured, predicted)."""
    values = [v for pairs in pairs_by_hardware.values() for pair in pairs for v in pair]
    lo, hi = min(values) / 1.3, max(values) * 1.3
    for band, alpha in ((0.2, 0.08), (0.1, 0.15)):
        ax.fill_between([lo, hi], [lo * (1 - band), hi * (1 - band)], [lo * (1 + band), hi * (1 + band)],
                        color="grey", alpha=alpha, lw=0, label=f"±{band:.0%}")
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    for hardware, pairs in sorted(pairs_by_hardware.items()):
        ax.scatter(*zip(*pairs), s=9, color=colours[hardware], label=hardware, alpha=0.8, lw=0)
    n = sum(len(p) for p in pairs_by_hardware.values())
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=xlabel, ylabel=ylabel)
    for axis in (ax.xaxis, ax.yaxis):
        plain_log_ticks(axis, hi / lo)
    ax.set_title(f"{title} (n={n})", fontsize=9)
    ax.grid(True, which="major", lw=0.3, alpha=0.5)


def draw(points, errors, published: list[dict], path: Path):
    """``points`` (validate.Point) with their ``errors`` (predicted / measured - 1), and the
    published comparison rows (commands_validate.published_report; may be empty)."""
    plt = pyplot()
    published = [r for r in published if r["predicted"] is not None]
    metrics = [m for m in UNITS if any(p.metric == m for p in points)]
    measured = sorted({p.hardware for p in points})
    hardware = measured + sorted({r["hardware"] for r in published} - set(measured))
    palette = [*plt.get_cmap("tab10").colors, *plt.get_cmap("Dark2").colors]
    colours = {h: palette[i % len(palette)] for i, h in enumerate(hardware)}
    columns = len(PHASES) + bool(published)
    fig = plt.figure(figsize=(4 * columns, 3.6 * len(metrics) + 0.6))
    grid = fig.add_gridspec(len(metrics), columns)
    for row, metric in enumerate(metrics):
        unit, scale = UNITS[metric]
        for col, phase in enumerate(PHASES):
            pairs: dict[str, list] = {}
            for p, e in zip(points, errors):
                if (p.metric, p.phase) == (metric, phase):
                    pairs.setdefault(p.hardware, []).append((p.measured * scale, p.measured * scale * (1 + e)))
            if pairs:
                _panel(fig.add_subplot(grid[row, col]), pairs, colours, f"measured ({unit})", f"predicted ({unit})",
                       f"{phase} {metric}")
    if published:
        pairs = {}
        for r in published:
            pairs.setdefault(r["hardware"], []).append((r["published"], r["predicted"]))
        _panel(fig.add_subplot(grid[:, -1]), pairs, colours, "published (its unit: s or tokens/s)",
               "predicted (same unit)", "published runs of others")
    handles = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight() + 0.02, 1, 1))
    return save(fig, path)
