"""`llmsim validate`: handlers return text; cli.py prints it."""
from __future__ import annotations

import json
from pathlib import Path

from simulator.cli.workload import name_list
from simulator.errors import SimulatorError, SpecError
from simulator.report.table import render
from simulator.specs import registry


class ValidationFailed(SimulatorError):
    """The median error exceeded --max-median-error: the CLI prints ``output`` (the report),
    then this one line, and exits 1."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def validation_report(points, errs, title: str) -> tuple[str, list[dict]]:
    from simulator.accuracy.measured import summarise, summarise_sessions

    rows = summarise(points, errs)
    sessions = summarise_sessions(points, errs)
    table = render(["hardware", "phase", "metric", "n", "median |err|", "p90 |err|", "max |err|", "mean bias"],
                   [[r["hardware"], r["phase"], r["metric"], str(r["n"]), _pct(r["median_abs_error"]),
                     _pct(r["p90_abs_error"]), _pct(r["max_abs_error"]), f"{100 * r['mean_bias']:+.1f}%"]
                    for r in rows])
    worst = "\n".join(f"  {r['hardware']} {r['metric']}: " + "; ".join(
        f"{w['point']} {100 * w['error']:+.0f}%" for w in r["worst"]) for r in rows)
    by_session = render(["hardware", "session", "phase", "n", "median |err|", "p90 |err|"],
                        [[r["hardware"], r["session"], r["phase"], str(r["n"]), _pct(r["median_abs_error"]),
                          _pct(r["p90_abs_error"])] for r in sessions])
    return f"{title}\n\n{table}\n\nlatency by measurement session:\n{by_session}\n\nworst points:\n{worst}", rows


def measured_sections(points, stack: str, transfer: bool) -> tuple[object, list[tuple[str, str, list[dict]]]]:
    """The errors with each device's own profile, and the report sections as (JSON key, text,
    summary rows): own profiles first, then with ``transfer`` each device predicted with every
    other device's profile."""
    from simulator.accuracy.measured import errors, transfers

    own = errors(points, stack)
    sections = [("own_profile", *validation_report(points, own, f"stack {stack}: each device with its own fitted profile"))]
    if transfer:
        sections += [(f"{target}_from_{source}",
                      *validation_report(subset, errs, f"transfer: {target} predicted with the profile fitted on {source}"))
                     for target, source, subset, errs in transfers(points, stack)]
    return own, sections


def _published_summary(rows: list[dict], key: str) -> list[str]:
    """Per file and metric: n, median and max |error| of the rows' ``key`` errors."""
    import numpy as np

    lines = []
    for file, metric in sorted({(r["file"], r["metric"]) for r in rows}):
        errs = np.array([abs(r[key]) for r in rows if (r["file"], r["metric"]) == (file, metric)
                         and r[key] is not None])
        if errs.size:
            lines.append(f"  {file} {metric}: n={errs.size}, median |error| {100 * np.median(errs):.1f}%, "
                         f"max {100 * errs.max():.1f}%")
    return lines


def published_report() -> tuple[str, list[dict]]:
    """Every published point re-predicted by the file's hand-set stack, beside its
    cross-validated error from the stack fitted on the file's other points (`calibrate
    --published`: each point predicted by a fit that never saw it); per file and metric the
    median |error| of each."""
    from simulator.accuracy.published import compare, cross_validated, run_fitted_lines

    comparisons = compare()
    fitted = cross_validated()
    rows = [{"file": c.file, "hardware": c.point.hardware, "model": c.model, "metric": c.point.metric,
             "batch": c.point.batch, "prompt": c.point.prompt, "output": c.point.output, "tp": c.point.tp,
             "published": c.point.value, "predicted": c.predicted, "error": c.error,
             "cv_error": fitted.get(c.file, {}).get("points", {}).get(f"points.{c.index}")} for c in comparisons]
    pct = lambda e: "" if e is None else f"{100 * e:+.0f}%"        # noqa: E731
    table = render(["source", "hardware", "model", "metric", "B", "S", "N", "tp", "published", "predicted", "error",
                    "fitted, CV"],
                   [[r["file"], r["hardware"], r["model"], r["metric"], str(r["batch"]), str(r["prompt"]),
                     str(r["output"]), str(r["tp"]), f"{r['published']:.4g}",
                     "does not fit" if r["predicted"] is None else f"{r['predicted']:.4g}",
                     pct(r["error"]), pct(r["cv_error"])] for r in rows],
                   align_right={4, 5, 6, 7, 8, 9, 10, 11})
    stacks = "; ".join(f"{file}: {f['stack']} (leave one {f['scheme']} out)" for file, f in sorted(fitted.items()))
    text = ("published runs (validation/published), re-predicted: 'error' by the file's hand-set stack (assumptions "
            "chosen with these tables in view, so not an independent test); 'fitted, CV' by the stack fitted from "
            f"the file's points, each point held out of its own fit ({stacks}):\n\n{table}\n\n"
            "hand-set stacks:\n" + "\n".join(_published_summary(rows, "error"))
            + "\nfitted stacks, cross-validated (each point predicted by a fit without it):\n"
            + "\n".join(_published_summary(rows, "cv_error"))
            + "\nstacks fitted from run files (calibrate --from-runs), cross-validated:\n"
            + "\n".join(run_fitted_lines()))
    return text, rows


