"""A query string as the options of an ``llmsim`` command: ``?model=M&batch=8&weight_dtype=fp8``
is ``--model M --batch 8 --weight-dtype fp8``, parsed by the same argparse options and
types the CLI uses (cli/workload.py, cli/compare.py, cli/roofline.py), so a bad value gets
the CLI's own one-line message. Names must be built-in names or upload tokens: a path is
refused, so the API never reads a file of the server's by request."""
from __future__ import annotations

import argparse

from simulator.cli import compare as commands_compare
from simulator.cli import roofline as commands_roofline
from simulator.cli.workload import add_workload_options, name_list
from simulator.errors import SimulatorError

# the query parameters the API takes (each an option of the command); none writes a file
PARAMETERS = ("model", "hardware", "stack", "batch", "prompt", "output", "weight-dtype", "activation-dtype",
              "kv-dtype", "tp", "pp", "dp", "ep", "microbatches", "draft-model", "draft-tokens", "acceptance")
NAMES = ("model", "hardware", "stack", "draft-model")          # values that name specs
SPEC_SUFFIXES = (".yaml", ".yml", ".json")


class BadRequest(SimulatorError):
    """A query the CLI would refuse: ``str(err)`` is what follows ``llmsim: error: `` there."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):          # cli/main.py's parser prints this line; here it is raised
        raise BadRequest(message)


def _predict_options(sub) -> None:
    """``llmsim predict``'s options (cli/main.py), less --plot."""
    from simulator.cli.main import cmd_predict

    p = sub.add_parser("predict")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--hardware", default="h100-sxm")
    add_workload_options(p)
    p.set_defaults(func=cmd_predict, plot=None)


def _report_options(sub) -> None:
    """``llmsim report``'s options (cli/report.py), less --html: the view is the answer."""
    p = sub.add_parser("report")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--hardware", type=name_list, required=True)
    add_workload_options(p)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="llmsim", add_help=False)
    sub = top.add_subparsers(dest="command", parser_class=_Parser)
    _predict_options(sub)
    commands_compare.register(sub)
    commands_roofline.register(sub)
    _report_options(sub)
    return top


def spec_name(value: str, option: str, uploads) -> str:
    """A built-in name as it is, an upload token as its file; a path is refused."""
    uploaded = uploads.path(value)
    if uploaded is not None:
        return str(uploaded)
    if "/" in value or "\\" in value or value.lower().endswith(SPEC_SUFFIXES) or value.startswith("."):
        raise BadRequest(f"argument --{option}: the web app takes built-in names and uploaded files "
                         f"(POST /api/upload), not paths: {value[:80]!r}")
    return value


def argv(command: str, query, uploads) -> list[str]:
    """The command line of ``query`` (a mapping of parameter to value), JSON output."""
    out = [command]
    for key, value in query.items():
        option = key.replace("_", "-")
        if option not in PARAMETERS:
            raise BadRequest(f"unknown parameter '{key[:40]}' (expected: {', '.join(PARAMETERS)})")
        if option in NAMES:
            parts = value.split(",") if option == "hardware" else [value]
            value = ",".join(spec_name(part.strip(), option, uploads) if part.strip() else part for part in parts)
        out += [f"--{option}", value]
    return out + ["--format", "json"]


def parse(command: str, query, uploads) -> argparse.Namespace:
    """The parsed options of ``command`` from ``query``; BadRequest on what the CLI refuses."""
    return parser().parse_args(argv(command, query, uploads))
