"""Design-space sweeps: ``llmsim sweep GRID.yaml [--out FILE.csv|FILE.parquet]
[--workers N | --scheduler ADDRESS]``.

A grid file (explore/grid.py) crosses models x hardware (x what-if factors, whatif.py)
x stacks x weight/activation/KV precisions x tp x pp x dp x ep x microbatches x draft
model (tokens, acceptance), the *configurations*, with batch x prompt x output, the
*scenarios*. Each configuration is prepared once (lowered, bound, packed); all its
scenarios then go through one numba kernel (engine/batch.py), with the semantics of
simulator.predict. Rows go out in chunks, flushed as they come (Ctrl-C keeps
what was written), in grid order: configurations in the order above, then batch, prompt,
output (output fastest). Configurations that cannot run (a tp that does not divide the
heads, parallelism on a device without a link) are skipped and listed in the summary.

Each row (writers.COLUMNS): the inputs (model, hardware, stack, precisions, tp, pp, dp,
ep, microbatches, the draft model, tokens and acceptance, devices = tp x pp x dp x ep, the
what-if factors and the facts they produce: main-memory bandwidth, capacity, other
on-chip SRAM, peak at the activation dtype, TDP), then ttft_s, tpot_s, e2e_s,
output_tokens_per_s, energy_j, tokens_per_j, kv_cache_bytes, memory_total_bytes
(per device) against memory_capacity_bytes, fits, and the cost:

    usd_per_hour                  per device: the spec's hourly (cloud on-demand) price,
                                  else its purchase price amortised over 3 years of 24/7
                                  use (26,280 h); power, hosting and interest excluded
    usd_per_million_output_tokens devices x usd_per_hour x e2e_s / 3600 / (B N) x 1e6:
                                  the devices' time for one request of B sequences, per
                                  output token, at full utilisation

`nan` where the device has no price, or no power figures (energy), or the scenario
does not fit (times). What-if devices keep the base device's price.

``--workers N`` starts a local Dask cluster of N worker processes; ``--scheduler
ADDRESS`` uses a running one (workers need llmsim installed and the grid's spec files at
the same paths). Tasks are chunks of scenarios; the client writes their rows in order, so
the output is identical to a single-process run.

A local sweep loads its cached kernels without numba's compiler set-up (startup.py) and
writes one chunk behind the evaluation (a worker thread); a Grid already prepared
(prepare_grid: what cli/sweep.py keeps on disk) runs without the spec and graph code.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simulator.engine import batch as kernel
from simulator.engine.kernels import interpreted, scenario as sc
from simulator.errors import SimulatorError
from simulator.explore.axes import Grid, Named, slice_axes
from simulator.explore.cost import usd_per_million
from simulator.explore.startup import load_light
from simulator.explore.writers import Rows, SCENARIO_COLUMNS, nan_if_none, open_writer

if TYPE_CHECKING:
    from simulator.explore.grid import Group

CHUNK_SCENARIOS = 65_536
_FROM_KERNEL = {"ttft_s": sc.TTFT_S, "tpot_s": sc.TPOT_S, "e2e_s": sc.E2E_S, "output_tokens_per_s": sc.TOKENS_PER_S,
                "energy_j": sc.ENERGY_J, "tokens_per_j": sc.TOKENS_PER_J, "kv_cache_bytes": sc.KV_CACHE_BYTES,
                "memory_total_bytes": sc.TOTAL_BYTES, "fits": sc.FITS}


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A configuration that cannot run, and why."""

    group: Group | Named
    reason: str


def configuration(group: Group) -> tuple[kernel.Packed, dict]:
    """(packed arrays, constant row fields) of one configuration; raises SimulatorError
    when it cannot run."""
    from simulator.api import prepare                   # the specs and graph code: only where a
    from simulator.explore import whatif                # configuration is prepared (not from the
    from simulator.explore.cost import usd_per_hour     # disk cache, cli/sweep.py)
    from simulator.specs import registry
    from simulator.specs.quant import parse_weight_format

    hw = whatif.scale(registry.hardware(group.hardware), group.factors)
    g, layout = group, group.layout
    args = (hw, g.stack, parse_weight_format(g.weight_dtype), g.activation_dtype, g.kv_dtype, layout.tp)
    prep = prepare(g.model, *args, ep=layout.ep)
    draft = prepare(g.draft_model, *args) if g.draft_model else None
    packed = prep.packed(layout, draft)
    f = group.factors
    constants = dict(
        model=prep.model_name, hardware=hw.name, stack=prep.stack.name, weight_dtype=group.weight_dtype,
        activation_dtype=group.activation_dtype.value, kv_dtype=group.kv_dtype.value, tp=layout.tp,
        pp=layout.pp, dp=layout.dp, ep=layout.ep, microbatches=layout.microbatches,
        draft_model=draft.model_name if draft else "", draft_tokens=layout.draft_tokens, acceptance=layout.acceptance,
        devices=layout.devices, bandwidth_factor=f.bandwidth, capacity_factor=f.capacity,
        sram_factor=f.sram, peak_factor=f.peak, power_factor=f.power,
        **whatif.facts(hw, group.activation_dtype),
        usd_per_hour=nan_if_none(usd_per_hour(hw)),
        weights_bytes=float(packed.params[sc.P_WEIGHT_BYTES]))
    return packed, constants