def serving_report(root: Path, hardware: list[str] | None) -> tuple[str, dict]:
    """The serving runs (accuracy/serving.py) re-simulated: per run the measured and predicted
    TTFT p50/p90, TPOT p50 and output tokens/s with their errors, then the median and max
    |error| of each over the runs."""
    from simulator.accuracy.serving import METRICS, SHORT as short, compare_all, summary

    rows = compare_all(root, hardware)
    if not rows:
        return "", {"runs": [], "summary": {}}

    def cell(r, key):
        m, p, e = r[f"measured_{key}"], r[f"predicted_{key}"], r[f"error_{key}"]
        scale = 1.0 if key == "output_tokens_per_s" else 1e3
        return "-" if m is None or p is None else f"{m * scale:.4g} / {p * scale:.4g} ({100 * e:+.0f}%)"

    table = render(["hardware", "session", "model", "rate/s", "n", "host", *(short[k] for k in METRICS)],
                   [[r["hardware"], r["session"], r["model"], f"{r['rate']:g}", str(r["requests"]),
                     "-" if r.get("host_scale") is None else f"x{r['host_scale']:.2f}",
                     *(cell(r, k) for k in METRICS)] for r in rows], align_right={3, 4, 5})
    stats = summary(rows)
    lines = [f"  {short[k]}: median |error| {_pct(v['median_abs_error'])}, max {_pct(v['max_abs_error'])} "
             f"(n={v['n']})" for k, v in stats.items() if v["n"]]
    sessions = {s: summary([r for r in rows if r["session"] == s]) for s in dict.fromkeys(r["session"] for r in rows)}
    lines += ["by session (median |error| " + " / ".join(short[k] for k in METRICS) + "):"]
    lines += [f"  {s}: " + " / ".join(_pct(v[k]["median_abs_error"]) if v[k]["n"] else "-" for k in METRICS)
              + f" (n={max(v[k]['n'] for k in METRICS)})" for s, v in sessions.items()]
    text = ("serving runs (continuous batching, validation/harness/serving.py), each rate re-simulated with its own "
            "requests and policy; 'host': the host speed a run's probe measured, which it is simulated at "
            "(serving/host_state.py; '-': no probe, the profile's host); measured / predicted (TTFT and TPOT in ms), "
            "error:\n\n" + table
            + "\n\nover the runs:\n" + "\n".join(lines))
    return text, {"runs": rows, "summary": stats, "by_session": sessions}


