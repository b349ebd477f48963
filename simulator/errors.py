"""Errors raised by the library. Only ``simulator.cli.main`` prints them and sets exit codes."""
from __future__ import annotations


class SimulatorError(Exception):
    """Base class of every error the CLI turns into one line and exit code 2."""


class SpecError(SimulatorError):
    """A spec file (or spec-like input) is malformed.

    ``path`` names the file (or ``<arguments>``), ``field`` the dotted field path
    and ``message`` what was expected.
    """

    def __init__(self, path: str, field: str, message: str):
        self.path = str(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {message}")


class UnknownNameError(SimulatorError):
    """A model, hardware or stack name that is not in the registry."""

    def __init__(self, what: str, name: str, suggestions: list[str]):
        self.what = what
        self.name = name
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown {what} '{name}'{hint}")


class WorkloadError(SimulatorError):
    """An impossible workload (zero batch, negative length, parallelism that does not divide)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"<arguments>: {field}: {message}")
