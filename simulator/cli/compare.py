"""``llmsim compare``: the same workload on several devices, one row each (a table, or JSON
with ``--format json``). Every workload option is honoured, speculative decoding included
(``simulator.predict``'s semantics). A device that cannot hold the workload says so and
gets a second row: the fewest devices (tensor x pipeline parallel, engine/sizing.py) that
would, or a note saying why none would. Power (W) is each row's energy over its e2e time;
``--plot FILE`` draws tokens/s against it beside the survey's published points
(report/plots/survey.py). Handlers return text; cli/main.py prints."""
from __future__ import annotations

from simulator.cli.workload import add_workload_options, hardware_names, model_workload, name_list
from simulator.explore.cost import usd_per_million_tokens
from simulator.report.jsontext import json_text
from simulator.report.table import number, quantity, render
from simulator.specs import registry
from simulator.units import format_si


def _cost(name: str, p) -> float | None:
    return usd_per_million_tokens(registry.hardware(name), p.devices, p.e2e_s, p.batch * p.output)


def _power_w(p) -> float | None:
    """Average power of the configuration, W: the prediction's energy over its e2e time."""
    return p.energy_j / p.e2e_s if p.energy_j is not None and p.e2e_s else None


def _entry(name: str, p, label: str) -> dict:
    """One row as data; None where a quantity does not apply (no decode step, no power
    figures, no price, or a scenario that does not fit)."""
    m = p.memory
    return {"hardware": name, "label": label, "devices": p.devices, "tp": p.tp, "pp": p.pp, "fits": m.fits,
            "ttft_s": p.ttft_s, "tpot_s": p.tpot_s, "e2e_s": p.e2e_s, "output_tokens_per_s": p.output_tokens_per_s,
            "power_w": _power_w(p), "tokens_per_j": p.tokens_per_j,
            "usd_per_million_output_tokens": _cost(name, p) if m.fits else None,
            "memory_total_bytes": m.total_bytes, "memory_capacity_bytes": m.capacity_bytes}


def _row(e: dict) -> list[str]:
    if not e["fits"]:
        return [e["label"], "does not fit", f"{quantity(e['memory_total_bytes'], 'B')} > "
                f"{quantity(e['memory_capacity_bytes'], 'B')}", "", "", "", ""]
    return [e["label"], quantity(e["ttft_s"], "s"), quantity(e["tpot_s"], "s"), number(e["output_tokens_per_s"], ",.0f"),
            number(e["power_w"], ",.0f", "n/a (no power)"),
            number(e["tokens_per_j"], ".3g", "n/a (no power)"),
            number(e["usd_per_million_output_tokens"], ".3g", "n/a (no price)")]


def _why_no_split(model: str, name: str, stack: str, w) -> str:
    """Why no tensor x pipeline split up to sizing.MAX_DEVICES holds ``w`` on ``name``: no
    link, more devices than that, or not even the largest split (and what fills it)."""
    from simulator.api import predict_workload, resolve_model, resolve_stack
    from simulator.engine.sizing import MAX_DEVICES, fewest_devices, largest_split

    hw = registry.hardware(name)
    if not hw.interconnect:
        return f"{name}: its spec has no chip-to-chip link, so it cannot be combined with others"
    arch = resolve_model(model)[1]
    unlimited = fewest_devices(arch, hw, resolve_stack(stack), w, max_devices=None)
    if unlimited is not None:
        return (f"{name}: the fewest that hold it are {unlimited.tp * unlimited.pp:,} devices (tp {unlimited.tp} x "
                f"pp {unlimited.pp}), more than the {MAX_DEVICES:,} searched")
    split = largest_split(arch, w)
    m = predict_workload(model, name, stack, split).memory
    why = ("the weights alone exceed it" if m.weights_bytes > m.capacity_bytes
           else "a smaller batch x prompt per pass needs less")
    return (f"{name}: even split tp {split.tp} x pp {split.pp:,} ({split.tp * split.pp:,} devices) each needs "
            f"{format_si(m.total_bytes, 'B')} of {format_si(m.capacity_bytes, 'B')} (weights "
            f"{format_si(m.weights_bytes, 'B')}, KV {format_si(m.kv_cache_bytes, 'B')}, prefill activations "
            f"{format_si(m.activation_bytes, 'B')}): {why}")


