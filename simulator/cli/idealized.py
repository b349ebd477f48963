"""`llmsim idealized`: models compared by their idealized runtime (explore/idealized.py):
F(p) at chosen prompt lengths, g, the devices each needs and accelerator-seconds per query."""
from __future__ import annotations

from simulator.cli.workload import name_list, positive_int
from simulator.report.table import render
from simulator.units import format_si


def _prompts(text: str) -> tuple[int, ...]:
    return tuple(positive_int(part) for part in name_list(text))


def cmd_idealized(args) -> str:
    from simulator.explore.idealized import idealize, reference_prompt
    from simulator.report.jsontext import json_text
    from simulator.report.plots import plot_path

    plot = plot_path(args.plot)
    dtypes = {k: v for k, v in (("weight_dtype", args.weight_dtype), ("activation_dtype", args.activation_dtype),
                                ("kv_dtype", args.kv_dtype)) if v is not None}
    rows = [idealize(m, args.hardware, args.stack, args.prompts, args.output, args.batch, **dtypes)
            for m in args.models]
    if plot:
        from simulator.report.plots import idealized as picture
        picture.draw(rows, plot, f"{args.hardware}, stack {args.stack}")
    if args.format == "json":
        return json_text({"hardware": args.hardware, "stack": args.stack, "batch": args.batch, "output": args.output,
                          "reference_prompt": reference_prompt(args.prompts),
                          "models": [{**r.__dict__, "devices": r.devices, "accelerator_s": r.accelerator_s}
                                     for r in rows]})
    p_ref = reference_prompt(args.prompts)
    i_ref = args.prompts.index(p_ref)

    def cells(r):
        if r.runtime_s is None:
            return [r.model, f"{r.params / 1e9:.3g} B", "does not fit"] + [""] * (len(args.prompts) + 3)
        return ([r.model, f"{r.params / 1e9:.3g} B", f"{r.devices} (tp {r.tp} x pp {r.pp})"]
                + [format_si(f, "s") for f in r.first_token_s]
                + [format_si(r.per_token_s, "s"), format_si(r.runtime_s[i_ref], "s"),
                   f"{r.accelerator_s[i_ref]:.4g}"])
    table = render(["model", "params", "devices", *(f"F({p})" for p in args.prompts), "g",
                    f"T({p_ref}, {args.output})", "device-s / query"], [cells(r) for r in rows],
                   align_right=set(range(1, 7 + len(args.prompts))))
    head = (f"idealized runtime on {args.hardware}, stack {args.stack}, batch {args.batch}: "
            f"T(p, o) = F(p) + g (o - 1), each model on the fewest devices that hold it")
    return f"{head}\n\n{table}" + (f"\n\nwrote {plot}" if plot else "")


def register(sub) -> None:
    p = sub.add_parser("idealized", help="models compared by idealized runtime: F(p), g, devices, "
                                         "accelerator-seconds per query")
    p.add_argument("--models", type=name_list, required=True, help="comma-separated models (names or paths)")
    p.add_argument("--hardware", default="h100-sxm", help="the one device kind every model runs on")
    p.add_argument("--stack", default="ideal", help="ideal (speed of light, default) or any stack")
    p.add_argument("--prompts", type=_prompts, default=(128, 512, 2048), help="prompt lengths p for F(p) "
                                                                            "(default 128,512,2048)")
    p.add_argument("--output", type=positive_int, default=128, help="output tokens o of T(p, o) (default 128)")
    p.add_argument("--batch", type=positive_int, default=1, help="sequences per pass (default 1)")
    p.add_argument("--weight-dtype")
    p.add_argument("--activation-dtype")
    p.add_argument("--kv-dtype")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--plot", metavar="FILE", help="also draw runtime per query against model size to FILE.png/.svg")
    p.set_defaults(func=cmd_idealized)
