"""`llmsim sweep --plot` and `llmsim plan --plot`: time per output token against output
tokens/s, log-log, coloured by tokens/J: a sample of the scenarios as a cloud and the Pareto
front over all of them (explore/front.py). A plan's cloud is its configurations' batches:
grey where they miss the targets; the front is over those that meet them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.report.plots import plain_log_ticks, pyplot, save
from simulator.explore.front import THROUGHPUT, TOKENS_PER_J, TPOT
from simulator.units import format_si

NO_ENERGY = "#444444"
FRONT_LABELS = 8


def _scatter(ax, rows, norm, label: str | None, **style):
    """Rows coloured by tokens/J (log scale); those without (a device with no power figures)
    dark grey. Returns the coloured series, or None when it is empty."""
    tpj = rows[TOKENS_PER_J]
    has = np.isfinite(tpj)
    mappable = None
    if has.any():
        mappable = ax.scatter(rows[TPOT, has] * 1e3, rows[THROUGHPUT, has], c=tpj[has], cmap="viridis", norm=norm,
                              label=label, **style)
    if (~has).any():
        grey = label and (f"{label}, no power figures" if mappable is None else "no power figures (no tokens/J)")
        ax.scatter(rows[TPOT, ~has] * 1e3, rows[THROUGHPUT, ~has], color=NO_ENERGY, label=grey, **style)
    return mappable


def _annotate_front(ax, front, rows, lengths: bool, gap_px: float = 11.0) -> None:
    """Name front points by configuration and batch, from the fastest, skipping a point that
    lies within ``gap_px`` (vertically) of the last one named; at most FRONT_LABELS."""
    ax.get_xlim(), ax.get_ylim()                      # settle the autoscaled limits first
    screen = ax.transData.transform(np.column_stack([rows[TPOT] * 1e3, rows[THROUGHPUT]]))
    last, named = None, 0
    for i in range(rows.shape[1]):
        if named == FRONT_LABELS or (last is not None and abs(screen[i, 1] - last) < gap_px):
            continue
        ax.annotate(front.label(rows[:, i], lengths), (rows[TPOT, i] * 1e3, rows[THROUGHPUT, i]), xytext=(6, -3),
                    textcoords="offset points", fontsize=6, zorder=5,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.75, lw=0))
        last, named = screen[i, 1], named + 1


def draw(front, path: Path, title: str, tpot_max_s: float | None = None, throughput_min: float | None = None,
         lengths: bool = False):
    """The figure of a FrontSample. With targets (a plan) the cloud is split into the batches
    that meet them and those that miss; ``lengths`` names prompt and output in front labels."""
    plt = pyplot()
    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(figsize=(8.5, 5.8))
    targeted = tpot_max_s is not None or throughput_min is not None
    meets, misses, best = front.sample(True), front.sample(False), front.front()
    tpj = np.concatenate([meets[TOKENS_PER_J], best[TOKENS_PER_J]])
    tpj = tpj[np.isfinite(tpj)]
    norm = LogNorm(tpj.min(), max(tpj.max(), tpj.min() * 1.01)) if tpj.size else None
    if misses.size:
        ax.scatter(misses[TPOT] * 1e3, misses[THROUGHPUT], s=4, color="#cccccc", lw=0,
                   label=f"miss the targets ({front.counts[False]:,}; {misses.shape[1]:,} drawn)")
    what = "meet the targets" if targeted else "scenarios"
    mappable = _scatter(ax, meets, norm, f"{what} ({front.counts[True]:,}; {meets.shape[1]:,} drawn)", s=5, lw=0)
    if best.size:
        ax.plot(best[TPOT] * 1e3, best[THROUGHPUT], color="black", lw=1, zorder=3,
                label=f"Pareto front ({best.shape[1]} over all {front.counts[True]:,})")
        _scatter(ax, best, norm, None, s=32, edgecolor="black", lw=0.6, zorder=4)
    if tpot_max_s is not None:
        ax.axvline(tpot_max_s * 1e3, color="red", ls=":", lw=1, label=f"TPOT target {format_si(tpot_max_s, 's')}")
    if throughput_min is not None:
        ax.axhline(throughput_min, color="red", ls="--", lw=1, label=f"throughput target {throughput_min:,.0f}/s")
    if meets.size or misses.size:
        ax.set(xscale="log", yscale="log")
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            plain_log_ticks(axis, hi / lo)
        ax.legend(fontsize=7, loc="lower right")
        _annotate_front(ax, front, best, lengths)
    else:
        ax.text(0.5, 0.5, "no scenario that fits has a time per output token (output >= 2)", ha="center",
                transform=ax.transAxes)
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=ax, label="tokens/J")
        plain_log_ticks(bar.ax.yaxis, norm.vmax / norm.vmin)
    ax.set(xlabel="time per output token (ms)", ylabel="output tokens/s (per configuration, all its devices)")
    ax.set_title(f"{title}\nPareto front: no other scenario has as low a TPOT and as many tokens/s, and is better "
                 "in one", fontsize=9)
    ax.grid(True, which="major", lw=0.3, alpha=0.5)
    fig.tight_layout()
    return save(fig, path)
