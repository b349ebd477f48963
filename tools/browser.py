"""Headless Chromium (the distribution's package) driven by Playwright, for the browser
tests and the README's screenshot of the HTML report. ``missing()`` says why none can be
used here (None when one can); ``chromium()`` opens a fresh profile that makes no
connection of its own (this machine's network refuses them)."""
from __future__ import annotations

import contextlib
import importlib.util
import shutil
import tempfile

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def executable() -> str | None:
    """The first Chromium found (Debian's package installs /usr/bin/chromium)."""
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def missing() -> str | None:
    """Why no browser can be driven here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright; it is in the test extra)"
    if executable() is None:
        return "no Chromium installed (apt-get install chromium; .ci/run installs it)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900):
    """A Playwright browser context on the system Chromium, with a fresh profile folder."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="llmsim-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=executable(), args=list(FLAGS),
                                                        headless=True, viewport={"width": width, "height": height})
        try:
            yield context
        finally:
            context.close()
