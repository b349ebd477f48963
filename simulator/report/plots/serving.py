"""Serving runs as a picture: TTFT and TPOT percentiles against the request rate (log axes)
with the SLO lines and the first saturated rate marked; and one run's timeline: running and
waiting requests and the KV pool's use against time (the run's sampled iterations)."""
from __future__ import annotations

from pathlib import Path

from simulator.report.plots import plain_log_ticks, pyplot, save

STATS = (("p50", "-"), ("p90", "--"), ("p99", ":"))


def _latency(ax, runs, key, title, slo_s):
    rates = [r.metrics["rate"] for r in runs]
    for stat, style in STATS:
        values = [r.metrics[key][stat] for r in runs]
        points = [(x, y * 1e3) for x, y in zip(rates, values) if y is not None]
        if points:
            ax.plot(*zip(*points), style, marker="o", ms=3, label=stat)
    if slo_s is not None:
        ax.axhline(slo_s * 1e3, color="#d95f02", lw=1, label="SLO")
    saturated = [r.metrics["rate"] for r in runs if r.metrics["saturated"]]
    if saturated:
        ax.axvline(min(saturated), color="grey", lw=1, ls="-.", label="saturated from")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis, max(rates) / min(rates))
    shown = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    plain_log_ticks(ax.yaxis, max(shown) / min(shown) if shown else 10.0)
    ax.set_xlabel("requests/s")
    ax.set_ylabel(f"{title} (ms)")
    ax.set_title(title)
    ax.legend(fontsize=7)


def _timeline(ax, run, title):
    rec = run.records
    ax.plot(rec[:, 0], rec[:, 1], lw=1, label="running")
    ax.plot(rec[:, 0], rec[:, 2], lw=1, label="waiting")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("requests")
    kv = ax.twinx()
    kv.plot(rec[:, 0], 100 * rec[:, 3] / max(run.metrics["kv_pool_blocks"], 1), lw=1, color="#7570b3",
            label="KV use")
    kv.set_ylabel("KV pool used (%)")
    kv.set_ylim(0, 100)
    ax.set_title(title)
    lines = ax.get_legend_handles_labels()
    more = kv.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")


def draw(runs, path: Path, title: str, ttft_slo_s=None, tpot_slo_s=None):
    """Runs of serving.simulate (each with .metrics and .records) into ``path``; the latency
    panels need two or more runs at open-loop rates, else only the timeline is drawn."""
    plt = pyplot()
    rated = [r for r in runs if r.metrics["rate"] is not None]
    panels = 3 if len(rated) >= 2 else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    axes = axes[0]
    if panels == 3:
        _latency(axes[0], rated, "ttft_s", "time to first token", ttft_slo_s)
        _latency(axes[1], rated, "tpot_s", "time per output token", tpot_slo_s)
    stable = [r for r in runs if not r.metrics["saturated"]]
    shown = stable[-1] if stable else runs[-1]
    m = shown.metrics
    label = f"{m['rate']:.3g} requests/s" if m["rate"] is not None else (
        f"{m['concurrency']} clients" if m["concurrency"] else "trace")
    _timeline(axes[-1], shown, f"timeline at {label}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)
