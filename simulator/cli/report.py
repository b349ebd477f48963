"""``llmsim report``: one self-contained HTML file (simulator/report/html) of a model on
several devices under one workload: the prediction per device, the comparison, the time
by operator kind, the roofline, memory against capacity, the validation evidence and,
with --serving RATES, the serving curves.
The file and plotly are checked before any work; the handler returns the text
cli/main.py prints (the table of predictions, or the page's data with --format json)."""
from __future__ import annotations

import argparse

from simulator.cli.workload import add_workload_options, hardware_names, name_list, positive_float, workload_kwargs

HTML_SUFFIXES = (".html", ".htm")


def rates(text: str) -> list[float]:
    """Comma-separated arrival rates > 0 (requests/s)."""
    try:
        return [positive_float(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected rates > 0 (requests/s), comma-separated: {exc}") from None


def cmd_report(args) -> str:
    from simulator.report.html import plotlyjs
    from simulator.report.html.data import report_data
    from simulator.report.html.page import write_report
    from simulator.report.html.view import PREDICTION_HEADERS, build, prediction_rows
    from simulator.report.jsontext import json_text
    from simulator.report.output import writable_file
    from simulator.report.table import render
    from simulator.specs.workload import workload

    path = writable_file(args.html, "--html", HTML_SUFFIXES)
    plotlyjs.require()
    data = report_data(args.model, hardware_names(args.hardware), args.stack, workload(**workload_kwargs(args)),
                       args.serving)
    view = build(data)
    size = write_report(view, path)
    if args.format == "json":
        return json_text(view)
    table = render(PREDICTION_HEADERS, prediction_rows(data))
    return (f"{view['title']}\n{view['subtitle']}\n\n{table}\n\n"
            f"wrote {path} ({size / 1e6:.1f} MB, {len(view['figures'])} charts; opens offline)")


def register(sub) -> None:
    p = sub.add_parser("report", help="a self-contained HTML report of a model on several devices")
    p.add_argument("--model", default="llama-3.1-8b", help="model name or spec/config.json path")
    p.add_argument("--hardware", type=name_list, required=True, help="comma-separated hardware names or paths")
    add_workload_options(p)
    p.add_argument("--serving", metavar="RATES", type=rates, help="also serving curves at these arrival rates "
                                                                  "(requests/s, comma-separated: llmsim serving)")
    p.add_argument("--html", metavar="FILE", required=True, help="the report to write (FILE.html)")
    p.set_defaults(func=cmd_report)
