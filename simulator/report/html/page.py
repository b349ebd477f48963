"""HTML pages around a view (view.py): the self-contained report file, with plotly.js, the
renderer and the view's JSON inlined (it opens offline, from a mail attachment), and the
web app's page, which loads the same renderer from the app's own /static/ URLs."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from simulator.errors import SpecError
from simulator.report.html import plotlyjs
from simulator.report.jsontext import plain
from simulator.report.output import written_whole

STATIC = Path(__file__).resolve().parent / "static"
FILES = ("page.css", "views.js", "report.js", "ui.js", "app-body.html", "page.html")
_MARKER = re.compile(r"<!--(TITLE|STYLE|BODY|SCRIPTS)-->")


def static_text(name: str) -> str:
    """One of FILES, the page's own CSS, JavaScript and HTML."""
    if name not in FILES:
        raise KeyError(name)
    return (STATIC / name).read_text(encoding="utf-8")


def _page(title: str, body: str, scripts: str) -> str:
    parts = {"TITLE": html.escape(title), "STYLE": static_text("page.css"), "BODY": body, "SCRIPTS": scripts}
    return _MARKER.sub(lambda m: parts[m.group(1)], static_text("page.html"))


def script_json(value) -> str:
    """``value`` as JSON safe inside a <script> element (every '<' escaped as \\u003c)."""
    return json.dumps(plain(value), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def report_html(view: dict) -> str:
    """The self-contained report of a view: no external resource of any kind."""
    scripts = (f"<script>{plotlyjs.source()}</script>\n"
               f'<script id="llmsim-view" type="application/json">{script_json(view)}</script>\n'
               f"<script>{static_text('views.js')}</script>\n<script>{static_text('report.js')}</script>")
    return _page(view["title"], '<main id="report"></main>', scripts)


def app_html() -> str:
    """The web app's page: the inputs, an error line, the views (filled by ui.js)."""
    scripts = "\n".join(f'<script src="/static/{name}"></script>' for name in ("plotly.min.js", "views.js", "ui.js"))
    return _page("llmsim", static_text("app-body.html"), scripts)


def write_report(view: dict, path: Path) -> int:
    """Write the report file whole (or not at all); returns its size in bytes."""
    text = report_html(view).encode("utf-8")
    try:
        with written_whole(path) as partial:
            partial.write_bytes(text)
    except OSError as exc:
        raise SpecError("<arguments>", "--html", f"cannot write '{path}' ({exc.strerror or exc})") from None
    return len(text)