@functools.lru_cache(maxsize=256)
def configured(group: Group) -> tuple[kernel.Packed, dict] | Skipped:
    """configuration(group), cached, or Skipped when it cannot run."""
    try:
        return configuration(group)
    except SimulatorError as err:
        return Skipped(group, str(err))


def rows_of(packed: kernel.Packed, constants: dict, b, s, n, parallel: bool) -> Rows:
    """Evaluate scenarios (B, S, N) of one configuration into Rows."""
    out = kernel.evaluate_many(packed, b, s, n, parallel)
    values = np.empty((len(SCENARIO_COLUMNS), len(b)))
    names = list(SCENARIO_COLUMNS)
    values[0], values[1], values[2] = b, s, n
    for name, row in _FROM_KERNEL.items():
        values[names.index(name)] = out[row]
    values[-1] = usd_per_million(constants["usd_per_hour"], constants["devices"], b * n / out[sc.E2E_S])
    return Rows(constants, values)


def _configured(group) -> tuple[kernel.Packed, dict] | Skipped:
    """configured(group) of a Group; a configuration already prepared (what configured gave:
    prepare_grid's groups) as it is."""
    return group if isinstance(group, (tuple, Skipped)) else configured(group)


def _prepared(group) -> tuple[kernel.Packed, dict] | Skipped:
    done = _configured(group)
    if isinstance(done, Skipped) and not isinstance(done.group, Named):
        g = done.group
        return Skipped(Named(g.model, g.hardware, g.stack, g.weight_dtype, g.layout), done.reason)
    return done


def prepare_grid(grid: Grid | str | Path) -> Grid:
    """The grid (or grid file) with each configuration prepared: groups are what
    configured() gives for each, in order (one that cannot run named by axes.Named)."""
    if not isinstance(grid, Grid):
        from simulator.explore.grid import load_grid
        grid = load_grid(Path(grid))
    return dataclasses.replace(grid, groups=tuple(_prepared(g) for g in grid.groups))


def evaluate_piece(group: Group, axes: tuple, start: int, stop: int, parallel: bool = False) -> Rows | Skipped:
    """Rows of the scenarios start..stop-1 of a configuration (a Dask task's unit of work);
    ``group`` a Group or its prepared configuration."""
    done = _configured(group)
    if isinstance(done, Skipped):
        return done
    packed, constants = done
    b, s, n = slice_axes(*axes, start, stop)
    return rows_of(packed, constants, b, s, n, parallel)


def evaluate_task(pieces: list, axes: tuple, parallel: bool = False) -> list[Rows | Skipped]:
    return [evaluate_piece(group, axes, start, stop, parallel) for group, start, stop in pieces]


@dataclasses.dataclass
class SweepSummary:
    scenarios: int = 0
    written: int = 0
    fitting: int = 0
    configurations: int = 0
    skipped: list = dataclasses.field(default_factory=list)    # [(Group, reason)]
    seconds: float = 0.0             # the sweep's own time: reading the grid, evaluating, writing
    startup_s: float = 0.0           # loading (or compiling) the kernels first, not in ``seconds``

    def text(self, target: str) -> str:
        rate = self.written / self.seconds if self.seconds else 0.0
        startup = f" (+ {self.startup_s:.2f} s loading the kernels)" if self.startup_s >= 0.01 else ""
        lines = [f"sweep: {self.written:,} scenarios ({self.configurations:,} configurations) in "
                 f"{self.seconds:.2f} s = {rate:,.0f} scenarios/s{startup}; {self.fitting:,} fit; wrote {target}"]
        if self.skipped:
            shown = "; ".join(f"{g.model} on {g.hardware} tp={g.layout.tp} pp={g.layout.pp}: {why}" for g, why in self.skipped[:3])
            more = f" (and {len(self.skipped) - 3} more)" if len(self.skipped) > 3 else ""
            lines.append(f"skipped {len(self.skipped)} configurations that cannot run: {shown}{more}")
        return "\n".join(lines)


