"""``llmsim sweep`` and ``llmsim plan``: argparse registration and handlers. Handlers return
the text cli.py prints; a sweep's progress bar (and the note of an interrupted sweep) go to
stderr through Progress, and only on a terminal."""
from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
import time

from simulator.errors import WorkloadError


class Progress:
    """A one-line progress bar on stderr, redrawn at most every ``interval_s`` and only when
    stderr is a terminal and the sweep has run for ``after_s``."""

    def __init__(self, stream=None, interval_s: float = 0.2, after_s: float = 1.0):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.interval_s, self.after_s = interval_s, after_s
        self.started = time.perf_counter()
        self.shown = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.started < self.after_s or (now - self.shown < self.interval_s
                                                                    and done < total):
            return
        self.shown, self.drawn = now, True
        rate = done / (now - self.started)
        eta = (total - done) / rate if rate else 0.0
        filled = int(30 * done / total) if total else 30
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} scenarios  "
                          f"{rate:,.0f}/s  eta {eta:.0f} s ")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False


def _positive_int(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise WorkloadError(name, f"expected a positive integer, got {value}")


def configuration_label(constants: dict) -> str:
    """A sweep row's configuration in a few words: model, device (x count), weights, what-if factors."""
    devices = f" x{constants['devices']}" if constants["devices"] > 1 else ""
    factors = "".join(f" {name} x{constants[name + '_factor']:g}" for name in ("bandwidth", "capacity", "sram", "peak",
                                                                             "power")
                      if constants[name + "_factor"] != 1)
    return f"{constants['model']} {constants['hardware']}{devices} {constants['weight_dtype']}{factors}"


def cmd_sweep(args) -> str:
    from simulator.report.plots import plot_path
    from simulator.explore.sweep import sweep
    from simulator.explore.front import FrontSample

    _positive_int("workers", args.workers)
    _positive_int("chunk", args.chunk)
    plot = plot_path(args.plot)
    front = FrontSample()
    progress = Progress()
    target = args.out or io.BytesIO()
    try:
        summary = sweep(args.grid, target, chunk_scenarios=args.chunk, scheduler=args.scheduler,
                        workers=args.workers, progress=progress,
                        observe=(lambda rows: front.add(rows.values, configuration_label(rows.constants))) if plot
                        else None)
    except KeyboardInterrupt:
        if args.out:
            progress.note(f"llmsim: interrupted; the rows written so far are in {args.out}")
        raise
    progress.close()
    if plot:
        from simulator.report.plots import front as front_plot
        front_plot.draw(front, plot, f"sweep {args.grid}: {summary.written:,} scenarios", lengths=True)
    if args.out:
        return summary.text(args.out) + (f"\nwrote {plot}" if plot else "")
    return target.getvalue().decode().rstrip("\n")


def _seconds(name: str, text: str) -> float:
    """'0.2' (seconds) or a quantity with a unit ('200 ms')."""
    from simulator import units

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return units.parse(text, "time")
    except ValueError as exc:
        raise WorkloadError(name, f"expected seconds or a time such as '200 ms' ({exc})") from None


def _targets(args):
    from simulator.explore.plan import Targets

    for name in ("prompt", "output", "batch", "max_batch", "max_devices"):
        _positive_int(name, getattr(args, name))
    for name in ("rate", "throughput_min"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise WorkloadError(name.replace("_", "-"), f"expected a positive number, got {value}")
    return Targets(ttft_max_s=_seconds("ttft-max", args.ttft_max) if args.ttft_max else math.inf,
                   tpot_max_s=_seconds("tpot-max", args.tpot_max) if args.tpot_max else math.inf,
                   throughput_min_tokens_per_s=args.throughput_min or 0.0, rate_requests_per_s=args.rate)


def _draw_plan(result, front, path) -> None:
    from simulator.explore.plan import targets_text
    from simulator.report.plots import front as front_plot

    t = result.targets
    front_plot.draw(front, path, f"plan: {result.model}, prompt {result.prompt}, output {result.output}; "
                                 f"targets: {targets_text(result)}",
                    tpot_max_s=t.tpot_max_s if math.isfinite(t.tpot_max_s) else None,
                    throughput_min=t.throughput_min_tokens_per_s or None)


def cmd_plan(args) -> str:
    from simulator.explore.plan import plan
    from simulator.report.plots import plot_path
    from simulator.specs.base import Dtype
    from simulator.specs.workload import workload
    from simulator.explore.front import FrontSample

    plot = plot_path(args.plot)
    targets = _targets(args)
    kv = workload(kv_dtype=args.kv_dtype).kv_dtype
    hardware = [h.strip() for h in args.hardware.split(",") if h.strip()] if args.hardware else None
    front = FrontSample()
    result = plan(args.model, args.prompt, args.output, targets, hardware=hardware, batch=args.batch,
                  stack=args.stack, kv_dtype=Dtype(kv), max_batch=args.max_batch, max_devices=args.max_devices,
                  observe=front.add if plot else None)
    if plot:
        _draw_plan(result, front, plot)
    if args.format == "json":
        return json.dumps(dataclasses.asdict(result), indent=2, default=str)
    from simulator.explore.plan import plan_table
    return plan_table(result) + (f"\n\nwrote {plot}" if plot else "")


def register(sub) -> None:
    """Add the ``sweep`` and ``plan`` subcommands to cli.py's subparsers."""
    p = sub.add_parser("sweep", help="evaluate a grid of scenarios (models x hardware x ... x batch x lengths)")
    p.add_argument("grid", help="grid file (YAML; see simulator/explore/grid.py)")
    p.add_argument("--out", help="write rows to FILE.csv (or FILE.parquet, with pyarrow); default: stdout")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", help="run on the Dask cluster at ADDRESS (tcp://host:8786)")
    p.add_argument("--chunk", type=int, default=65_536, help="scenarios per chunk / task (default: 65536)")
    p.add_argument("--plot", metavar="FILE", help="also draw TPOT against tokens/s, coloured by tokens/J, with the "
                                                  "Pareto front, to FILE.png or FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plan", help="configurations that meet latency and throughput targets, cheapest first")
    p.add_argument("--model", required=True, help="model name or spec/config.json path")
    p.add_argument("--prompt", type=int, required=True, help="prompt tokens per request")
    p.add_argument("--output", type=int, required=True, help="output tokens per request")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--batch", type=int, help="a fixed batch (default: search 1..--max-batch)")
    load.add_argument("--rate", type=float, help="requests per second to serve")
    p.add_argument("--ttft-max", help="largest time to first token: seconds, or e.g. '200 ms'")
    p.add_argument("--tpot-max", help="largest time per output token: seconds, or e.g. '20 ms'")
    p.add_argument("--throughput-min", type=float, help="smallest output tokens/s per configuration")
    p.add_argument("--hardware", help="comma-separated devices (default: every GPU, TPU and ASIC with a price)")
    p.add_argument("--stack", default="pytorch-ref", help="software stack profile (default: pytorch-ref)")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache dtype (default: bf16)")
    p.add_argument("--max-batch", type=int, default=1024, help="largest batch searched (default: 1024)")
    p.add_argument("--max-devices", type=int, default=8, help="largest tensor-parallel count (default: 8)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--plot", metavar="FILE", help="also draw every configuration's batches (TPOT against tokens/s), "
                                                  "those meeting the targets and their Pareto front, to FILE.png or "
                                                  "FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_plan)

