"""`llmsim roofline --plot`: log-log attainable FLOP/s against arithmetic intensity, one roof
per memory level and per compute peak, each operator of the prefill pass (circles) and of
the decode step (triangles) at its predicted achieved FLOP/s, coloured by what bounds it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.report.plots import BOUND_COLOURS, pyplot, save
from simulator.units import format_si

MARKERS = {"prefill": "o", "decode": "^"}


def _draw_roofs(ax, roofs, lo: float, hi: float) -> None:
    """Compute roofs as horizontal lines; memory roofs as slopes up to the highest compute roof."""
    top = max(r.value for r in roofs if r.kind == "compute")
    x = np.geomspace(lo, hi, 200)
    for r in roofs:
        if r.kind == "compute":
            ax.plot([lo, hi], [r.value, r.value], color="black", lw=1.2 if r.value == top else 0.8,
                    ls="-" if r.value == top else "--", label=f"{r.name} {format_si(r.value, 'FLOP/s')}")
        else:
            ax.plot(x, np.minimum(r.value * x, top), lw=1.2, label=f"{r.name} {format_si(r.value, 'B/s')}")


def _label_clusters(ax, names: list[str], xy: list[tuple[float, float]], near_px=(70.0, 9.0)) -> None:
    """One label per cluster of points that lie within ``near_px`` (x, y) on screen of its
    first point, naming each operator once, so coincident points do not overwrite."""
    screen = ax.transData.transform(xy)
    clusters: list[list[int]] = []
    for k in np.argsort(screen[:, 0]):
        home = next((c for c in clusters if abs(screen[k, 0] - screen[c[0], 0]) < near_px[0]
                     and abs(screen[k, 1] - screen[c[0], 1]) < near_px[1]), None)
        (home.append(k) if home is not None else clusters.append([k]))
    middle = ax.transAxes.transform((0.5, 0.5))[0]
    for c in clusters:
        text = ", ".join(dict.fromkeys(names[k] for k in c))
        right = screen[c[0], 0] > middle                      # on the right half, left of the cluster
        ax.annotate(text, xy[c[0]], xytext=(-5, -2) if right else (4, 2), textcoords="offset points", fontsize=6,
                    ha="right" if right else "left", va="top" if right else "baseline")


def draw(data, path: Path):
    """The figure of a RooflineData (engine.roofline_points); operators without FLOPs are
    listed under it, not drawn."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 6))
    drawn = [p for p in data.points if p.flops > 0 and p.bytes > 0 and p.time_s > 0]
    ridges = [r.value for r in data.roofs if r.kind == "compute"]
    bandwidths = [r.value for r in data.roofs if r.kind == "memory"]
    x_all = [p.intensity for p in drawn] + [max(ridges) / b for b in bandwidths]
    lo, hi = min(x_all) / 4, max(x_all) * 4
    _draw_roofs(ax, data.roofs, lo, hi)
    for phase, marker in MARKERS.items():
        for bound, colour in BOUND_COLOURS.items():
            sel = [p for p in drawn if p.phase == phase and p.bound == bound]
            if not sel:
                continue
            xy = [(p.intensity, p.achieved_flops_per_s) for p in sel]
            ax.scatter(*zip(*xy), marker=marker, color=colour, edgecolor="black", lw=0.3, s=30, zorder=3,
                       label=f"{phase}, {bound}-bound")
    y_low = min([p.achieved_flops_per_s for p in drawn] + [min(bandwidths) * lo]) / 3
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(y_low, max(ridges) * 2.5),
           xlabel="arithmetic intensity (FLOP per byte moved)",
           ylabel="achieved FLOP/s (FLOPs / predicted time)")
    _label_clusters(ax, [p.name for p in drawn], [(p.intensity, p.achieved_flops_per_s) for p in drawn])
    w = data.workload
    decode = f"decode step at position {data.decode_position}" if data.decode_position is not None else "no decode"
    ax.set_title(f"{data.model} on {data.hardware} ({data.stack}): batch {w.batch}, prompt {w.prompt}, "
                 f"weights {w.weight_dtype}\nprefill pass (o), {decode} (^); roofs from the datasheet",
                 fontsize=9)
    ax.grid(True, which="major", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="lower right")
    skipped = sorted({p.name for p in data.points} - {p.name for p in drawn})
    if skipped:
        fig.text(0.01, 0.01, "not drawn (no FLOPs): " + ", ".join(skipped), fontsize=7)
    fig.tight_layout(rect=(0, 0.03 if skipped else 0, 1, 1))
    return save(fig, path)
