"""``llmsim sweep``: argparse registration and handler. Rows stream out in chunks as they
are evaluated, to stdout or to ``--out FILE`` (written to a hidden file beside it and renamed
into place when the sweep ends, so a failed sweep leaves no truncated file; on Ctrl-C the
rows written so far are kept). Configurations that cannot run are named on stderr, each with
why; the progress bar (only on a terminal) and the note of an interrupted sweep go to stderr
too. The handler returns the text cli/main.py prints.

A process of its own (``llmsim sweep``) running locally keeps the grid's prepared
configurations on disk (simulator/cache.py, as ``llmsim predict`` does), so the next one
reads no YAML and builds no graph; it also runs Python's cyclic garbage collector less often.
Where its time goes (the 1,048,576-scenario example, warm): imports ~0.3-0.4 s (numba alone
~0.25 s), loading the cached kernel ~0.07 s, then the kernel and the writer side by side."""
from __future__ import annotations

import atexit
import gc
import sys
import time

from simulator.cli.workload import at_most, positive_int

OUT_FORMATS = (".csv", ".parquet")
MAX_WORKERS = 1024          # --workers: local worker processes
MAX_KEPT_CONFIGURATIONS = 256   # a grid of at most this many is kept prepared on disk (~10 kB each)
GC_THRESHOLD = 100_000          # allocations between the collector's youngest-generation runs (Python's: 700)


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


def configuration_label(constants: dict) -> str:
    """A sweep row's configuration in a few words: model, device (x count), weights, what-if factors."""
    devices = f" x{constants['devices']}" if constants["devices"] > 1 else ""
    factors = "".join(f" {name} x{constants[name + '_factor']:g}" for name in ("bandwidth", "capacity", "sram", "peak",
                                                                             "power")
                      if constants[name + "_factor"] != 1)
    return f"{constants['model']} {constants['hardware']}{devices} {constants['weight_dtype']}{factors}"


def skipped_lines(summary) -> list[str]:
    """One line per configuration that could not run: which, and why."""
    return [f"llmsim: skipped {g.model} on {g.hardware} ({g.stack}, weights {g.weight_dtype}, tp {g.layout.tp}, pp {g.layout.pp}): "
            f"{why}" for g, why in summary.skipped]


class _TextSink:
    """A binary writer over a text stream without a buffer (the CSV is ASCII)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode())

    def flush(self) -> None:
        self._stream.flush()


def _stdout_bytes():
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else _TextSink(sys.stdout)


def _prepared(path: str):
    """The grid file with its configurations prepared (explore.sweep.prepare_grid), or only
    read when it has more than MAX_KEPT_CONFIGURATIONS."""
    from simulator.explore.grid import load_grid
    from simulator.explore.sweep import prepare_grid

    grid = load_grid(path)
    return prepare_grid(grid) if len(grid.groups) <= MAX_KEPT_CONFIGURATIONS else grid


def _grid(args):
    """What the sweep runs: the grid file; in a process of its own (``disk_cache``) running
    locally, the grid prepared and kept on disk for the next one (simulator/cache.py), as
    predict's configuration is: a warm process reads no YAML and builds no graph."""
    if not getattr(args, "disk_cache", False) or args.scheduler or args.workers:
        return args.grid
    from simulator import cache

    return cache.cached(("sweep", args.grid, MAX_KEPT_CONFIGURATIONS), lambda: _prepared(args.grid))


def _run(args, target, progress: Progress, front, plot):
    from simulator.explore.sweep import sweep

    observe = (lambda rows: front.add(rows.values, configuration_label(rows.constants))) if plot else None
    return sweep(_grid(args), target, chunk_scenarios=args.chunk, scheduler=args.scheduler, workers=args.workers,
                 progress=progress, observe=observe)


def _few_collections() -> None:
    """For a process of its own: the cyclic garbage collector runs ~100x less often (numba's
    imports alone allocate enough objects for dozens of full collections: ~0.05-0.1 s here),
    and what exists at its end is frozen, so the interpreter's last collection does not walk
    it (~0.05 s). Garbage is still collected, less often."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    atexit.register(gc.freeze)


def cmd_sweep(args) -> str:
    from simulator.report.output import writable_file, written_whole

    if getattr(args, "disk_cache", False):
        _few_collections()
    plot = None
    if args.plot:
        from simulator.report.plots import plot_path
        plot = plot_path(args.plot)
    out = writable_file(args.out, "--out", OUT_FORMATS) if args.out else None
    front = None
    if plot:
        from simulator.explore.front import FrontSample
        front = FrontSample()
    progress = Progress()
    if out is None:
        summary = _run(args, _stdout_bytes(), progress, front, plot)
    else:
        with written_whole(out, keep_on_interrupt=True) as partial:
            try:
                summary = _run(args, partial, progress, front, plot)
            except KeyboardInterrupt:
                progress.note(f"llmsim: interrupted; the rows written so far are in {out}")
                raise
    progress.close()
    if plot:
        from simulator.report.plots import front as front_plot
        front_plot.draw(front, plot, f"sweep {args.grid}: {summary.written:,} scenarios", lengths=True)
    if out is not None:
        return summary.text(str(out)) + (f"\nwrote {plot}" if plot else "")
    for line in skipped_lines(summary):
        print(line, file=sys.stderr)
    if plot:
        print(f"llmsim: wrote {plot}", file=sys.stderr)
    return ""


def register(sub) -> None:
    """Add the ``sweep`` subcommand to cli/main.py's subparsers."""
    p = sub.add_parser("sweep", help="evaluate a grid of scenarios (models x hardware x ... x batch x lengths)")
    p.add_argument("grid", help="grid file (YAML; see simulator/explore/grid.py)")
    p.add_argument("--out", help="write rows to FILE.csv (or FILE.parquet, with pyarrow) and a summary to stdout; "
                                    "default: the rows to stdout")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=at_most(MAX_WORKERS),
                       help=f"run on a local Dask cluster of N worker processes (at most {MAX_WORKERS:,})")
    where.add_argument("--scheduler", help="run on the Dask cluster at ADDRESS (tcp://host:8786)")
    p.add_argument("--chunk", type=positive_int, default=65_536, help="scenarios per chunk / task (default: 65536)")
    p.add_argument("--plot", metavar="FILE", help="also draw TPOT against tokens/s, coloured by tokens/J, with the "
                                                  "Pareto front, to FILE.png or FILE.svg (matplotlib)")
    p.set_defaults(func=cmd_sweep)
