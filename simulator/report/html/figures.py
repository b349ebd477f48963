"""Plotly figure specs (plain JSON: ``{"data": [...], "layout": {...}}``) of a ReportData.
Every trace carries ``meta`` = the device label it belongs to (None for the measured
points' identity line), which is what the page's per-device toggles switch. Values are the
API's, in SI units (axes print SI prefixes); hover texts are the CLI's own formatting
(report.table.quantity)."""
from __future__ import annotations

from simulator.graph.ops import OpKind
from simulator.report.html.data import DeviceView, ReportData
from simulator.report.plots.breakdown import MEMORY_PARTS, OTHER
from simulator.report.table import number, present, quantity

# Okabe-Ito (colour-blind safe) for devices; matplotlib's tab20 for operator kinds, so the
# kinds keep the colours of the ``predict --plot`` picture.
DEVICE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
         "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
         "#17becf", "#9edae5")
BANDED = ("ttft_s", "tpot_s")        # the quantities Prediction.confidence bands
PHASE_SYMBOLS = {"prefill": "circle", "decode": "triangle-up"}
BASE_LAYOUT = {"margin": {"l": 70, "r": 20, "t": 10, "b": 50}, "height": 320, "hovermode": "closest",
               "legend": {"orientation": "h", "y": -0.25}, "font": {"size": 11}}

# (key, axis title, the value of a view, its unit for hover, number format when unitless)
COMPARISONS = (
    ("ttft_s", "time to first token", lambda v: v.prediction.ttft_s, "s", None),
    ("tpot_s", "time per output token", lambda v: v.prediction.tpot_s, "s", None),
    ("output_tokens_per_s", "output tokens/s", lambda v: v.prediction.output_tokens_per_s, None, ",.1f"),
    ("tokens_per_j", "tokens/J (every device)", lambda v: v.prediction.tokens_per_j, None, ".3g"),
    ("usd_per_million_output_tokens", "USD per 1M output tokens", lambda v: v.usd_per_million_output_tokens,
     None, ".3g"),
)


def colour(i: int) -> str:
    return DEVICE_COLOURS[i % len(DEVICE_COLOURS)]


def kind_colour(kind: str) -> str:
    """The tab20 colour matplotlib's picture gives ``kind`` (grey for OTHER)."""
    return "#bbbbbb" if kind == OTHER else TAB20[OpKind[kind.upper()].value % 20]


def _layout(**extra) -> dict:
    return {**BASE_LAYOUT, **extra}


def _shown(value, unit: str | None, fmt: str | None) -> str:
    return quantity(value, unit) if unit else number(value, fmt)


def band(view: DeviceView, key: str) -> tuple[float, float] | None:
    """(low, high) in the quantity's unit where the measured ``key`` (ttft_s, tpot_s) likely
    lies, from the prediction's confidence band (``Prediction.confidence.error_band``:
    ratios to the prediction), or None where there is none."""
    p = view.prediction
    error_band = p.confidence.error_band if p.confidence is not None else None
    ratios = getattr(error_band, key.removesuffix("_s"), None) if error_band is not None else None
    value = getattr(p, key)
    if ratios is None or not present(value):
        return None
    return value * ratios.low, value * ratios.high


def coverage(view: DeviceView) -> str:
    """'a 90% band': the share of the validation residuals its band holds."""
    return f"a {view.prediction.confidence.error_band.coverage:.0%} band"


