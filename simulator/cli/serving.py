"""``llmsim serving``: a configuration under request load (simulator/serving/): per rate, or a
closed loop, or a trace, the latency percentiles, throughput, goodput, saturation,
preemptions, KV use, energy and cost, as a table or JSON (``{"rates": [...]}``); per-request
rows with --out; a picture with --plot; --max-rate searches the highest rate that meets the
SLOs. Every option is checked before any work (argparse types; lengths and traces by
serving/requests.py): a bad one is one line and exit 2."""
from __future__ import annotations

import argparse

from simulator.cli.workload import duration, positive_float, positive_int, probability

ARRIVALS = ("poisson", "gamma")


def _rates(text: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        return [positive_float(p) for p in parts]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected rates > 0 (requests/s), comma-separated: {exc}") from None


def _fraction_below_one(text: str) -> float:
    value = probability(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to below 1, got {text}")
    return value


def _fraction_above_zero(text: str) -> float:
    value = probability(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"expected a fraction above 0 and at most 1, got {text}")
    return value


def _policy(args):
    from simulator.serving.policy import Policy

    return Policy(max_batched_tokens=args.max_batched_tokens, max_seqs=args.max_seqs, block_size=args.block_size,
                  kv_memory_fraction=args.kv_memory_fraction, prefix_hit=args.prefix_hit, batching=args.batching,
                  decode_graphs=not args.eager)


def _request_maker(args):
    """rate -> Requests (args.requests of them, from args.seed), lengths parsed once."""
    from simulator.serving.requests import generate, parse_lengths

    prompt = parse_lengths(args.prompt_dist or str(args.prompt), "--prompt-dist" if args.prompt_dist else "--prompt")
    output = parse_lengths(args.output_dist or str(args.output), "--output-dist" if args.output_dist else "--output")
    cv = args.cv if args.arrival == "gamma" else 1.0
    return lambda rate: generate(args.requests, rate, prompt, output, args.seed, cv)


def _runs(args, eng):
    from simulator.serving.requests import read_trace
    from simulator.serving.simulate import max_rate, serve

    slos = dict(ttft_slo_s=args.ttft_slo, tpot_slo_s=args.tpot_slo)
    if args.disaggregate:
        from simulator.api import resolve_hardware
        from simulator.errors import WorkloadError
        from simulator.serving.disaggregate import parse_split, serve_split

        if args.trace or args.concurrency or args.max_rate:
            raise WorkloadError("disaggregate", "expected --rate (not --trace, --concurrency or --max-rate)")
        split = parse_split(args.disaggregate)
        make = _request_maker(args)
        return [serve_split(eng, resolve_hardware(args.hardware), make(rate), *split, rate, **slos)
                for rate in args.rate], None
    if args.trace:
        return [serve(eng, read_trace(args.trace), **slos)], None
    make = _request_maker(args)
    if args.concurrency:
        return [serve(eng, make(None), concurrency=args.concurrency, **slos)], None
    if args.max_rate:
        best, run = max_rate(eng, make, args.ttft_slo, args.tpot_slo, args.slo_percentile)
        return ([run] if run is not None else []), best
    return [serve(eng, make(rate), rate, **slos) for rate in args.rate], None


def _confidence(args) -> dict | None:
    """The serving error band (accuracy/serving_bands.py) of this stack on this device: its own
    runs' where the profile used was fitted on this very spec."""
    from simulator.accuracy import serving_bands
    from simulator.api import profile_choice, resolve_hardware, resolve_stack

    hw, st = resolve_hardware(args.hardware), resolve_stack(args.stack)
    return serving_bands.confidence(st.name, hw.name, profile_choice(hw, st).calibrated)


def cmd_serving(args) -> str:
    from simulator.errors import WorkloadError
    from simulator.report.jsontext import json_text
    from simulator.report.output import writable_file
    from simulator.report.plots import plot_path
    from simulator.accuracy import serving_bands
    from simulator.serving import report, rows
    from simulator.serving.simulate import engine

    if args.max_rate and args.ttft_slo is None and args.tpot_slo is None:
        raise WorkloadError("max_rate", "expected --ttft-slo and/or --tpot-slo to search against")
    plot = plot_path(args.plot)
    out = writable_file(args.out, "--out", (".csv", ".parquet")) if args.out else None
    if not args.trace:
        _request_maker(args)                         # lengths checked before any work
    eng = engine(args.model, args.hardware, args.stack, _policy(args), weight_dtype=args.weight_dtype,
                 activation_dtype=args.activation_dtype, kv_dtype=args.kv_dtype, tp=args.tp)
    runs, best = _runs(args, eng)
    title = (f"{args.model} on {args.hardware} ({args.stack}), tp {args.tp}, {args.batching} batching: "
             f"budget {args.max_batched_tokens} tokens, {args.max_seqs} seqs, KV pool {eng.pool_blocks} blocks of "
             f"{args.block_size}" + (f"; disaggregated {args.disaggregate} (prefill:decode replicas)"
                                     if args.disaggregate else ""))
    if out:
        rows.write(out, runs)
    if plot and runs:
        from simulator.report.plots import serving as serving_plot
        serving_plot.draw(runs, plot, title, args.ttft_slo, args.tpot_slo)
    conf = _confidence(args)
    if args.format == "json":
        doc = {"model": args.model, "hardware": args.hardware, "stack": args.stack, "policy": vars(_policy(args)),
               "kv_pool_blocks": eng.pool_blocks, "rates": [r.metrics for r in runs], "notes": list(eng.notes),
               "confidence": conf}
        if args.max_rate:
            doc["max_rate"] = best
        return json_text(doc)
    text = report.table(title, [r.metrics for r in runs], eng.notes) if runs else title
    text = "\n".join([text, *serving_bands.lines(conf)]) if runs else text
    if args.max_rate:
        text += ("\n\nhighest rate meeting the SLOs (p{}): {}".format(
            args.slo_percentile, f"{best:.4g} requests/s" if best is not None else "none (even a near-idle rate "
                                                                                  "misses them)"))
    written = [f"wrote {p}" for p in (out, plot) if p and runs]
    return "\n\n".join([text, *written]) if written else text


def register(sub) -> None:
    p = sub.add_parser("serving", help="simulate serving under request load: latency percentiles, goodput, "
                                       "saturation (continuous batching)")
    p.add_argument("--model", default="llama-3.1-8b", help="model name or spec/config.json path")
    p.add_argument("--hardware", default="h100-sxm", help="hardware name or spec path")
    p.add_argument("--stack", default="pytorch-ref", help="software stack profile (default: pytorch-ref)")
    p.add_argument("--weight-dtype", default="bf16")
    p.add_argument("--activation-dtype", default="bf16")
    p.add_argument("--kv-dtype", default="bf16")
    p.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel devices (default: 1)")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--rate", type=_rates, default=[4.0], help="requests/s, comma-separated (default: 4)")
    load.add_argument("--concurrency", type=positive_int, help="closed loop of N clients")
    load.add_argument("--trace", help="JSONL or CSV file: arrival_s, prompt, output[, prefix_id]")
    load.add_argument("--max-rate", action="store_true", help="search the highest rate meeting the SLOs")
    p.add_argument("--arrival", choices=ARRIVALS, default="poisson")
    p.add_argument("--cv", type=positive_float, default=1.0, help="gamma arrivals: coefficient of variation")
    p.add_argument("--prompt", type=positive_int, default=1024, help="prompt tokens (default: 1024)")
    p.add_argument("--output", type=positive_int, default=128, help="output tokens (default: 128)")
    p.add_argument("--prompt-dist", help="uniform:LO:HI, lognormal:MEAN:SD or file:PATH (overrides --prompt)")
    p.add_argument("--output-dist", help="uniform:LO:HI, lognormal:MEAN:SD or file:PATH (overrides --output)")
    p.add_argument("--requests", type=positive_int, default=1000, help="requests per run (default: 1000)")
    p.add_argument("--seed", type=positive_int, default=1)
    p.add_argument("--batching", choices=("continuous", "static"), default="continuous")
    p.add_argument("--max-batched-tokens", type=positive_int, default=8192, help="token budget per iteration")
    p.add_argument("--max-seqs", type=positive_int, default=256, help="running sequences at most")
    p.add_argument("--block-size", type=positive_int, default=16, help="KV block (tokens)")
    p.add_argument("--kv-memory-fraction", type=_fraction_above_zero, default=0.9,
                   help="share of the memory left after weights and activations for the KV pool")
    p.add_argument("--prefix-hit", type=_fraction_below_one, default=0.0, help="fraction of each prompt cached")
    p.add_argument("--disaggregate", metavar="P:D", help="P prefill and D decode replicas, the KV moved over the "
                                                          "device's fastest link (serving/disaggregate.py)")
    p.add_argument("--eager", action="store_true", help="decode-only iterations launch eagerly (no CUDA graph)")
    p.add_argument("--ttft-slo", type=duration, help="time-to-first-token SLO (e.g. '500 ms')")
    p.add_argument("--tpot-slo", type=duration, help="time-per-output-token SLO (e.g. '50 ms')")
    p.add_argument("--slo-percentile", type=int, choices=(50, 90, 99), default=90,
                   help="percentile --max-rate holds to the SLOs (default: 90)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--out", metavar="FILE", help="per-request rows to FILE.csv or FILE.parquet")
    p.add_argument("--plot", metavar="FILE", help="latency against rate and a timeline to FILE.png or .svg")
    p.set_defaults(func=cmd_serving)
