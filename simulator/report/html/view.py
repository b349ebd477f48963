"""The view of a ReportData that the page renders (the same JSON the report inlines and the
web app's ``/api/report`` answers): a title, the devices with their colours, tables of
numbers written as the CLI writes them, the figures (figures.py) and the notes."""
from __future__ import annotations

from simulator import DEFAULT_STACK, __version__
from simulator.report.html import figures
from simulator.report.html.data import DeviceView, ReportData
from simulator.report.table import number, quantity

# (id, title, caption); the validation figure only where there is evidence
FIGURES = (
    ("ttft", "Time to first token", "the prefill pass; the range: where the measured value likely lies "
                                    "(the prediction's confidence band)"),
    ("tpot", "Time per output token", "the mean decode step; the range: the confidence band"),
    ("tokens-per-s", "Output tokens/s", "batch x output tokens over the end-to-end latency"),
    ("tokens-per-j", "Tokens per joule", "energy of every device of the configuration"),
    ("usd", "USD per million output tokens", "the device's hourly price, else its purchase price over 3 years"),
    ("memory", "Memory per device against capacity", "weights, KV cache and the largest prefill activation"),
    ("breakdown", "Time by operator kind", "each phase as 100%; 'other' is the phase's time outside its operators"),
    ("roofline", "Roofline", "each operator (all layers, one device): o prefill, ^ decode step at the mean "
                             "position; lines: the datasheet roofs"),
    ("serving-ttft", "Serving: time to first token", "Poisson arrivals at each rate (llmsim serving: continuous "
                                                     "batching, 1,000 requests); open markers: saturated"),
    ("serving-tpot", "Serving: time per output token", "the same runs"),
    ("serving-throughput", "Serving: output tokens/s", "the same runs"),
    ("validation", "Validation evidence", "measured runs of the devices shown, predicted with this stack's "
                                          "profile, and published runs of others on them"),
)