def published_serving_report() -> tuple[str, dict]:
    """Published serving benchmarks of others (accuracy/published_serving.py), re-simulated:
    per point and metric the published and predicted values and the error, then the median
    |error| per metric family."""
    from simulator.accuracy.published_serving import compare_all, summary

    rows = compare_all()
    if not rows:
        return "", {"points": [], "summary": {}}

    def value(metric, v):
        return f"{v:.4g}" if metric.endswith("_per_s") else f"{1e3 * v:.4g} ms"

    table = render(["source", "hardware", "model", "stack", "load", "metric", "published", "predicted", "error"],
                   [[r["file"].removesuffix(".yaml"), r["hardware"], r["model"], r["stack"], r["load"], r["metric"],
                     value(r["metric"], r["published"]), value(r["metric"], r["predicted"]),
                     "-" if r["error"] is None else f"{100 * r['error']:+.0f}%"] for r in rows], align_right={6, 7, 8})
    stats = summary(rows)
    lines = [f"  {k}: median |error| {_pct(v['median_abs_error'])} (n={v['n']})" for k, v in stats.items() if v["n"]]
    text = ("published serving benchmarks (validation/published/serving), each point simulated by `llmsim serving` "
            "with the file's stack (hand-set; nothing fitted to these points):\n\n" + table
            + "\n\nover the points:\n" + "\n".join(lines))
    return text, {"points": rows, "summary": stats}


def cmd_validate(args) -> str:
    from simulator.report.plots import plot_path
    from simulator.accuracy.measured import load_points
    from simulator.specs.measurement import measurement_root

    plot = plot_path(args.plot)
    if args.live:
        from simulator.cli.calibrate import progress
        from simulator.calibration.live import live_report

        if args.hardware and len(args.hardware) > 1:
            raise SpecError("<arguments>", "--hardware", f"--live validates one device, got {len(args.hardware)}")
        text, data = live_report(args.stack, args.hardware[0] if args.hardware else None, log=progress)
        return json.dumps(data, indent=2) if args.format == "json" else text
    points = load_points(Path(args.measurements) if args.measurements else measurement_root())
    if args.hardware:
        measured = sorted({p.hardware for p in points})
        missing = [name for name in args.hardware if name not in measured]
        if missing:
            raise SpecError("<arguments>", "--hardware", f"no measured points for '{missing[0]}' "
                                                         f"(measured: {', '.join(measured)})")
        points = [p for p in points if p.hardware in args.hardware]
    if not points:
        raise SpecError(args.measurements or str(measurement_root()), "", "no measured points found")
    own, measured = measured_sections(points, args.stack, args.transfer)
    sections = [text for _, text, _ in measured]
    data = {key: rows for key, _, rows in measured}
    if not args.no_serving:
        text, serving = serving_report(Path(args.measurements) if args.measurements else measurement_root(),
                                       args.hardware)
        if text:
            sections.append(text)
            data["serving"] = serving
    if not args.no_published:
        text, rows = published_report()
        sections.append(text)
        data["published"] = rows
        text, serving_rows = published_serving_report()
        if text:
            sections.append(text)
            data["published_serving"] = serving_rows
    if plot:
        from simulator.report.plots import validation
        validation.draw(points, own, data.get("published", []), plot)
        sections.append(f"wrote {plot}")
    out = json.dumps(data, indent=2) if args.format == "json" else "\n\n".join(sections)
    if args.max_median_error is not None:
        worst = max(r["median_abs_error"] for r in data["own_profile"] if r["metric"] == "latency")
        if worst * 100 > args.max_median_error:
            raise ValidationFailed(f"median |error| {100 * worst:.1f}% exceeds --max-median-error "
                                   f"{args.max_median_error}%", out)
    return out


def register(sub) -> None:
    p = sub.add_parser("validate", help="predict every measured point and report the errors")
    p.add_argument("--stack", default="pytorch-ref")
    p.add_argument("--hardware", type=name_list, help="comma-separated devices (default: all measured)")
    p.add_argument("--measurements", help="folder of <hardware>/e2e-*.json (default: validation/measurements)")
    p.add_argument("--transfer", action="store_true", help="also predict each device with another's profile")
    p.add_argument("--live", action="store_true", help="this CPU, now: calibrate afresh (quick), measure a few small "
                                                       "points (torch needed, ~2 min) and report the errors; with "
                                                       "--hardware NAME also that spec's predictions")
    p.add_argument("--max-median-error", type=float, help="exit 1 when a latency median |error| exceeds PCT")
    p.add_argument("--no-published", action="store_true", help="skip the published runs of others")
    p.add_argument("--no-serving", action="store_true", help="skip the continuous-batching (serving) runs")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--plot", metavar="FILE", help="also draw predicted against measured to FILE.png or FILE.svg")
    p.set_defaults(func=cmd_validate)
