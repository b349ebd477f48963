"""plotly.js, from the installed ``plotly`` Python package (the ``report`` extra): the one
chart library the report inlines and the web app serves. Imported only when a page is
built, so the rest of the package never needs it."""
from __future__ import annotations

import functools
import importlib.util

from simulator.errors import SimulatorError

MISSING = "the HTML report and the web app need plotly: pip install 'llmsim[report]'"


def require() -> None:
    """Raise a one-line SimulatorError when plotly is not installed (checked before any work)."""
    if importlib.util.find_spec("plotly") is None:
        raise SimulatorError(MISSING)


@functools.lru_cache(maxsize=1)
def source() -> str:
    """The minified plotly.js bundle shipped inside the plotly package (about 4.8 MB)."""
    require()
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def version() -> str:
    require()
    import plotly

    return plotly.__version__