def comparison(data: ReportData, key: str) -> dict:
    """One bar per device of one quantity; over TTFT and TPOT, where the measured value likely
    lies (the confidence band) as a vertical range."""
    _, title, value_of, unit, fmt = next(c for c in COMPARISONS if c[0] == key)
    traces = []
    for i, v in enumerate(data.devices):
        value = value_of(v)
        trace = {"type": "bar", "name": v.label, "meta": v.label, "x": [v.label], "y": [value],
                 "marker": {"color": colour(i)}, "showlegend": False,
                 "hovertemplate": f"{v.label}<br>{title}: {_shown(value, unit, fmt)}<extra></extra>"}
        traces.append(trace)
        if not present(value):
            why = "n/a (no price)" if key.startswith("usd") else "n/a (no power)" if "per_j" in key else "n/a"
            traces.append({"type": "scatter", "mode": "text", "x": [v.label], "y": [0], "text": [why],
                           "textposition": "top center", "meta": v.label, "showlegend": False, "hoverinfo": "skip"})
        limits = band(v, key) if key in BANDED else None
        if limits:
            traces.append({"type": "scatter", "mode": "lines+markers", "x": [v.label, v.label], "y": list(limits),
                           "meta": v.label, "showlegend": False, "line": {"color": "#333", "width": 2},
                           "marker": {"symbol": "line-ew-open", "size": 14, "color": "#333"},
                           "hovertemplate": f"{v.label}: measured likely {quantity(limits[0], unit)} to "
                                            f"{quantity(limits[1], unit)} ({coverage(v)})<extra></extra>"})
    axis = {"title": {"text": title}, "rangemode": "tozero"}
    if unit:
        axis.update(tickformat="~s", ticksuffix=unit)
    return {"data": traces, "layout": _layout(yaxis=axis, xaxis={"type": "category"})}


def breakdown(data: ReportData) -> dict:
    """Each device's prefill pass and mean decode step as 100% bars stacked by operator kind
    (breakdown.phase_shares, as in ``predict --plot``)."""
    traces, legend = [], set()
    for v in data.devices:
        for phase, total_s, shares in v.phases:
            row = f"{v.label} · {phase} ({quantity(total_s, 's')})"
            for kind, fraction in shares.items():
                traces.append({"type": "bar", "orientation": "h", "name": kind, "legendgroup": kind, "meta": v.label,
                               "showlegend": kind not in legend, "x": [100 * fraction], "y": [row],
                               "marker": {"color": kind_colour(kind)},
                               "hovertemplate": f"{row}<br>{kind}: {100 * fraction:.1f}% "
                                                f"({quantity(fraction * total_s, 's')})<extra></extra>"})
                legend.add(kind)
    rows = max(len(v.phases) for v in data.devices) * len(data.devices) if data.devices else 1
    return {"data": traces, "layout": _layout(barmode="stack", height=160 + 34 * rows,
                                              xaxis={"title": {"text": "share of the phase's time (%)"},
                                                     "range": [0, 100]},
                                              yaxis={"autorange": "reversed", "automargin": True})}


def _roof_lines(v: DeviceView, i: int, lo: float, hi: float) -> list[dict]:
    """The datasheet roofs of one device: each compute peak flat, each memory level's
    bandwidth x intensity up to the highest peak."""
    roofs = v.roofline.roofs
    top = max(r.value for r in roofs if r.kind == "compute")
    lines = []
    for r in roofs:
        if r.kind == "compute":
            x, y, text = [lo, hi], [r.value, r.value], f"{r.name} {quantity(r.value, 'FLOP/s')}"
        else:
            ridge = top / r.value
            x = [lo, ridge, hi] if lo < ridge < hi else [lo, hi]
            y = [min(r.value * xi, top) for xi in x]
            text = f"{r.name} {quantity(r.value, 'B/s')}"
        lines.append({"type": "scatter", "mode": "lines", "x": x, "y": y, "meta": v.label, "showlegend": False,
                      "line": {"color": colour(i), "width": 1, "dash": "solid" if r.value == top or r.kind == "memory"
                               else "dot"}, "hovertemplate": f"{v.label}: {text}<extra></extra>"})
    return lines


