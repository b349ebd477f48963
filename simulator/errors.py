"""Errors raised by the library. Only ``simulator.cli.main`` prints them and sets exit codes.

A bad input is a structured error: ``path`` (the file, or ``<arguments>`` for command-line
values), ``field`` (the dotted field path, "" for the file as a whole) and ``message`` (what
was expected). ``str(err)`` is the one line the CLI prints: ``PATH: FIELD: MESSAGE``. Callers
read the attributes; nobody needs to cut the string apart.
"""
from __future__ import annotations

ARGUMENTS = "<arguments>"


class SimulatorError(Exception):
    """Base class of every error the CLI turns into one line and exit code 2."""


class FieldError(SimulatorError):
    """A bad value at (``path``, ``field``); ``message`` says what was expected."""

    def __init__(self, path: str, field: str, message: str):
        self.path = str(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else self.path
        line = f"{where}: {message}"
        super().__init__(line.replace("\r", "\\r").replace("\n", "\\n"))   # one line, whatever came

    @property
    def expected(self) -> str:
        """What was expected (the message): the third part of the one-line form."""
        return self.message

    def __reduce__(self):            # picklable (Dask workers send errors back) with its fields
        return (_rebuild, (type(self), self.path, self.field, self.message))


def _rebuild(cls, path: str, field: str, message: str):
    err = FieldError.__new__(cls)
    FieldError.__init__(err, path, field, message)
    return err


class SpecError(FieldError):
    """A spec file (or spec-like input) is malformed.

    ``path`` names the file (or ``<arguments>``), ``field`` the dotted field path
    and ``message`` what was expected.
    """


class UnknownNameError(SimulatorError):
    """A model, hardware or stack name that is not in the registry."""

    def __init__(self, what: str, name: str, suggestions: list[str]):
        self.what = what
        self.name = name
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        quoted = name if len(name) <= 80 else f"{name[:40]}...({len(name):,} characters)"
        super().__init__(f"unknown {what} '{quoted}'{hint}")


class WorkloadError(FieldError):
    """An impossible workload (zero batch, negative length, parallelism that does not divide).

    ``WorkloadError(field, message)``: the path is ``<arguments>`` unless given."""

    def __init__(self, field: str, message: str, path: str = ARGUMENTS):
        super().__init__(path, field, message)
