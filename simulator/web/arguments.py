"""A query string as the options of an ``llmsim`` command: ``?model=M&batch=8&weight_dtype=fp8``
is ``--model M --batch 8 --weight-dtype fp8``, parsed by the same argparse options and
types the CLI uses (cli/workload.py, compare.py, roofline.py, serving.py), so a bad value gets
the CLI's own one-line message. Names must be built-in names or upload tokens: a path is
refused, so the API never reads a file of the server's by request."""
from __future__ import annotations

import argparse

from simulator.cli import compare as commands_compare
from simulator.cli import roofline as commands_roofline
from simulator.cli import serving as commands_serving
from simulator.cli.workload import add_workload_options, name_list
from simulator.errors import SimulatorError

# the query parameters each command takes (its options, less those that read or write files)
WORKLOAD = ("model", "hardware", "stack", "batch", "prompt", "output", "weight-dtype", "activation-dtype",
            "kv-dtype", "tp", "pp", "dp", "ep", "microbatches", "draft-model", "draft-tokens", "acceptance")
SERVING = ("model", "hardware", "stack", "weight-dtype", "activation-dtype", "kv-dtype", "tp", "rate", "concurrency",
           "max-rate", "arrival", "cv", "prompt", "output", "prompt-dist", "output-dist", "requests", "seed",
           "batching", "max-batched-tokens", "max-seqs", "block-size", "kv-memory-fraction", "prefix-hit", "eager",
           "ttft-slo", "tpot-slo", "slo-percentile")
PARAMETERS = {"predict": WORKLOAD, "compare": WORKLOAD, "roofline": WORKLOAD, "report": (*WORKLOAD, "serving"),
              "serving": SERVING}
FLAGS = ("max-rate", "eager")                                  # options without a value: ?eager=1
NAMES = ("model", "hardware", "stack", "draft-model")          # values that name specs
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
MAX_SERVING_REQUESTS = 20_000                                  # requests per serving run through the API


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
    from simulator.cli.report import rates

    p = sub.add_parser("report")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--hardware", type=name_list, required=True)
    add_workload_options(p)
    p.add_argument("--serving", type=rates)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="llmsim", add_help=False)
    sub = top.add_subparsers(dest="command", parser_class=_Parser)
    _predict_options(sub)
    commands_compare.register(sub)
    commands_roofline.register(sub)
    commands_serving.register(sub)
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


def _value(option: str, value: str, uploads) -> str:
    """``value`` as the CLI would get it: spec names checked (spec_name), no file read."""
    if option in NAMES:
        parts = value.split(",") if option == "hardware" else [value]
        return ",".join(spec_name(part.strip(), option, uploads) if part.strip() else part for part in parts)
    if option.endswith("-dist") and value.strip().lower().startswith("file:"):
        raise BadRequest(f"argument --{option}: the web app reads no files: use uniform:LO:HI or lognormal:MEAN:SD")
    if option == "requests" and value.strip().isdigit() and int(value) > MAX_SERVING_REQUESTS:
        raise BadRequest(f"argument --requests: the web app serves at most {MAX_SERVING_REQUESTS:,} requests a run")
    return value


def argv(command: str, query, uploads) -> list[str]:
    """The command line of ``query`` (a mapping of parameter to value), JSON output."""
    out = [command]
    allowed = PARAMETERS[command]
    for key, value in query.items():
        option = key.replace("_", "-")
        if option not in allowed:
            raise BadRequest(f"unknown parameter '{key[:40]}' (expected: {', '.join(allowed)})")
        if option in FLAGS:
            if value.lower() not in ("", "1", "true", "yes", "on"):
                raise BadRequest(f"argument --{option}: a switch: give it as {key}=1, got {value[:40]!r}")
            out.append(f"--{option}")
            continue
        out += [f"--{option}", _value(option, value, uploads)]
    return out + ["--format", "json"]


def parse(command: str, query, uploads) -> argparse.Namespace:
    """The parsed options of ``command`` from ``query``; BadRequest on what the CLI refuses."""
    return parser().parse_args(argv(command, query, uploads))
