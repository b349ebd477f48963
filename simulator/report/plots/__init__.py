"""Pictures (matplotlib, the `plot` extra, imported only when a picture is drawn; the Agg
backend, so no display is needed). Each drawing function writes a PNG or SVG, chosen by
the file's extension, and returns the matplotlib Figure, so what was drawn can be read back.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from simulator.engine.kernels.roofline import BOUND_NAMES
from simulator.errors import SimulatorError, SpecError
from simulator.report.output import writable_file, written_whole

FORMATS = (".png", ".svg")
DPI = 100
BOUND_COLOURS = dict(zip(BOUND_NAMES, ("#d95f02", "#1b9e77", "#7570b3")))     # compute, memory, overhead
_MISSING = "plots need matplotlib: pip install 'llmsim[plot]'"


def plot_path(text: str | None, option: str = "--plot") -> Path | None:
    """The picture file an option names (None when not given), checked before any work is
    done: it ends .png or .svg, its folder exists and takes a new file (report/output.py),
    and matplotlib is installed."""
    if text is None:
        return None
    if Path(text).suffix.lower() not in FORMATS:
        raise SpecError("<arguments>", option, f"expected a picture file ending .png or .svg, got '{text}'")
    path = writable_file(text, option, FORMATS)
    if importlib.util.find_spec("matplotlib") is None:
        raise SimulatorError(_MISSING)
    return path


def pyplot():
    """matplotlib.pyplot on the Agg backend; a one-line SimulatorError when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise SimulatorError(_MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plain_log_ticks(axis, span: float) -> None:
    """Ticks of a log axis covering ``span`` (max / min) at 1, 2, 5 x 10^k (at 10^k over
    more than three decades), written as plain numbers, minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if span < 1e3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def save(fig, path: Path):
    """Write ``fig`` (format from the extension) whole or not at all, release it from
    pyplot, return it."""
    path = Path(path)
    try:
        with written_whole(path) as partial:
            fig.savefig(partial, dpi=DPI, format=path.suffix.lower().lstrip("."))
    except OSError as exc:
        raise SpecError("<arguments>", "--plot", f"cannot write '{path}' ({exc.strerror or exc})") from None
    finally:
        pyplot().close(fig)
    return fig
