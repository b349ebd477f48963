"""`llmsim specs list|show|check` and `llmsim compare`: handlers return text; cli.py prints."""
from __future__ import annotations

import textwrap
from pathlib import Path

from simulator.cli.workload import add_workload_options
from simulator.explore.cost import usd_per_million_tokens
from simulator.report.table import render
from simulator.specs import registry
from simulator.units import format_si

KINDS = ("cpu", "gpu", "tpu", "fpga", "asic", "pim")


def _peak_summary(spec) -> str:
    """The bf16 peak when the device has one, else its highest peak, with the dtype."""
    peaks = {d.value: v for d, v in spec.peak_flops().items()}
    dtype = "bf16" if "bf16" in peaks else max(peaks, key=peaks.get)
    return f"{format_si(peaks[dtype], 'OP/s' if dtype.startswith('int') else 'FLOP/s')} {dtype}"


def specs_list(args) -> str:
    rows = []
    for name in sorted(registry.hardware_index()):
        spec = registry.hardware(name)
        if args.kind and spec.kind != args.kind:
            continue
        mem = spec.main_memory
        rows.append([name, spec.kind, spec.status, spec.product, _peak_summary(spec),
                     format_si(sum(level.capacity_bytes for level in spec.memory), "B"),
                     format_si(mem.bandwidth_bytes_per_s, "B/s")])
    return render(["name", "kind", "status", "product", "dense peak", "memory", "bandwidth"], rows,
                  align_right={4, 5, 6})


def specs_show(args) -> str:
    spec = registry.hardware(args.name)
    rows = [["kind", spec.kind], ["vendor / product", f"{spec.vendor} {spec.product}"], ["status", spec.status]]
    rows += [[f"peak {d.value} (dense)", format_si(v, "FLOP/s" if d.value.startswith(("f", "b", "t")) else "OP/s")]
             for d, v in sorted(spec.peak_flops().items(), key=lambda kv: kv[0].bits, reverse=True)]
    for level in spec.memory:
        where = "on chip" if level.on_chip else "off chip"
        rows.append([f"memory {level.name} ({where})",
                     f"{format_si(level.capacity_bytes, 'B')} at {format_si(level.bandwidth_bytes_per_s, 'B/s')}"])
        if level.pim:
            rows.append([f"  PIM in {level.name}", f"{', '.join(level.pim.ops)}; internal "
                         f"{format_si(level.pim.internal_bandwidth_bytes_per_s, 'B/s')}"])
    if spec.power:
        idle = format_si(spec.power.idle_w, "W") if spec.power.idle_w is not None else "not given"
        rows.append(["power (TDP / idle)", f"{format_si(spec.power.tdp_w, 'W')} / {idle}"])
    for link in spec.interconnect:
        rows.append([f"link {link.name}", f"{format_si(link.bandwidth_per_direction_bytes_per_s, 'B/s')} per "
                     f"direction, {format_si(link.latency_s, 's')}, {link.topology}"])
    if spec.price:
        price = spec.price
        parts = [format_si(price.hourly_usd_per_h, "USD/h") if price.hourly_usd_per_h else None,
                 f"{price.purchase_usd:,.0f} USD" if price.purchase_usd else None]
        rows.append(["price", ", ".join(p for p in parts if p) + f" ({price.source})"])
    rows.append(["sources", "; ".join(spec.provenance.sources)])
    text = f"{spec.name}\n\n" + render(["field", "value"], rows, align_right=set())
    if spec.provenance.notes:
        text += "\n\nnotes:\n" + textwrap.fill(spec.provenance.notes.strip(), 96, initial_indent="  ",
                                                subsequent_indent="  ")
    return text


def specs_check(args) -> str:
    """Validate each file (hardware, model or stack, by its folder or content); the first
    error raises SpecError, so the CLI prints it and exits 2."""
    lines = []
    for raw in args.paths:
        path = Path(raw)
        data = registry.read_yaml(path)
        if "config" in data or "model_type" in data:
            registry.model(str(path))
            what = "model"
        elif "kernels_per_op" in data or "default" in data or path.parent.name == "stacks":
            registry.stack(str(path))
            what = "stack"
        else:
            registry.load_hardware_file(path)
            what = "hardware"
        lines.append(f"ok  {what:8s} {path}")
    return "\n".join(lines)


