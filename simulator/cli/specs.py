"""``llmsim specs list|show|check``: handlers return text; cli/main.py prints."""
from __future__ import annotations

import textwrap
from pathlib import Path

from simulator.report.table import render
from simulator.specs import registry
from simulator.specs.base import DEVICE_KINDS
from simulator.units import format_si


def _peak_summary(spec) -> str:
    """The bf16 peak when the device has one, else its highest peak, with the dtype."""
    peaks = {d.value: v for d, v in spec.peak_flops().items()}
    dtype = "bf16" if "bf16" in peaks else max(peaks, key=peaks.get)
    return f"{format_si(peaks[dtype], 'OP/s' if dtype.startswith('int') else 'FLOP/s')} {dtype}"


def models_list() -> str:
    """The built-in models: family, parameters (total and active per token, counted from the
    graph), layers, the checkpoint's weight format and the context it was trained for."""
    from simulator.graph.transformer import active_parameter_count, build, parameter_count

    rows = []
    for name in sorted(registry.model_index()):
        _, arch, _ = registry.model(name)
        graph = build(arch)
        total, active = parameter_count(graph), active_parameter_count(graph)
        rows.append([name, arch.family, f"{total / 1e9:.3g}", f"{active / 1e9:.3g}" if arch.is_moe else "",
                     str(arch.num_layers), arch.quantized_weights or "", f"{arch.max_positions:,}" if arch.max_positions
                     else ""])
    return render(["name", "family", "params (1e9)", "active (1e9)", "layers", "weights", "context"], rows,
                  align_right={2, 3, 4, 6})


def specs_list(args) -> str:
    if args.models:
        return models_list()
    rows = []
    for name in sorted(registry.hardware_index()):
        spec = registry.hardware(name)
        if args.kind and spec.kind != args.kind:
            continue
        mem = spec.main_memory
        rows.append([name, spec.kind, spec.status, spec.product, _peak_summary(spec),
                     format_si(spec.capacity_bytes, "B"),
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


def register(sub) -> None:
    specs = sub.add_parser("specs", help="list, show or check hardware and model spec files")
    ssub = specs.add_subparsers(dest="specs_command", required=True)
    p = ssub.add_parser("list", help="list the hardware specs (--models: the built-in models)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--kind", choices=DEVICE_KINDS)
    what.add_argument("--models", action="store_true", help="list the built-in models instead")
    p.set_defaults(func=specs_list)
    p = ssub.add_parser("show", help="one hardware spec as a readable table with units")
    p.add_argument("name")
    p.set_defaults(func=specs_show)
    p = ssub.add_parser("check", help="validate your own spec files (exit 2 on the first error)")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=specs_check)
