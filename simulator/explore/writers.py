"""Sweep rows to CSV or Parquet, one chunk at a time, flushed as they come (an interrupted
sweep keeps every chunk already written: a CSV file of its own gets its last partial block
of 4 KiB when closed, a Parquet file its footer)."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np

from simulator.errors import SpecError
from simulator.explore import csvfmt
from simulator.explore.csvfmt import BOOL, FLOAT, INT, format_float, rows_csv

# columns constant within a configuration, then one per scenario, with their kinds
GROUP_COLUMNS = {
    "model": str, "hardware": str, "stack": str, "weight_dtype": str, "activation_dtype": str, "kv_dtype": str,
    "tp": int, "pp": int, "dp": int, "ep": int, "microbatches": int, "draft_model": str, "draft_tokens": int,
    "acceptance": float, "devices": int,
    "bandwidth_factor": float, "capacity_factor": float, "sram_factor": float, "peak_factor": float,
    "power_factor": float, "memory_bandwidth_bytes_per_s": float, "memory_capacity_bytes": float,
    "sram_bytes": float, "peak_flops": float, "tdp_w": float, "usd_per_hour": float, "weights_bytes": float,
}
SCENARIO_COLUMNS = {
    "batch": INT, "prompt": INT, "output": INT, "ttft_s": FLOAT, "tpot_s": FLOAT, "e2e_s": FLOAT,
    "output_tokens_per_s": FLOAT, "energy_j": FLOAT, "tokens_per_j": FLOAT, "kv_cache_bytes": FLOAT,
    "memory_total_bytes": FLOAT, "fits": BOOL, "usd_per_million_output_tokens": FLOAT,
}
COLUMNS = (*GROUP_COLUMNS, *SCENARIO_COLUMNS)
_KINDS = np.array(list(SCENARIO_COLUMNS.values()), dtype=np.int64)
_NUMPY = {INT: np.int64, FLOAT: np.float64, BOOL: np.bool_}


@dataclasses.dataclass
class Rows:
    """A chunk of rows of one configuration: its constant fields and values [columns, rows]
    of SCENARIO_COLUMNS (all float64; ints and booleans exact)."""

    constants: dict
    values: np.ndarray

    def __len__(self) -> int:
        return self.values.shape[1]


def _field(value) -> str:
    if isinstance(value, float):
        return format_float(value)
    text = str(value)
    return f'"{text}"' if any(c in text for c in ',"\n') else text


class _DirectFile:
    """A new file written without the page cache (O_DIRECT): whole blocks from an aligned
    buffer, the last partial block kept for the next write and written plainly by close().
    On this machine (a VM) putting 256 MB into fresh page-cache pages costs ~0.7 s of
    system time, the disk takes it directly in ~0.15 s. ``open`` gives None where the file
    system refuses O_DIRECT; a file that turns out slower than MIN_BYTES_PER_S this way (a
    spinning or network disk: the writer would wait on it) goes through the page cache from
    then on."""

    ALIGN = 4096                            # bytes: buffer address, offsets and lengths (any block size up to it)
    MIN_BYTES_PER_S = 250e6
    JUDGED_AFTER = 32 << 20                 # bytes written directly before their speed is judged

    def __init__(self, fd: int):
        self._fd, self._direct = fd, True
        self._buffer = np.empty(0, dtype=np.uint8)
        self.tail = 0                       # bytes at the buffer's start not written yet
        self._written, self._seconds = 0, 0.0
        self._failed = False

    @classmethod
    def open(cls, path):
        flag = getattr(os, "O_DIRECT", 0)
        if not flag:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flag, 0o666)
        except OSError:
            return None
        return cls(fd)

    def room(self, size: int) -> np.ndarray:
        """The aligned buffer, with the unwritten tail at its start and at least ``size``
        bytes after it."""
        need = self.tail + size
        if self._buffer.shape[0] < need:
            raw = np.empty(need + 2 * self.ALIGN, dtype=np.uint8)
            start = -raw.ctypes.data % self.ALIGN
            grown = raw[start:start + need + self.ALIGN]
            grown[:self.tail] = self._buffer[:self.tail]
            self._buffer = grown
        return self._buffer

    def commit(self, end: int) -> None:
        """Write the buffer's whole blocks up to ``end`` and keep the rest as the tail."""
        whole = end - end % self.ALIGN if self._direct else end
        started = time.perf_counter()
        self._write_all(memoryview(self._buffer)[:whole])
        if self._direct:
            self._written += whole
            self._seconds += time.perf_counter() - started
            if self._written >= self.JUDGED_AFTER and self._written < self.MIN_BYTES_PER_S * self._seconds:
                self._stop_direct()
        self._buffer[:end - whole] = self._buffer[whole:end]
        self.tail = end - whole

    def _write_all(self, data: memoryview) -> None:
        try:
            while data.nbytes:
                data = data[os.write(self._fd, data):]
        except BaseException:
            self._failed = True             # a part of this write may be in the file: close() adds nothing
            raise

    def _stop_direct(self) -> None:
        import fcntl

        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~getattr(os, "O_DIRECT", 0))
        self._direct = False

    def close(self) -> None:
        try:
            if not self._failed and self.tail:
                if self._direct:
                    self._stop_direct()     # the last partial block: a plain write
                self._write_all(memoryview(self._buffer)[:self.tail])
        finally:
            os.close(self._fd)


