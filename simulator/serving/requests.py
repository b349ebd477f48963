"""The requests a serving run answers: arrival times (s) and prompt and output lengths
(tokens), generated from a seed or read from a trace file.

Arrivals at rate R (requests/s): Poisson (exponential gaps of mean 1/R), or gamma gaps of
mean 1/R and coefficient of variation cv (shape k = 1 / cv^2, scale 1 / (R k); cv = 1 is
Poisson); the first request arrives at its first gap. Lengths: fixed, ``uniform:LO:HI``
(integers, both ends included), ``lognormal:MEAN:SD`` (of the lengths themselves:
sigma^2 = ln(1 + SD^2 / MEAN^2), mu = ln MEAN - sigma^2 / 2, rounded, at least 1) or
``file:PATH`` (whole numbers, one a line, drawn with replacement). One numpy PCG64 generator
seeded with ``seed`` draws, in order, the gaps, the prompts, the outputs: the same seed gives
the same bits.

A trace is JSONL (one object a line) or CSV (a header row) with ``arrival_s``, ``prompt``,
``output`` and optional ``prefix_id``; arrivals non-negative and non-decreasing, lengths
whole numbers >= 1. A request whose prefix_id appeared on an earlier line finds its prefix
cached (with a prefix-hit fraction); without the column every request may.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np

from simulator.errors import ARGUMENTS, SpecError

MAX_TRACE_BYTES = 256 * 2 ** 20
MAX_LENGTH = 2 ** 40


@dataclasses.dataclass(frozen=True)
class Requests:
    """Arrays of one run's requests, sorted by arrival: arrival_s (s), prompt and output
    (tokens), prefix (1: its prefix may be cached)."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    prefix: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def subset(self, keep: np.ndarray) -> "Requests":
        return Requests(self.arrival_s[keep], self.prompt[keep], self.output[keep], self.prefix[keep])


@dataclasses.dataclass(frozen=True)
class Lengths:
    """A length distribution: kind fixed/uniform/lognormal/file and its numbers."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    samples: tuple[int, ...] = ()

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed":
            return np.full(n, int(self.a), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(int(self.a), int(self.b), size=n, endpoint=True, dtype=np.int64)
        if self.kind == "lognormal":
            sigma2 = math.log1p((self.b / self.a) ** 2)
            x = rng.lognormal(math.log(self.a) - sigma2 / 2, math.sqrt(sigma2), size=n)
            return np.clip(np.rint(x), 1, MAX_LENGTH).astype(np.int64)
        return np.asarray(self.samples, dtype=np.int64)[rng.integers(0, len(self.samples), size=n)]


def _positive_whole(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SpecError(ARGUMENTS, option, f"expected a whole number >= 1, got {text[:40]!r}") from None
    if not 1 <= value <= MAX_LENGTH:
        raise SpecError(ARGUMENTS, option, f"expected a whole number from 1 to 2^40, got {value}")
    return value


def _positive(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_LENGTH):
        raise SpecError(ARGUMENTS, option, f"expected a number > 0, got {text[:40]!r}")
    return value


def parse_lengths(text: str, option: str) -> Lengths:
    """A length option: a whole number, uniform:LO:HI, lognormal:MEAN:SD or file:PATH."""
    kind, _, rest = text.partition(":")
    if not rest:
        return Lengths("fixed", _positive_whole(text, option))
    if kind == "uniform":
        lo, _, hi = rest.partition(":")
        a, b = _positive_whole(lo, option), _positive_whole(hi, option)
        if b < a:
            raise SpecError(ARGUMENTS, option, f"expected uniform:LO:HI with LO <= HI, got {text!r}")
        return Lengths("uniform", a, b)
    if kind == "lognormal":
        mean, _, sd = rest.partition(":")
        return Lengths("lognormal", _positive(mean, option), _positive(sd, option))
    if kind == "file":
        return Lengths("file", samples=_samples(rest, option))
    raise SpecError(ARGUMENTS, option, f"expected a whole number, uniform:LO:HI, lognormal:MEAN:SD or "
                                       f"file:PATH, got {text[:60]!r}")


def _read_text(path: str) -> str:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_TRACE_BYTES:
            raise SpecError(path, "", f"expected a file of at most {MAX_TRACE_BYTES // 2 ** 20} MiB")
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, "", f"cannot read it ({getattr(exc, 'strerror', None) or type(exc).__name__})") \
            from None


def _samples(path: str, option: str) -> tuple[int, ...]:
    values = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            values.append(_whole(line.strip(), path, f"line {number}"))
    if not values:
        raise SpecError(path, "", f"expected whole numbers, one a line, for {option}; the file has none")
    return tuple(values)


def _whole(value, path: str, field: str) -> int:
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise SpecError(path, field, f"expected a whole number >= 1, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value != int(value) \
            or not 1 <= value <= MAX_LENGTH:
        raise SpecError(path, field, f"expected a whole number from 1 to 2^40, got {str(value)[:40]}")
    return int(value)


def _time(value, path: str, field: str) -> float:
    try:
        t = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t >= 0):
        raise SpecError(path, field, f"expected a time in seconds >= 0, got {str(value)[:40]}")
    return t


def _rows(path: str, text: str):
    """(line number, dict) of each record of a JSONL or CSV trace."""
    if path.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            yield reader.line_num, row
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise SpecError(path, f"line {number}", "expected a JSON object") from None
        if not isinstance(row, dict):
            raise SpecError(path, f"line {number}", "expected a JSON object")
        yield number, row


def read_trace(path: str) -> Requests:
    """The requests of a trace file (module docstring); a bad line raises SpecError naming it."""
    text = _read_text(path)
    arrival, prompt, output, prefix = [], [], [], []
    seen: set[str] = set()
    last = 0.0
    for number, row in _rows(path, text):
        for column in ("arrival_s", "prompt", "output"):
            if row.get(column) in (None, ""):
                raise SpecError(path, f"line {number}", f"expected a column '{column}'")
        t = _time(row["arrival_s"], path, f"line {number}: arrival_s")
        if t < last:
            raise SpecError(path, f"line {number}: arrival_s",
                            f"expected arrivals in order: {t:g} s comes after {last:g} s")
        last = t
        arrival.append(t)
        prompt.append(_whole(row["prompt"], path, f"line {number}: prompt"))
        output.append(_whole(row["output"], path, f"line {number}: output"))
        pid = row.get("prefix_id")
        if pid in (None, ""):
            prefix.append(1)
        else:
            prefix.append(1 if str(pid) in seen else 0)
            seen.add(str(pid))
    if not arrival:
        raise SpecError(path, "", "expected at least one request (arrival_s, prompt, output)")
    return Requests(np.array(arrival, dtype=np.float64), np.array(prompt, dtype=np.int64),
                    np.array(output, dtype=np.int64), np.array(prefix, dtype=np.int64))


def generate(n: int, rate_per_s: float | None, prompt: Lengths, output: Lengths, seed: int,
             cv: float = 1.0) -> Requests:
    """n requests: arrivals at ``rate_per_s`` (None: all at 0 s, for a closed loop that sets
    them as it goes), lengths drawn from the distributions (module docstring)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    if rate_per_s is None:
        arrival = np.zeros(n)
    elif cv == 1.0:
        arrival = np.cumsum(rng.exponential(1.0 / rate_per_s, size=n))
    else:
        shape = 1.0 / cv ** 2
        arrival = np.cumsum(rng.gamma(shape, 1.0 / (rate_per_s * shape), size=n))
    return Requests(arrival, prompt.draw(rng, n), output.draw(rng, n), np.ones(n, dtype=np.int64))
