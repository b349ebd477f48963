"""``llmsim plan``: configurations that meet latency and throughput targets, cheapest first
(explore/plan.py), as a table or JSON. Every target is checked by argparse (a time > 0, a
rate > 0), so a bad one is one line and exit 2 before any work. In the JSON, ``null`` is a
target that is not set, or a quantity that does not apply (no decode step, no price, no
power figures; a miss's ``score`` when the configuration never fits). Handlers return the
text cli/main.py prints."""
from __future__ import annotations

import argparse
import math

from simulator.cli.workload import duration, hardware_names, int64, name_list, positive_float, positive_int


def assumed_price(text: str) -> tuple[str, float]:
    """One --assume-price value as (device name or "*", USD/h): ``NAME=2.5/h`` (an hourly
    price), ``NAME=30000`` (a purchase price in USD, amortised as explore.cost does), or a
    price alone for every device without one."""
    from simulator.explore.cost import AMORTISATION_HOURS

    name, _, price = text.rpartition("=")
    name = name.strip() or "*"
    price = price.strip().removeprefix("$")
    hourly = price.endswith("/h")
    try:
        value = float(price.removesuffix("/h").strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected NAME=USD/h (e.g. h20=1.8/h), NAME=purchase USD (e.g. h20=12000) "
                                         f"or a price alone for every device without one, got {text!r}")
    return name, value if hourly else value / AMORTISATION_HOURS


def _assumed_prices(args) -> dict[str, float] | None:
    """{device name or "*": USD/h} from the --assume-price options; each name resolved up front."""
    if not args.assume_price:
        return None
    prices = dict(args.assume_price)
    hardware_names([name for name in prices if name != "*"])
    from simulator.specs import registry
    return {(registry.hardware(n).name if n != "*" else n): v for n, v in prices.items()}


def _targets(args):
    """The targets the options give (unset: unbounded); explore.plan.Targets checks them."""
    from simulator.explore.plan import Targets

    return Targets(ttft_max_s=args.ttft_max if args.ttft_max is not None else math.inf,
                   tpot_max_s=args.tpot_max if args.tpot_max is not None else math.inf,
                   throughput_min_tokens_per_s=args.throughput_min or 0.0, rate_requests_per_s=args.rate,
                   slo_percentile=args.slo_percentile)


def _draw_plan(result, front, path) -> None:
    from simulator.explore.plan import targets_text
    from simulator.report.plots import front as front_plot

    t = result.targets
    front_plot.draw(front, path, f"plan: {result.model}, prompt {result.prompt}, output {result.output}; "
                                 f"targets: {targets_text(result)}",
                    tpot_max_s=t.tpot_max_s if math.isfinite(t.tpot_max_s) else None,
                    throughput_min=t.throughput_min_tokens_per_s or None)


def cmd_plan(args) -> str:
    from simulator.explore.front import FrontSample
    from simulator.explore.plan import check_search, plan, plan_table
    from simulator.report.jsontext import json_text
    from simulator.report.plots import plot_path
    from simulator.specs.base import Dtype
    from simulator.specs.workload import workload

    plot = plot_path(args.plot)
    check_search(args.prompt, args.output, args.batch, args.max_batch, args.max_devices)
    targets = _targets(args)
    kv = workload(kv_dtype=args.kv_dtype).kv_dtype
    hardware = hardware_names(args.hardware) if args.hardware else None
    front = FrontSample()
    result = plan(args.model, args.prompt, args.output, targets, hardware=hardware, batch=args.batch,
                  stack=args.stack, kv_dtype=Dtype(kv), max_batch=args.max_batch, max_devices=args.max_devices,
                  observe=front.add if plot else None, assumed_prices=_assumed_prices(args))
    if plot:
        _draw_plan(result, front, plot)
    if args.format == "json":
        return json_text(result)
    return plan_table(result) + (f"\n\nwrote {plot}" if plot else "")


def register(sub) -> None:
    """Add the ``plan`` subcommand to cli/main.py's subparsers."""
    p = sub.add_parser("plan", help="configurations that meet latency and throughput targets, cheapest first")
    p.add_argument("--model", required=True, help="model name or spec/config.json path")
    p.add_argument("--prompt", type=positive_int, required=True, help="prompt tokens per request")
    p.add_argument("--output", type=positive_int, required=True, help="output tokens per request")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--batch", type=int64, help="a fixed batch (default: search 1..--max-batch)")
    load.add_argument("--rate", type=positive_float, help="requests per second to serve: each configuration's "
                                                          "SLOs checked by the serving simulation (continuous "
                                                          "batching, Poisson arrivals)")
    p.add_argument("--ttft-max", type=duration, help="largest time to first token: seconds, or e.g. '200 ms'")
    p.add_argument("--tpot-max", type=duration, help="largest time per output token: seconds, or e.g. '20 ms'")
    p.add_argument("--slo-percentile", type=int, choices=(50, 90, 99), default=90,
                   help="with --rate: the TTFT and TPOT percentile --ttft-max and --tpot-max bound, checked by the "
                        "serving simulation (default: 90)")
    p.add_argument("--throughput-min", type=positive_float, help="smallest output tokens/s per configuration")
    p.add_argument("--hardware", type=name_list,
                   help="comma-separated devices (default: every GPU, TPU and ASIC with a price)")
    p.add_argument("--assume-price", type=assumed_price, action="append", metavar="[NAME=]PRICE",
                   help="price a device the default search skips (or replace its spec's): NAME=2.5/h (USD per "
                        "hour) or NAME=30000 (purchase USD, over 3 years); a PRICE alone prices every device "
                        "without one; repeatable")
    p.add_argument("--stack", default="pytorch-ref", help="software stack profile (default: pytorch-ref)")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache dtype (default: bf16)")
    p.add_argument("--max-batch", type=int64, default=1024,
                   help="largest batch searched (default: 1024)")
    p.add_argument("--max-devices", type=int64, default=8, help="largest tensor-parallel count (default: 8)")
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="json: every option and miss; null where a target is not set or a quantity does not apply")
    p.add_argument("--plot", metavar="FILE", help="also draw every configuration's batches (TPOT against tokens/s), "
                                                  "those meeting the targets and their Pareto front, to FILE.png or "
                                                  "FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_plan)