def roofline(data: ReportData) -> dict:
    """Each operator (all layers, one device) at its intensity and achieved FLOP/s under its
    device's roofs (engine.roofline_points), prefill circles, decode triangles; log-log."""
    views = [(i, v) for i, v in enumerate(data.devices) if v.roofline is not None]
    drawn = {v.label: [p for p in v.roofline.points if p.flops > 0 and p.bytes > 0 and p.time_s > 0]
             for _, v in views}
    xs = [p.intensity for ps in drawn.values() for p in ps] + [
        max(r.value for r in v.roofline.roofs if r.kind == "compute") / r.value
        for _, v in views for r in v.roofline.roofs if r.kind == "memory"]
    lo, hi = (min(xs) / 4, max(xs) * 4) if xs else (0.1, 1000.0)
    traces = []
    for i, v in views:
        traces += _roof_lines(v, i, lo, hi)
        for phase, symbol in PHASE_SYMBOLS.items():
            pts = [p for p in drawn[v.label] if p.phase == phase]
            if not pts:
                continue
            traces.append({"type": "scatter", "mode": "markers", "name": f"{v.label} {phase}", "meta": v.label,
                           "x": [p.intensity for p in pts], "y": [p.achieved_flops_per_s for p in pts],
                           "marker": {"symbol": symbol, "color": colour(i), "size": 8,
                                      "line": {"width": 0.5, "color": "#222"}},
                           "text": [f"{v.label} {phase}: {p.name}<br>{quantity(p.time_s, 's')}, "
                                    f"{quantity(p.flops, 'FLOP')}, {quantity(p.bytes, 'B')}<br>"
                                    f"{p.intensity:.3g} FLOP/B, achieved {quantity(p.achieved_flops_per_s, 'FLOP/s')}"
                                    f", attainable {quantity(p.attainable_flops_per_s, 'FLOP/s')}<br>{p.bound}-bound"
                                    for p in pts],
                           "hovertemplate": "%{text}<extra></extra>"})
    return {"data": traces, "layout": _layout(height=460, xaxis={"type": "log", "dtick": 1, "title": {
        "text": "arithmetic intensity (FLOP per byte moved)"}}, yaxis={"type": "log", "dtick": 1, "tickformat": "~s",
                                                                        "ticksuffix": "FLOP/s", "automargin": True,
                                                                        "title": {"text": "achieved FLOP/s"}})}


def memory(data: ReportData) -> dict:
    """Weights, KV cache and activations per device, stacked, against its capacity."""
    traces, legend = [], set()
    for i, v in enumerate(data.devices):
        m = v.prediction.memory
        for label, field, part_colour in MEMORY_PARTS:
            value = getattr(m, field)
            traces.append({"type": "bar", "name": label, "legendgroup": label, "meta": v.label,
                           "showlegend": label not in legend, "x": [v.label], "y": [value],
                           "marker": {"color": part_colour},
                           "hovertemplate": f"{v.label}<br>{label}: {quantity(value, 'B')}<extra></extra>"})
            legend.add(label)
        traces.append({"type": "scatter", "mode": "markers", "name": "capacity", "legendgroup": "capacity",
                       "meta": v.label, "showlegend": i == 0, "x": [v.label], "y": [m.capacity_bytes],
                       "marker": {"symbol": "line-ew-open", "size": 40, "color": "#000",
                                  "line": {"width": 2, "color": "#000"}},
                       "hovertemplate": f"{v.label}<br>capacity {quantity(m.capacity_bytes, 'B')}: total "
                                        f"{quantity(m.total_bytes, 'B')} {'fits' if m.fits else 'does not fit'}"
                                        "<extra></extra>"})
    return {"data": traces, "layout": _layout(barmode="stack", xaxis={"type": "category"}, yaxis={
        "tickformat": "~s", "ticksuffix": "B", "title": {"text": "memory per device"}, "rangemode": "tozero"})}


