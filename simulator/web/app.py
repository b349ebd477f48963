"""The Flask app of ``llmsim ui``.

  GET  /                  the page: inputs, and the report's views redrawn as they change
  GET  /api/predict       exactly what ``llmsim predict --format json`` prints
  GET  /api/compare       exactly ``llmsim compare --format json`` (hardware=a,b,...)
  GET  /api/roofline      exactly ``llmsim roofline --format json``
  GET  /api/serving       exactly ``llmsim serving --format json`` (rate=1,4,16; no trace file)
  GET  /api/report        the report's view (what the page draws)
  POST /api/sweep         a grid file as the body (or GET with grid=TEXT): the CSV rows
                          ``llmsim sweep GRID`` prints, up to MAX_SWEEP_SCENARIOS
  POST /api/upload        multipart kind=model|hardware and file: a token to use as a name
  GET  /api/names         the built-in models, hardware and stacks
Bad input answers HTTP 400 with ``{"error": LINE}``, LINE being what the CLI prints; a body
over the cap answers 413 the same way.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os

from simulator import DEFAULT_STACK
from simulator.errors import SimulatorError, SpecError
from simulator.report.jsontext import plain
from simulator.web import arguments
from simulator.web.uploads import MAX_UPLOAD_BYTES, Uploads

MISSING = "llmsim ui needs flask and plotly: pip install 'llmsim[web]'"
MAX_SWEEP_SCENARIOS = 100_000        # about 30 MB of CSV
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}


def require() -> None:
    """A one-line SimulatorError when the ``web`` extra is not installed."""
    if importlib.util.find_spec("flask") is None or importlib.util.find_spec("plotly") is None:
        raise SimulatorError(MISSING)


def error_line(err: Exception) -> str:
    """The line the CLI prints for ``err`` (cli/main.py)."""
    return f"llmsim: error: {err}"


def _json(text: str):
    from flask import Response

    return Response(text + "\n", mimetype="application/json")    # the CLI's stdout: the text and a newline


def run(command: str, query, uploads: Uploads) -> str:
    """The text ``llmsim COMMAND`` prints for the options in ``query`` (JSON)."""
    args = arguments.parse(command, query, uploads)
    return args.func(args)


def report_view(query, uploads: Uploads) -> dict:
    from simulator.cli.workload import hardware_names, workload_kwargs
    from simulator.report.html.data import report_data
    from simulator.report.html.view import build
    from simulator.specs.workload import workload

    args = arguments.parse("report", query, uploads)
    return build(report_data(args.model, hardware_names(args.hardware), args.stack, workload(**workload_kwargs(args)),
                             args.serving))


def sweep_csv(grid_text: str, uploads: Uploads) -> tuple[bytes, int]:
    """The CSV rows of a grid (uploaded text) and how many configurations were skipped."""
    from simulator.explore.grid import parse_grid
    from simulator.explore.sweep import sweep
    from simulator.specs.registry import read_yaml

    token = uploads.save("grid", "grid.yaml", grid_text.encode("utf-8"))
    try:
        path = uploads.path(token)
        data = read_yaml(path)
        for field in ("models", "hardware", "stacks", "draft_model"):
            names = data.get(field) if isinstance(data, dict) else None
            if names is not None:
                data[field] = [arguments.spec_name(n, field, uploads) if isinstance(n, str) else n
                               for n in (names if isinstance(names, list) else [names])]
        grid = parse_grid(data, path)
        if grid.scenarios > MAX_SWEEP_SCENARIOS:
            raise SpecError("<grid>", "", f"{grid.scenarios:,} scenarios; the web API sweeps at most "
                                          f"{MAX_SWEEP_SCENARIOS:,} (run llmsim sweep for more)")
        out = io.BytesIO()
        summary = sweep(grid, out)
    finally:
        uploads.discard(token)
    return out.getvalue(), len(summary.skipped)


def _names() -> dict:
    from simulator.specs import registry

    return {"models": sorted(registry.model_index()), "hardware": sorted(registry.hardware_index()),
            "stacks": sorted(registry.stack_index()), "default_model": "llama-3.1-8b",
            "default_stack": DEFAULT_STACK}


def _static(name: str):
    from flask import Response, abort

    from simulator.report.html import page, plotlyjs

    if name == "plotly.min.js":
        return Response(plotlyjs.source(), mimetype="text/javascript")
    if name not in page.FILES or not name.endswith(tuple(STATIC_TYPES)):
        abort(404)
    return Response(page.static_text(name), mimetype=STATIC_TYPES[name[name.rindex("."):]])


def create_app(uploads: Uploads | None = None):
    """The app; ``uploads`` (a fresh temporary folder by default) holds what is uploaded."""
    require()
    from flask import Flask, Response, request

    from simulator.report.html.page import app_html

    app = Flask("llmsim", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 64 * 1024      # the file and its multipart framing
    store = uploads or Uploads()
    app.extensions["llmsim_uploads"] = store

    def bad(message: str, status: int = 400):
        message = message.replace(store.folder + os.sep, "")      # name an upload by its token, not its folder
        return Response(json.dumps({"error": message}) + "\n", status=status, mimetype="application/json")

    app.register_error_handler(SimulatorError, lambda err: bad(error_line(err)))
    app.register_error_handler(413, lambda err: bad(f"llmsim: error: the upload exceeds {MAX_UPLOAD_BYTES:,} bytes",
                                                    413))
    app.register_error_handler(404, lambda err: bad(f"llmsim: error: no such page: {request.path[:80]}", 404))
    app.register_error_handler(405, lambda err: bad(f"llmsim: error: {request.method} is not allowed here", 405))

    app.add_url_rule("/", "page", lambda: Response(app_html(), mimetype="text/html"))
    app.add_url_rule("/static/<name>", "static", _static)
    app.add_url_rule("/api/names", "names", lambda: _json(json.dumps(_names())))
    for command in ("predict", "compare", "roofline", "serving"):
        app.add_url_rule(f"/api/{command}", command, lambda command=command: _json(run(command, request.args, store)))
    app.add_url_rule("/api/report", "report", lambda: _json(json.dumps(plain(report_view(request.args, store)),
                                                                       allow_nan=False)))

    @app.route("/api/sweep", methods=["GET", "POST"])
    def api_sweep():
        text = request.args.get("grid") if request.method == "GET" else request.get_data(as_text=True)
        if not text:
            raise SpecError("<arguments>", "grid", "expected a grid file (YAML) as the body, or grid=TEXT")
        rows, skipped = sweep_csv(text, store)
        return Response(rows, mimetype="text/csv", headers={"X-Llmsim-Skipped-Configurations": str(skipped)})

    @app.post("/api/upload")
    def api_upload():
        file = request.files.get("file")
        if file is None:
            raise SpecError("<upload>", "file", "expected a multipart field 'file'")
        kind = request.form.get("kind", "")
        if kind not in ("model", "hardware"):
            raise SpecError("<upload>", "kind", f"expected model or hardware, got {kind[:40]!r}")
        token = store.save(kind, file.filename, file.read(MAX_UPLOAD_BYTES + 1))
        label = _check_upload(kind, store.path(token))
        return _json(json.dumps({"name": token, "label": f"{label} ({token})"}))

    return app


def _check_upload(kind: str, path) -> str:
    """The uploaded spec's name, once the registry has read and validated it (a SpecError else)."""
    from simulator.specs import registry

    return registry.model(str(path))[0] if kind == "model" else registry.hardware(str(path)).name