def _device_entries(args, name: str, w) -> tuple[list[dict], str | None]:
    """The device's row, and when it does not fit, the fewest devices' row or a note."""
    from simulator.api import predict_workload, resolve_model, resolve_stack
    from simulator.engine.sizing import fewest_devices

    p = predict_workload(args.model, name, args.stack, w)
    entries = [_entry(name, p, name)]
    if p.memory.fits:
        return entries, None
    multi = fewest_devices(resolve_model(args.model)[1], registry.hardware(name), resolve_stack(args.stack), w)
    if multi is None:
        return entries, _why_no_split(args.model, name, args.stack, w)
    mp = predict_workload(args.model, name, args.stack, multi)
    entries.append(_entry(name, mp, f"  {name} x{mp.devices} (tp {multi.tp}, pp {multi.pp})"))
    if not mp.memory.fits:          # the draft model's weights, which the search does not count
        return entries, f"{name}: x{mp.devices} holds the model but not the draft model beside it"
    return entries, None


def _draw(args, w, entries: list[dict], path) -> None:
    """The survey's picture of the fitting row of each device (the device itself, else its
    fewest devices) beside the survey's published points."""
    from simulator.accuracy import survey
    from simulator.report.plots import survey as picture

    points, missing, seen = [], [], set()
    for e in entries:
        if e["hardware"] in seen or not e["fits"]:
            continue
        seen.add(e["hardware"])
        if e["power_w"] is None:
            missing.append(f"{e['hardware']} (no power figures)")
            continue
        points.append({"label": e["label"].strip(), "kind": registry.hardware(e["hardware"]).kind,
                       "power_w": e["power_w"], "tokens_per_s": e["output_tokens_per_s"]})
    missing += [f"{e['hardware']} (no configuration fits)" for e in entries
                if e["hardware"] not in seen and e["label"] == e["hardware"]]
    published = survey.load()
    title = (f"{registry.model(args.model)[0]} on stack {args.stack}: batch {w.batch}, prompt {w.prompt}, output "
             f"{w.output}, weights {w.weight_dtype} (filled)\nhollow: arXiv 2410.04466's published points, "
             f"{published.model}, batch {published.batch} decode, each work's own stack and weights")
    picture.draw(points, published, path, title, missing)


def compare(args) -> str:
    from simulator.report.plots import plot_path

    plot = plot_path(args.plot)
    names = hardware_names(args.hardware)
    w = model_workload(args)
    entries, notes = [], []
    for name in names:
        rows, note = _device_entries(args, name, w)
        entries += rows
        notes += [note] if note else []
    if plot:
        _draw(args, w, entries, plot)
    if args.format == "json":
        return json_text({"model": registry.model(args.model)[0], "stack": args.stack, "workload": w,
                          "rows": entries, "notes": notes})
    draft = f", draft {w.draft_model} x{w.draft_tokens} at {w.acceptance:g}" if w.draft_model else ""
    head = (f"{args.model}, stack {args.stack}: batch {w.batch}, prompt {w.prompt}, output {w.output}, "
            f"weights {w.weight_dtype}{draft}; tokens/J and cost count every device")
    table = render(["hardware", "TTFT", "TPOT", "tokens/s", "power (W)", "tokens/J", "USD per 1M tokens"],
                   [_row(e) for e in entries])
    return "\n\n".join([head, table, *notes] + ([f"wrote {plot}"] if plot else []))


def register(sub) -> None:
    p = sub.add_parser("compare", help="the same workload on several devices, one row each")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--hardware", type=name_list, required=True, help="comma-separated hardware names or paths")
    add_workload_options(p)
    p.add_argument("--plot", metavar="FILE", help="also draw tokens/s against average power (W) with iso-tokens/J "
                                                  "lines, beside the survey's published points (arXiv 2410.04466), "
                                                  "to FILE.png or FILE.svg (matplotlib)")
    p.set_defaults(func=compare)
