"""`llmsim compare --plot`: the survey's picture (Li et al., arXiv 2410.04466): output
tokens/s (log) against average power in W (log; the prediction's energy / e2e time), one
filled marker per compared configuration coloured by device class, the survey's published
points (accuracy/survey.py) as hollow markers in the same colours, and iso-tokens/J lines
(tokens/s = k x W)."""
from __future__ import annotations

import math
from pathlib import Path

from simulator.report.plots import plain_log_ticks, pyplot, save

CLASS_COLOURS = {"cpu": "#1f77b4", "gpu": "#2ca02c", "tpu": "#17becf", "fpga": "#ff7f0e", "asic": "#d62728",
                 "pim": "#9467bd"}


def _iso_lines(ax, lo_w: float, hi_w: float, lo_tps: float, hi_tps: float) -> None:
    """tokens/s = k W for k = 10^n tokens/J, every decade that crosses the drawn box."""
    for n in range(math.floor(math.log10(lo_tps / hi_w)), math.ceil(math.log10(hi_tps / lo_w)) + 1):
        k = 10.0 ** n
        ax.plot([lo_w, hi_w], [k * lo_w, k * hi_w], color="#999999", lw=0.6, ls="--", zorder=1)
        w = min(hi_w, hi_tps / k) / 1.4                   # label just inside where the line leaves the box
        if lo_w < w and lo_tps < k * w:
            ax.annotate(f"{k:g} tokens/J", (w, k * w), fontsize=6, color="#777777", ha="right", va="bottom")


def draw(points: list[dict], survey, path: Path, title: str, missing: list[str]):
    """``points``: dicts with label, kind, power_w and tokens_per_s (ours); ``survey``: a
    SurveyFile or None; ``missing``: labels drawn nowhere (no power figures or no fit)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 6.5))
    theirs = survey.points if survey else []
    for kind, colour in CLASS_COLOURS.items():
        mine = [p for p in points if p["kind"] == kind]
        if mine:
            ax.scatter([p["power_w"] for p in mine], [p["tokens_per_s"] for p in mine], s=60, color=colour,
                       edgecolor="black", lw=0.6, zorder=4, label=f"{kind} (llmsim)")
        pub = [p for p in theirs if p.kind == kind]
        if pub:
            ax.scatter([p.power_w for p in pub], [p.tokens_per_s for p in pub], s=22, facecolor="none",
                       edgecolor=colour, lw=0.8, zorder=3)
    if theirs:
        ax.scatter([], [], s=22, facecolor="none", edgecolor="black", lw=0.8,
                   label=f"survey (published): {len(theirs)} points, batch {survey.batch}")
    for p in points:
        ax.annotate(p["label"], (p["power_w"], p["tokens_per_s"]), xytext=(6, 4), textcoords="offset points",
                    fontsize=7, zorder=5, bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.75, lw=0))
    watts = [p["power_w"] for p in points] + [p.power_w for p in theirs]
    rates = [p["tokens_per_s"] for p in points] + [p.tokens_per_s for p in theirs]
    if watts:
        ax.set(xscale="log", yscale="log")
        lo_w, hi_w, lo_t, hi_t = min(watts) / 1.5, max(watts) * 1.5, min(rates) / 1.5, max(rates) * 1.5
        ax.set_xlim(lo_w, hi_w)
        ax.set_ylim(lo_t, hi_t)
        _iso_lines(ax, lo_w, hi_w, lo_t, hi_t)
        plain_log_ticks(ax.xaxis, hi_w / lo_w)
        plain_log_ticks(ax.yaxis, hi_t / lo_t)
        ax.legend(fontsize=7, loc="upper left")
    if missing:
        ax.text(0.99, 0.01, "not drawn: " + "; ".join(missing), transform=ax.transAxes, ha="right", va="bottom",
                fontsize=6, color="#555555", wrap=True)
    ax.set(xlabel="average power (W; energy / end-to-end time, every device of the configuration)",
           ylabel="output tokens/s")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", lw=0.3, alpha=0.5)
    fig.tight_layout()
    return save(fig, path)