PREDICTION_HEADERS = ["device", "TTFT", "TPOT", "e2e", "tokens/s", "energy", "tokens/J", "USD per 1M tokens",
                      "memory / capacity", "fits"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _band_text(v: DeviceView, key: str) -> str:
    limits = figures.band(v, key)
    if limits is None:
        return "n/a"
    b = getattr(v.prediction.confidence.error_band, key.removesuffix("_s"))
    return f"{quantity(limits[0], 's')} to {quantity(limits[1], 's')} ({100 * (b.low - 1):+.0f}% to {100 * (b.high - 1):+.0f}%)"


def confidence_rows(data: ReportData) -> list[list[str]]:
    """Per device: the profile used, calibrated or not, where the measured TTFT and TPOT
    likely lie, what the band rests on, and what the scenario extrapolates."""
    rows = []
    for v in data.devices:
        c = v.prediction.confidence
        if c is None:
            rows.append([v.label, "n/a", "", "", "", "", ""])
            continue
        eb = c.error_band
        basis = "no band (a bound)" if eb is None else (eb.assumption or eb.source) + f" ({figures.coverage(v)})"
        rows.append([v.label, c.profile, "yes" if c.calibrated else "no", _band_text(v, "ttft_s"),
                     _band_text(v, "tpot_s"), basis, "; ".join(c.extrapolated) or "none"])
    return rows


def prediction_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for v in data.devices:
        p, m = v.prediction, v.prediction.memory
        rows.append([v.label, quantity(p.ttft_s, "s"), quantity(p.tpot_s, "s"), quantity(p.e2e_s, "s"),
                     number(p.output_tokens_per_s, ",.1f"), quantity(p.energy_j, "J"),
                     number(p.tokens_per_j, ".3g", "n/a (no power)"),
                     number(v.usd_per_million_output_tokens, ".3g", "n/a (no price)"),
                     f"{quantity(m.total_bytes, 'B')} / {quantity(m.capacity_bytes, 'B')}",
                     "fits" if m.fits else "does not fit"])
    return rows


def evidence_rows(data: ReportData) -> list[list[str]]:
    """accuracy.measured.summarise rows, written as ``llmsim validate`` writes them."""
    return [[r["hardware"], r["phase"], r["metric"], str(r["n"]), _pct(r["median_abs_error"]),
             _pct(r["p90_abs_error"]), _pct(r["max_abs_error"]), f"{100 * r['mean_bias']:+.1f}%"]
            for r in data.evidence.summary]


def published_rows(data: ReportData) -> list[list[str]]:
    """Each published point on the devices shown, written as ``llmsim validate`` writes it."""
    return [[c.point.hardware, c.file, c.point.metric, str(c.point.batch), str(c.point.prompt), str(c.point.output),
             str(c.point.tp), f"{c.point.value:.4g}", "does not fit" if c.predicted is None else f"{c.predicted:.4g}",
             "" if c.error is None else f"{100 * c.error:+.0f}%"] for c in data.evidence.published]


def _tables(data: ReportData) -> list[dict]:
    ev = data.evidence
    missing = "; ".join(f"{h}: no measured or published runs of stack {data.stack} on it" for h in ev.missing)
    measured_of = "" if ev.stack == DEFAULT_STACK else (f"the measured runs are of {DEFAULT_STACK}'s harness, "
                                                        f"so they say nothing of {ev.stack}")
    return [
        {"id": "predictions", "title": "Prediction per device", "headers": PREDICTION_HEADERS,
         "rows": prediction_rows(data), "caption": "tokens/J and cost count every device of the configuration"},
        {"id": "confidence", "title": "Confidence per device",
         "headers": ["device", "stack profile", "calibrated", "TTFT likely", "TPOT likely", "band from", "extrapolated"],
         "rows": confidence_rows(data), "caption": "where the measured value likely lies, from the validation "
                                                    "residuals of the nearest measured region"},
        {"id": "evidence", "title": "How well this stack was measured on these devices",
         "headers": ["device", "phase", "metric", "n", "median |err|", "p90 |err|", "max |err|", "mean bias"],
         "rows": evidence_rows(data), "caption": "; ".join(t for t in (missing, measured_of) if t)},
        {"id": "published", "title": "Published runs of others on these devices, re-predicted",
         "headers": ["device", "source", "metric", "B", "S", "N", "tp", "published", "predicted", "error"],
         "rows": published_rows(data), "caption": "" if ev.published else "none on these devices"},
    ]


def _figure_specs(data: ReportData) -> dict:
    specs = {key: figures.comparison(data, metric) for key, metric in zip(
        ("ttft", "tpot", "tokens-per-s", "tokens-per-j", "usd"), (c[0] for c in figures.COMPARISONS))}
    specs.update(breakdown=figures.breakdown(data), memory=figures.memory(data))
    if any(v.roofline is not None for v in data.devices):
        specs["roofline"] = figures.roofline(data)
    if any(v.serving for v in data.devices):
        specs.update({key: figures.serving(data, key) for key in figures.SERVING})
    shown = figures.validation(data)
    if shown is not None:
        specs["validation"] = shown
    return specs


def subtitle(data: ReportData) -> str:
    w = data.workload
    draft = f", draft {w.draft_model} x{w.draft_tokens} at {w.acceptance:g}" if w.draft_model else ""
    parallel = f", tp {w.tp}, pp {w.pp}, dp {w.dp}, ep {w.ep}" if w.tp * w.pp * w.dp * w.ep > 1 else ""
    rates = f"; serving at {', '.join(f'{r:g}' for r in data.rates)} requests/s" if data.rates else ""
    return (f"stack {data.stack}: batch {w.batch}, prompt {w.prompt}, output {w.output}, weights {w.weight_dtype}, "
            f"compute {w.activation_dtype.value}, KV {w.kv_dtype.value}{parallel}{draft}{rates}")


def build(data: ReportData) -> dict:
    """The page's JSON (see the module docstring)."""
    specs = _figure_specs(data)
    notes = data.notes + [f"{v.label}: {v.prediction.note}" for v in data.devices if v.prediction.note]
    return {"title": f"{data.model} on {', '.join(v.label for v in data.devices)}", "subtitle": subtitle(data),
            "generator": f"llmsim {__version__}",
            "devices": [{"label": v.label, "colour": figures.colour(i)} for i, v in enumerate(data.devices)],
            "tables": _tables(data),
            "figures": [{"id": key, "title": title, "caption": caption, "figure": specs[key]}
                        for key, title, caption in FIGURES if key in specs],
            "notes": notes}
