"""The ``llmsim`` command. The only module that prints or sets exit codes.

Bad input (a spec error, an unknown name, an impossible workload, a bad option) prints
one line to stderr and exits 2, with no traceback and no partial output. A reader that
stops early (``llmsim sweep GRID | head``) ends the command quietly with exit status 141,
what a process killed by SIGPIPE returns (128 + 13), so a pipeline under ``set -o pipefail``
still sees that the output was cut short.
"""
from __future__ import annotations

import argparse
import os
import sys

from simulator.cli import calibrate as commands_calibrate
from simulator.cli import compare as commands_compare
from simulator.cli import roofline as commands_roofline
from simulator.cli import specs as commands_specs
from simulator.cli import validate as commands_validate
from simulator.cli.workload import add_workload_options, workload_kwargs
from simulator.errors import SimulatorError

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 128 + 13         # SIGPIPE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, exit 2 (argparse would print the usage too)
        print(f"llmsim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def cmd_predict(args) -> str:
    import simulator
    from simulator.report.plots import plot_path
    from simulator.report.table import prediction_table

    plot = plot_path(args.plot)
    p = simulator.predict(model=args.model, hardware=args.hardware, stack=args.stack, **workload_kwargs(args))
    if plot:
        from simulator.report.plots import breakdown
        breakdown.draw(p, plot)
    if args.format == "json":
        return p.model_dump_json(indent=2)
    return prediction_table(p) + (f"\n\nwrote {plot}" if plot else "")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmsim", description="Analytical performance simulator for LLM inference.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("predict", help="predict TTFT, TPOT, throughput, energy and memory of one scenario")
    p.add_argument("--model", default="llama-3.1-8b", help="model name or spec/config.json path")
    p.add_argument("--hardware", default="h100-sxm", help="hardware name or spec path")
    add_workload_options(p)
    p.add_argument("--plot", metavar="FILE", help="also draw the time by operator kind and the memory "
                                                  "footprint to FILE.png or FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_predict)
    commands_specs.register(sub)
    commands_compare.register(sub)
    commands_roofline.register(sub)
    from simulator.cli import plan as commands_plan
    from simulator.cli import sweep as commands_sweep
    commands_sweep.register(sub)
    commands_plan.register(sub)
    commands_calibrate.register(sub)
    commands_validate.register(sub)
    return parser


def _quiet_stdout() -> None:
    """After the reader of stdout has gone: point stdout at /dev/null, so the interpreter's
    final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):       # not a real file (tests capture stdout)
        pass


def _run(args) -> int:
    try:
        text = args.func(args)
    except commands_validate.ValidationFailed as err:
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
    parser = build_parser()
    args = parser.parse_args(argv)
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
