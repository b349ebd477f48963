"""The ``llmsim`` command. The only module that prints or sets exit codes.

Bad input (a spec error, an unknown name, an impossible workload, a bad option) prints
one line to stderr and exits 2, with no traceback and no partial output.
"""
from __future__ import annotations

import argparse
import sys

from simulator import commands_plot, commands_specs, commands_validate
from simulator.errors import SimulatorError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, exit 2 (argparse would print the usage too)
        print(f"llmsim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _add_workload(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default="pytorch-ref", help="software stack profile (default: pytorch-ref)")
    p.add_argument("--batch", type=int, default=8, help="sequences per batch (default: 8)")
    p.add_argument("--prompt", type=int, default=1024, help="prompt tokens per sequence (default: 1024)")
    p.add_argument("--output", type=int, default=128, help="generated tokens per sequence (default: 128)")
    p.add_argument("--weight-dtype", default="bf16", help="weights: fp32 bf16 fp16 fp8 int8 int4")
    p.add_argument("--activation-dtype", default="bf16", help="activations / compute dtype")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache dtype")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel devices (default: 1)")
    p.add_argument("--pp", type=int, default=1, help="pipeline stages (default: 1)")
    p.add_argument("--dp", type=int, default=1, help="data-parallel replicas; the batch is split over them")
    p.add_argument("--ep", type=int, default=1, help="expert-parallel devices (MoE experts split over them)")
    p.add_argument("--microbatches", type=int, default=1, help="pipeline microbatches (default: 1)")
    p.add_argument("--draft-model", help="speculative decoding: the draft model")
    p.add_argument("--draft-tokens", type=int, default=4, help="tokens drafted per iteration (default: 4)")
    p.add_argument("--acceptance", type=float, default=0.7, help="per-token acceptance rate (default: 0.7)")
    p.add_argument("--format", choices=["table", "json"], default="table")


def _workload_kwargs(args) -> dict:
    return dict(stack=args.stack, batch=args.batch, prompt=args.prompt, output=args.output,
                weight_dtype=args.weight_dtype, activation_dtype=args.activation_dtype, kv_dtype=args.kv_dtype,
                tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, microbatches=args.microbatches,
                draft_model=args.draft_model, draft_tokens=args.draft_tokens, acceptance=args.acceptance)


def cmd_predict(args) -> str:
    import simulator
    from simulator.report.table import prediction_table

    p = simulator.predict(model=args.model, hardware=args.hardware, **_workload_kwargs(args))
    return p.model_dump_json(indent=2) if args.format == "json" else prediction_table(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmsim", description="Analytical performance simulator for LLM inference.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("predict", help="predict TTFT, TPOT, throughput, energy and memory of one scenario")
    p.add_argument("--model", default="llama-3.1-8b", help="model name or spec/config.json path")
    p.add_argument("--hardware", default="h100-sxm", help="hardware name or spec path")
    _add_workload(p)
    p.set_defaults(func=cmd_predict)
    commands_specs.register(sub, _add_workload)
    from simulator import commands_sweep
    commands_sweep.register(sub)
    commands_validate.register(sub)
    commands_plot.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
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


if __name__ == "__main__":
    raise SystemExit(main())
