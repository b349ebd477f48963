"""``llmsim roofline``: each operator of the prefill pass and of a decode step against the
device's roofs (engine/roofline_points.py), as a table or JSON; ``--plot FILE`` draws it."""
from __future__ import annotations

import dataclasses

from simulator.cli.workload import add_workload_options, model_workload
from simulator.errors import WorkloadError
from simulator.report.jsontext import json_text
from simulator.report.table import present, quantity, render
from simulator.units import format_si


def _intensity(x: float) -> str:
    if not present(x):
        return "-"
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def roofline_table(d) -> str:
    """A header naming the scenario and the roofs, then one row per operator and phase."""
    w = d.workload
    roofs = ", ".join(f"{r.name} {format_si(r.value, 'FLOP/s' if r.kind == 'compute' else 'B/s')}" for r in d.roofs)
    top = max(r.value for r in d.roofs if r.kind == "compute")
    ridges = ", ".join(f"{r.name} {_intensity(top / r.value)} FLOP/B" for r in d.roofs if r.kind == "memory")
    decode = (f" and the decode step at position {d.decode_position} (the mean)" if d.decode_position is not None
              else " (output 1: no decode step)")
    lines = [f"{d.model} on {d.hardware} ({d.stack}): batch {w.batch}, prompt {w.prompt}, output {w.output}, "
             f"weights {w.weight_dtype}, compute {w.activation_dtype.value}",
             f"the prefill pass{decode}, per device, all layers",
             f"roofs (datasheet): {roofs}; ridge points: {ridges}",
             "attainable: the datasheet roofline at the operator's intensity; achieved: FLOPs / predicted time"]
    if not d.fits:
        lines.append("note: this scenario does not fit in memory (llmsim predict says by how much)")
    rows = [[p.name, p.phase, quantity(p.time_s, "s"), quantity(p.flops, "FLOP"), quantity(p.bytes, "B"),
             _intensity(p.intensity), quantity(p.attainable_flops_per_s, "FLOP/s") if p.flops else "-",
             quantity(p.achieved_flops_per_s, "FLOP/s") if p.flops else "-",
             p.bound + (" (in memory)" if p.unit == "memory" else "")] for p in d.points]
    table = render(["operator", "phase", "time", "FLOPs", "bytes", "FLOP/B", "attainable", "achieved", "bound"],
                   rows, align_right={2, 3, 4, 5, 6, 7})
    return "\n".join(lines) + "\n\n" + table


def roofline_json(d) -> str:
    points = [{**dataclasses.asdict(p), "intensity_flop_per_byte": p.intensity,
               "achieved_flops_per_s": p.achieved_flops_per_s} for p in d.points]
    return json_text({"model": d.model, "hardware": d.hardware, "stack": d.stack, "workload": d.workload,
                      "decode_position": d.decode_position, "fits": d.fits, "roofs": d.roofs, "points": points})


def cmd_roofline(args) -> str:
    from simulator.api import roofline_data
    from simulator.report.plots import plot_path
    plot = plot_path(args.plot)
    if args.draft_model:
        raise WorkloadError("draft-model", "the roofline shows one model's operators; leave out --draft-model")
    data = roofline_data(args.model, args.hardware, args.stack, model_workload(args))
    if plot:
        from simulator.report.plots import roofline
        roofline.draw(data, plot)
    if args.format == "json":
        return roofline_json(data)
    return roofline_table(data) + (f"\n\nwrote {plot}" if plot else "")


def register(sub) -> None:
    p = sub.add_parser("roofline", help="each operator of a prefill and a decode step against the device's roofs")
    p.add_argument("--model", default="llama-3.1-8b", help="model name or spec/config.json path")
    p.add_argument("--hardware", default="h100-sxm", help="hardware name or spec path")
    add_workload_options(p)
    p.add_argument("--plot", metavar="FILE", help="also draw the roofline to FILE.png or FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_roofline)
