"""Sweep rows to CSV or Parquet, one chunk at a time, flushed as they come (an interrupted
sweep keeps every chunk already written; a Parquet file is closed with its footer)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from simulator.errors import SpecError
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


class CsvWriter:
    """CSV with a header line; numbers as csvfmt writes them."""

    def __init__(self, target):
        self._own = not hasattr(target, "write")
        self._file = open(target, "wb") if self._own else target
        self._file.write((",".join(COLUMNS) + "\n").encode())

    def write(self, rows: Rows) -> None:
        prefix = "".join(_field(rows.constants[c]) + "," for c in GROUP_COLUMNS)
        self._file.write(rows_csv(prefix, rows.values, _KINDS, as_bytes=not self._own))   # own file: no copy
        self._file.flush()

    def close(self) -> None:
        if self._own:
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
