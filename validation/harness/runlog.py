"""The harness run's clock and log: the budget counts from this module's import (measure.py
imports it first), and every line goes to stdout and, once opened, the run's log file."""

from __future__ import annotations

import time

T0 = time.perf_counter()


class Logger:
    def __init__(self):
        self.f = None
        self.buf = []

    def open(self, path):
        self.f = open(path, "a")
        for line in self.buf:
            self.f.write(line + "\n")
        self.f.flush()

    def __call__(self, msg=""):
        line = f"[{time.perf_counter() - T0:7.1f}s] {msg}"
        print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()
        else:
            self.buf.append(line)


log = Logger()
