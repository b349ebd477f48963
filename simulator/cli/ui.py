"""``llmsim ui``: serve the local web app (simulator/web) until Ctrl-C. It binds to
127.0.0.1 by default; another --host says, on stderr, that anyone who can reach it may use
it. One request at a time: a single-user tool on the standard library's WSGI server
(wsgiref), which answers a taken port with an error instead of exiting."""
from __future__ import annotations

import ipaddress
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from simulator.cli.workload import at_most
from simulator.errors import SpecError

DEFAULT_PORT = 8765


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):     # no line per request (errors still reach stderr)
        pass


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def listening(app, host: str, port: int):
    """A WSGI server of ``app`` bound to ``host``:``port`` (0: any free port); a one-line
    SpecError when it cannot bind."""
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except (OSError, OverflowError) as exc:
        raise SpecError("<arguments>", "--port", f"cannot listen on {host}:{port} "
                                                 f"({getattr(exc, 'strerror', None) or exc})") from None


def cmd_ui(args) -> str:
    from simulator.web.app import create_app, require

    require()
    app = create_app()
    server = listening(app, args.host, args.port)
    if not _loopback(args.host):
        print(f"llmsim ui: listening on {args.host}: anyone who can reach this machine can use it", file=sys.stderr)
    print(f"llmsim ui: http://{args.host}:{server.server_port}/ (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.extensions["llmsim_uploads"].close()
    return ""


def register(sub) -> None:
    p = sub.add_parser("ui", help="a local web app: the report's views, updated as you change the inputs")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=at_most(65535), default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.set_defaults(func=cmd_ui)
