"""The ``llmsim`` command. The only module that prints or sets exit codes.

Bad input (a spec error, an unknown name, an impossible workload, a bad option) prints
one line to stderr and exits 2, with no traceback and no partial output. A reader that
stops early (``llmsim sweep GRID | head``) ends the command quietly with exit status 141,
what a process killed by SIGPIPE returns (128 + 13), so a pipeline under ``set -o pipefail``
still sees that the output was cut short.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from simulator.cli.workload import add_workload_options, workload_kwargs
from simulator.errors import SimulatorError

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 128 + 13         # SIGPIPE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, exit 2 (argparse would print the usage too)
        print(f"llmsim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


# command -> the module whose register(sub) adds it. A process imports only the module of the
# command it runs (all of them for --help or a mistyped command): `llmsim predict` never
# imports scipy, Dask or the calibration code.
COMMANDS = {
    "specs": "simulator.cli.specs",
    "compare": "simulator.cli.compare",
    "roofline": "simulator.cli.roofline",
    "sweep": "simulator.cli.sweep",
    "plan": "simulator.cli.plan",
    "calibrate": "simulator.cli.calibrate",
    "validate": "simulator.cli.validate",
    "report": "simulator.cli.report",
    "ui": "simulator.cli.ui",
    "serving": "simulator.cli.serving",
    "idealized": "simulator.cli.idealized",
}
FEW_POINTS = ("predict", "compare", "roofline")     # run their kernels as plain Python (no numba start-up)


def cmd_predict(args) -> str:
    plot = None
    if args.plot:
        from simulator.report.plots import plot_path
        plot = plot_path(args.plot)
    p = _predicted(args)
    if plot:
        from simulator.report.plots import breakdown
        breakdown.draw(p, plot)
    if args.format == "json":
        return p.model_dump_json(indent=2)
    from simulator.report.table import prediction_table    # only a table needs it (units, formatting)

    return prediction_table(p) + (f"\n\nwrote {plot}" if plot else "")


def _predicted(args):
    """simulator.predict of the options; in a process of its own (``disk_cache``) the
    configuration is kept on disk for the next one (simulator/cache.py)."""
    from simulator import api, cache

    given = workload_kwargs(args)
    scenario = [given.pop(k) for k in ("batch", "prompt", "output")]
    options = tuple(given.get(k) for k in api.OPTIONS)
    key = ("predict", args.model, args.hardware, args.stack, options)
    build = lambda: api.configured_for(args.model, args.hardware, args.stack, *scenario, options)   # noqa: E731
    configured = cache.cached(key, build) if getattr(args, "disk_cache", False) else build()
    return configured.predict(*scenario)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``command`` (with predict's), or of every command when None or unknown."""
    parser = _Parser(prog="llmsim", description="Analytical performance simulator for LLM inference.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("predict", help="predict TTFT, TPOT, throughput, energy and memory of one scenario")
    p.add_argument("--model", default="llama-3.1-8b", help="model name or spec/config.json path")
    p.add_argument("--hardware", default="h100-sxm", help="hardware name or spec path")
    add_workload_options(p)
    p.add_argument("--plot", metavar="FILE", help="also draw the time by operator kind and the memory "
                                                  "footprint to FILE.png or FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_predict)
    wanted = [command] if command in COMMANDS else [] if command == "predict" else list(COMMANDS)
    for name in wanted:
        importlib.import_module(COMMANDS[name]).register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command word of a command line (its first argument, when not an option)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _quiet_stdout() -> None:
    """After the reader of stdout has gone: point stdout at /dev/null, so the interpreter's
    final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):       # not a real file (tests capture stdout)
        pass


def _run(args) -> int:
    failed = getattr(sys.modules.get(COMMANDS["validate"]), "ValidationFailed", ())   # when validate is loaded
    try:
        text = args.func(args)
    except failed as err:                       # the report, then one line, exit 1
        print(err.output)
        print(f"llmsim: {err}", file=sys.stderr)
        return 1
    except SimulatorError as err:
        print(f"llmsim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("llmsim: interrupted", file=sys.stderr)
        return 130
    if text:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line ``argv`` (None: this process's own, which may then run its kernels as
    plain Python: engine/kernels/interpreted.py)."""
    own_process = argv is None
    if own_process and _command(sys.argv[1:]) in FEW_POINTS:
        from simulator.engine.kernels import interpreted
        interpreted.use()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    args.disk_cache = own_process        # main([...]) in a caller's process (tests) keeps nothing on disk
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code = _run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