def _tasks(grid: Grid, chunk: int) -> Iterator[list]:
    """Lists of (group, start, stop) pieces of about ``chunk`` scenarios, in grid order."""
    task, size = [], 0
    per_group = grid.scenarios_per_group
    for group in grid.groups:
        for start in range(0, per_group, chunk):
            stop = min(per_group, start + chunk)
            task.append((group, start, stop))
            size += stop - start
            if size >= chunk:
                yield task
                task, size = [], 0
    if task:
        yield task


def _skip(summary: SweepSummary, skipped: Skipped, per_group: int) -> None:
    """Count a configuration that cannot run once (its pieces may come from several tasks)."""
    if all(group != skipped.group for group, _ in summary.skipped):
        summary.skipped.append((skipped.group, skipped.reason))
        summary.configurations -= 1
        summary.scenarios -= per_group


class _WrittenBehind:
    """A writer whose write() runs on a worker thread, one chunk behind: the next chunk is
    evaluated while the last is encoded and written (pyarrow and file writes release the
    GIL). At most one chunk waits; an error in writing is raised by the next write() or by
    close(), which finishes the chunk in flight (an interrupted sweep keeps it)."""

    def __init__(self, writer):
        from concurrent.futures import ThreadPoolExecutor

        self._writer, self._pending = writer, None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="llmsim-writer")

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def write(self, rows: Rows) -> None:
        self._wait()
        self._pending = self._pool.submit(self._writer.write, rows)

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
            self._writer.close()


def _start_kernels(grid: Grid, csv: bool) -> float:
    """Seconds to load (a fresh install: compile) the kernels a local sweep calls, on one
    scenario of its first configuration that runs (and one CSV row), so that a sweep's rate
    is its own and not numba's start-up (batch.evaluate_many gives one scenario the layout of
    many: the same kernel). Cached kernels load without numba's compiler set-up (startup.py)."""
    started = time.perf_counter()
    for group in grid.groups:
        done = _configured(group)
        if not isinstance(done, Skipped):
            prepared_s = time.perf_counter() - started          # preparing is the sweep's work
            load_light(kernel.parallel_kernel)
            if csv:
                from simulator.explore import csvfmt
                load_light(csvfmt.format_into)
            b, s, n = slice_axes(grid.batch, grid.prompt, grid.output, 0, 1)
            kernel.evaluate_many(done[0], b, s, n, True)
            if csv:
                csvfmt.rows_csv("", np.zeros((len(SCENARIO_COLUMNS), 1)), np.zeros(len(SCENARIO_COLUMNS), dtype=np.int64))
            return time.perf_counter() - started - prepared_s
    return 0.0


def sweep(grid, out, chunk_scenarios: int = CHUNK_SCENARIOS, scheduler: str | None = None,
          workers: int | None = None, progress: Callable[[int, int], None] | None = None,
          observe: Callable[[Rows], None] | None = None) -> SweepSummary:
    """Run a grid (a Grid, prepared or not: prepare_grid, or a grid file path) and write its
    rows to ``out`` (a path: .csv, or .parquet with pyarrow; or a binary file object, CSV).
    Locally unless ``scheduler`` or ``workers`` is given (Dask). ``progress(done, total)``
    is called after each chunk, ``observe(rows)`` with each chunk of rows written."""
    interpreted.skip_blas_probe()           # a cached kernel's environment imports numba.np.arraymath
    started = time.perf_counter()
    if not isinstance(grid, Grid):
        from simulator.explore.grid import load_grid
        grid = load_grid(Path(grid))
    summary = SweepSummary(scenarios=grid.scenarios, configurations=len(grid.groups))
    if scheduler is None and workers is None:
        summary.startup_s = _start_kernels(grid, not str(out).lower().endswith(".parquet"))
    axes = (grid.batch, grid.prompt, grid.output)
    tasks = _tasks(grid, chunk_scenarios)
    if scheduler is None and workers is None:
        results = (evaluate_task(task, axes, parallel=True) for task in tasks)
    else:
        from simulator.explore.cluster import run_ordered
        results = run_ordered(evaluate_task, ((task, axes) for task in tasks), scheduler, workers)
    writer = _WrittenBehind(open_writer(out))
    try:
        for chunk in results:
            for rows in chunk:
                if isinstance(rows, Skipped):
                    _skip(summary, rows, grid.scenarios_per_group)
                    continue
                writer.write(rows)
                if observe:
                    observe(rows)
                summary.written += len(rows)
                summary.fitting += int(rows.values[list(SCENARIO_COLUMNS).index("fits")].sum())
            if progress:
                progress(summary.written, summary.scenarios)
    finally:
        results.close()
        writer.close()
        summary.seconds = time.perf_counter() - started - summary.startup_s
    return summary
