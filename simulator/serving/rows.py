"""Per-request rows of serving runs to CSV or Parquet, written whole (report/output.py):
one row per served request of each run, with the run's rate (or concurrency).

Columns: rate (requests/s; empty for a closed loop or a trace), concurrency, request (its
index in arrival order), arrival_s, first_token_s, last_token_s (s from the run's start),
prompt, output (tokens), ttft_s, tpot_s (NaN for one-token outputs), e2e_s, preemptions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.errors import SpecError
from simulator.explore.csvfmt import FLOAT, INT, rows_csv
from simulator.report.output import written_whole
from simulator.serving.metrics import per_request

COLUMNS = {"rate": FLOAT, "concurrency": INT, "request": INT, "arrival_s": FLOAT, "first_token_s": FLOAT,
           "last_token_s": FLOAT, "prompt": INT, "output": INT, "ttft_s": FLOAT, "tpot_s": FLOAT, "e2e_s": FLOAT,
           "preemptions": INT}


def run_columns(run) -> np.ndarray:
    """[columns, requests] float64 values of one run (serving.simulate.Run)."""
    r = run.requests
    n = len(r)
    times = per_request(r.arrival_s, run.first_s, run.last_s, r.output)
    rate = run.metrics["rate"]
    return np.array([np.full(n, np.nan if rate is None else rate), np.full(n, run.metrics["concurrency"] or 0),
                     np.arange(n), r.arrival_s, run.first_s, run.last_s, r.prompt, r.output, times["ttft_s"],
                     times["tpot_s"], times["e2e_s"], run.preemptions], dtype=np.float64)


def write(path: Path, runs) -> None:
    """Every run's rows into ``path`` (.parquet: pyarrow; else CSV), whole or not at all."""
    values = np.concatenate([run_columns(run) for run in runs], axis=1) if runs else np.zeros((len(COLUMNS), 0))
    with written_whole(Path(path)) as partial:
        if Path(path).suffix.lower() == ".parquet":
            _parquet(partial, values)
        else:
            kinds = np.array(list(COLUMNS.values()), dtype=np.int64)
            partial.write_bytes((",".join(COLUMNS) + "\n").encode() + rows_csv("", values, kinds))


def _parquet(path: Path, values: np.ndarray) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SpecError("<arguments>", "--out", "writing Parquet needs pyarrow (pip install pyarrow); "
                                                "or write .csv") from None
    arrays = [pa.array(v.astype(np.int64) if kind == INT else v) for v, kind in zip(values, COLUMNS.values())]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(COLUMNS)), str(path))