class CsvWriter:
    """CSV with a header line; numbers as csvfmt writes them. A file of its own (a path) is
    written without the page cache where the file system allows (_DirectFile), the rows
    formatted straight into its buffer."""

    def __init__(self, target):
        self._own = not hasattr(target, "write")
        self._direct = _DirectFile.open(target) if self._own else None
        self._file = None if self._direct else open(target, "wb") if self._own else target
        self._scratch = np.empty(0, dtype=np.uint8)
        header = (",".join(COLUMNS) + "\n").encode()
        if self._direct:
            end = len(header)
            self._direct.room(end)[:end] = np.frombuffer(header, dtype=np.uint8)
            self._direct.commit(end)
        else:
            self._file.write(header)

    def write(self, rows: Rows) -> None:
        prefix = "".join(_field(rows.constants[c]) + "," for c in GROUP_COLUMNS)
        if self._direct is None:
            self._file.write(rows_csv(prefix, rows.values, _KINDS, as_bytes=not self._own))   # own file: no copy
            self._file.flush()
            return
        head = np.frombuffer(prefix.encode(), dtype=np.uint8)
        columns, n = rows.values.shape
        need = csvfmt.scratch_bytes(len(head), columns, n)
        if self._scratch.shape[0] < need:
            self._scratch = np.empty(need, dtype=np.uint8)
        out = self._direct.room(n * csvfmt.row_bytes_max(len(head), columns))
        values = np.ascontiguousarray(rows.values, dtype=np.float64)
        self._direct.commit(csvfmt.format_into(head, values, _KINDS, self._scratch, out, self._direct.tail))

    def close(self) -> None:
        if self._direct:
            self._direct.close()
        elif self._own:
            self._file.close()


class ParquetWriter:
    """Parquet (pyarrow), one row group per chunk. A configuration's constant columns are
    dictionary arrays of one value (built once, at the longest chunk, and sliced: no copy),
    written as they are: no value is hashed, and none has min/max statistics (they are the
    one value; computing them took most of the writing time). The other non-float columns
    are dictionary-encoded too (a float result rarely repeats: trying its dictionary first
    cost half the writing time). The file's schema is Parquet's own (no Arrow schema kept),
    so a reader sees string, int64, double and bool columns, each required (not null: a
    sweep writes no nulls, NaN is a float; no definition levels to write, ~20% of the time)."""

    def __init__(self, path):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SpecError("<arguments>", "--out", "writing Parquet needs pyarrow (pip install pyarrow); "
                                                    "or write .csv") from None
        self._pa = pa
        types = {str: pa.string(), int: pa.int64(), float: pa.float64(), INT: pa.int64(), FLOAT: pa.float64(),
                 BOOL: pa.bool_()}
        self._types = [types[t] for t in GROUP_COLUMNS.values()]
        fields = [pa.field(c, pa.dictionary(pa.int32(), t), nullable=False)
                  for c, t in zip(GROUP_COLUMNS, self._types)]
        fields += [pa.field(c, types[t], nullable=False) for c, t in SCENARIO_COLUMNS.items()]
        self._schema = pa.schema(fields)
        encoded = [c for c in COLUMNS if SCENARIO_COLUMNS.get(c) != FLOAT]
        self._writer = pq.ParquetWriter(str(path), self._schema, use_dictionary=encoded, store_schema=False,
                                        write_statistics=list(SCENARIO_COLUMNS))
        self._kept = (None, [])            # (constants, their columns)

    def _constant_columns(self, constants: dict, n: int) -> list:
        kept_for, columns = self._kept
        if kept_for is not constants or len(columns[0]) < n:
            pa = self._pa
            zeros = pa.array(np.zeros(n, dtype=np.int32))
            columns = [pa.DictionaryArray.from_arrays(zeros, pa.array([constants[c]], t))
                       for c, t in zip(GROUP_COLUMNS, self._types)]
            self._kept = (constants, columns)
        return [c if len(c) == n else c.slice(0, n) for c in columns]

    def write(self, rows: Rows) -> None:
        pa, n = self._pa, len(rows)
        columns = self._constant_columns(rows.constants, n)
        for values, kind in zip(rows.values, SCENARIO_COLUMNS.values()):
            columns.append(pa.array(values.astype(_NUMPY[kind], copy=False)))
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def open_writer(target):
    """A writer for a path (Parquet when it ends .parquet, else CSV) or a binary file object."""
    if isinstance(target, (str, Path)) and Path(target).suffix.lower() == ".parquet":
        return ParquetWriter(target)
    try:
        return CsvWriter(target)
    except OSError as exc:
        raise SpecError(str(target), "", f"cannot write ({exc.strerror})") from None


def nan_if_none(value) -> float:
    return math.nan if value is None else float(value)