def validation(data: ReportData) -> dict | None:
    """Each measured point of the devices shown, predicted against measured (log-log, the
    ideal line), and the published points on them; None when there is neither."""
    ev = data.evidence
    if not ev.points and not ev.published:
        return None
    labels = {v.prediction.hardware: (i, v.label) for i, v in enumerate(data.devices)}
    traces, values = [], []
    predicted = ev.predicted()
    for hardware, (i, label) in labels.items():
        for metric, unit in (("latency", "s"), ("energy", "J")):
            idx = [k for k, p in enumerate(ev.points) if p.hardware == hardware and p.metric == metric]
            if not idx:
                continue
            measured, pred = [ev.points[k].measured for k in idx], [float(predicted[k]) for k in idx]
            values += measured + pred
            traces.append({"type": "scatter", "mode": "markers", "name": f"{label} measured {metric}", "meta": label,
                           "x": measured, "y": pred, "marker": {"color": colour(i), "size": 5, "opacity": 0.7,
                                                                "symbol": "circle" if metric == "latency" else "square"},
                           "text": [f"{label}: {ev.points[k].label} {metric}<br>measured "
                                    f"{quantity(ev.points[k].measured, unit)}, predicted {quantity(predicted[k], unit)}"
                                    f" ({100 * ev.errors[k]:+.1f}%)" for k in idx],
                           "hovertemplate": "%{text}<extra></extra>"})
        pub = [c for c in ev.published if c.point.hardware == hardware and c.predicted is not None]
        if pub:
            values += [c.point.value for c in pub] + [c.predicted for c in pub]
            traces.append({"type": "scatter", "mode": "markers", "name": f"{label} published", "meta": label,
                           "x": [c.point.value for c in pub], "y": [c.predicted for c in pub],
                           "marker": {"color": colour(i), "size": 9, "symbol": "diamond-open"},
                           "text": [f"{label}: {c.file} {c.point.metric} B={c.point.batch} S={c.point.prompt} "
                                    f"N={c.point.output}<br>published {c.point.value:.4g}, predicted "
                                    f"{c.predicted:.4g} ({100 * c.error:+.0f}%)" for c in pub],
                           "hovertemplate": "%{text}<extra></extra>"})
    lo, hi = min(values) / 2, max(values) * 2
    traces.insert(0, {"type": "scatter", "mode": "lines", "name": "predicted = measured", "meta": None,
                      "x": [lo, hi], "y": [lo, hi], "line": {"color": "#888", "dash": "dash", "width": 1},
                      "hoverinfo": "skip"})
    return {"data": traces, "layout": _layout(height=420, xaxis={"type": "log", "dtick": 1, "title": {
        "text": "measured (s, J, or the published figure)"}}, yaxis={"type": "log", "dtick": 1,
                                                                     "title": {"text": "predicted"}})}


# (key in a run's metrics, its percentile or None, axis title, unit or None)
SERVING = {"serving-ttft": ("ttft_s", "p90", "p90 time to first token", "s"),
           "serving-tpot": ("tpot_s", "p90", "p90 time per output token", "s"),
           "serving-throughput": ("output_tokens_per_s", None, "output tokens/s", None)}


def serving(data: ReportData, figure_id: str) -> dict:
    """One quantity of each device's serving runs (llmsim serving's metrics) against the
    arrival rate; a saturated run (its queue grows over the run) is an open marker."""
    key, stat, title, unit = SERVING[figure_id]
    traces = []
    for i, v in enumerate(data.devices):
        if not v.serving:
            continue
        ys = [m[key][stat] if stat else m[key] for m in v.serving]
        traces.append({"type": "scatter", "mode": "lines+markers", "name": v.label, "meta": v.label,
                       "x": [m["rate"] for m in v.serving], "y": ys, "line": {"color": colour(i)},
                       "marker": {"color": colour(i), "size": 8,
                                  "symbol": ["circle-open" if m["saturated"] else "circle" for m in v.serving]},
                       "text": [f"{v.label} at {m['rate']:.4g} requests/s: {title} "
                                f"{quantity(y, unit) if unit else number(y, ',.1f')}"
                                + (" (saturated)" if m["saturated"] else "") for m, y in zip(v.serving, ys)],
                       "hovertemplate": "%{text}<extra></extra>"})
    axis = {"title": {"text": title}, "rangemode": "tozero"}
    if unit:                         # latencies: a saturated run's are orders of magnitude longer
        axis = {"title": {"text": title}, "type": "log", "tickformat": "~s", "ticksuffix": unit}
    return {"data": traces, "layout": _layout(xaxis={"title": {"text": "arrival rate (requests/s)"}}, yaxis=axis)}