def _compare_row(name: str, p, devices: int) -> list[str]:
    cost = usd_per_million_tokens(registry.hardware(name), devices, p.e2e_s, p.batch * p.output)
    return [format_si(p.ttft_s, "s"), format_si(p.tpot_s, "s") if p.tpot_s else "n/a",
            f"{p.output_tokens_per_s:,.0f}", f"{p.tokens_per_j:.3g}" if p.tokens_per_j else "n/a (no power)",
            f"{cost:.3g}" if cost is not None else "n/a (no price)"]


def _why_no_split(args, name: str, w) -> str:
    from simulator.engine.sizing import largest_split
    from simulator.engine.predict import predict_workload

    if not registry.hardware(name).interconnect:
        return f"{name}: its spec has no chip-to-chip link, so it cannot be combined with others"
    split = largest_split(args.model, w)
    m = predict_workload(args.model, name, args.stack, split).memory
    return (f"{name}: even split tp {split.tp} x pp {split.pp} ({split.devices} devices) each needs "
            f"{format_si(m.total_bytes, 'B')} of {format_si(m.capacity_bytes, 'B')} (weights "
            f"{format_si(m.weights_bytes, 'B')}, KV {format_si(m.kv_cache_bytes, 'B')}, prefill activations "
            f"{format_si(m.activation_bytes, 'B')}): a smaller batch x prompt per pass would fit")


def compare(args) -> str:
    """One row per device; a device that cannot hold the model alone says so, and gets a
    second row for the fewest devices (tensor x pipeline parallel) that would."""
    from simulator.engine.sizing import fewest_devices
    from simulator.engine.predict import predict_workload
    from simulator.specs.workload import workload

    w = workload(batch=args.batch, prompt=args.prompt, output=args.output, weight_dtype=args.weight_dtype,
                 activation_dtype=args.activation_dtype, kv_dtype=args.kv_dtype)
    rows, notes = [], []
    for name in [h.strip() for h in args.hardware.split(",") if h.strip()]:
        p = predict_workload(args.model, name, args.stack, w)
        if p.memory.fits:
            rows.append([name, *_compare_row(name, p, 1)])
            continue
        rows.append([name, "does not fit", f"{format_si(p.memory.total_bytes, 'B')} > "
                     f"{format_si(p.memory.capacity_bytes, 'B')}", "", "", ""])
        multi = fewest_devices(args.model, name, args.stack, w)
        if multi is None:
            notes.append(_why_no_split(args, name, w))
            continue
        mp = predict_workload(args.model, name, args.stack, multi)
        rows.append([f"  {name} x{multi.devices} (tp {multi.tp}, pp {multi.pp})",
                     *_compare_row(name, mp, multi.devices)])
    head = (f"{args.model}, stack {args.stack}: batch {args.batch}, prompt {args.prompt}, output {args.output}, "
            f"weights {args.weight_dtype}; tokens/J and cost count every device")
    table = render(["hardware", "TTFT", "TPOT", "tokens/s", "tokens/J", "USD per 1M tokens"], rows)
    return "\n\n".join([head, table, *notes]) if notes else head + "\n\n" + table


def register(sub) -> None:
    specs = sub.add_parser("specs", help="list, show or check hardware and model spec files")
    ssub = specs.add_subparsers(dest="specs_command", required=True)
    p = ssub.add_parser("list", help="list the hardware specs")
    p.add_argument("--kind", choices=KINDS)
    p.set_defaults(func=specs_list)
    p = ssub.add_parser("show", help="one hardware spec as a readable table with units")
    p.add_argument("name")
    p.set_defaults(func=specs_show)
    p = ssub.add_parser("check", help="validate your own spec files (exit 2 on the first error)")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=specs_check)
    p = sub.add_parser("compare", help="the same workload on several devices, one row each")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--hardware", required=True, help="comma-separated hardware names or paths")
    add_workload_options(p)
    p.set_defaults(func=compare)
