"""`llmsim plot validation|breakdown`: pictures written to a PNG; returns the path to print."""
from __future__ import annotations

from pathlib import Path


def cmd_plot(args) -> str:
    from simulator.report import plots

    out = Path(args.out)
    if args.what == "validation":
        from simulator.validate import errors, load_points

        points = load_points()
        plots.validation_scatter(points, errors(points, args.stack), out)
    else:
        import simulator

        p = simulator.predict(model=args.model, hardware=args.hardware, stack=args.stack, batch=args.batch,
                              prompt=args.prompt, output=args.output)
        if not p.breakdown:
            return p.note
        plots.breakdown_bars(p, out)
    return f"wrote {out}"


def register(sub) -> None:
    p = sub.add_parser("plot", help="pictures: predicted vs measured, or where a scenario's time goes")
    p.add_argument("what", choices=["validation", "breakdown"])
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--stack", default="pytorch-ref")
    p.add_argument("--model", default="llama-3.1-8b")
    p.add_argument("--hardware", default="h100-sxm")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt", type=int, default=1024)
    p.add_argument("--output", type=int, default=128)
    p.set_defaults(func=cmd_plot)
