"""explore/writers.py: a CSV file of its own, written without the page cache in whole
blocks (_DirectFile), holds the bytes the buffered writer gives, whatever the chunks'
lengths, also when it goes back to the page cache midway or cannot use O_DIRECT."""
import io

import numpy as np
import pytest

from simulator.explore import writers
from simulator.explore.writers import CsvWriter, Rows, SCENARIO_COLUMNS


def _rows(n: int, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    values = rng.random((len(SCENARIO_COLUMNS), n)) * 10.0 ** rng.integers(-6, 12, (len(SCENARIO_COLUMNS), n))
    values[:3] = rng.integers(1, 5000, (3, n))                  # batch, prompt, output
    values[list(SCENARIO_COLUMNS).index("fits")] = rng.integers(0, 2, n)
    values[4, ::7] = np.nan
    constants = {c: (1.5 if t is float else 2 if t is int else f"name-{seed}") for c, t in writers.GROUP_COLUMNS.items()}
    return Rows(constants, values)


CHUNKS = [_rows(n, seed) for seed, n in enumerate((1, 17, 4096, 333, 2, 9000, 1))]


def _written(target) -> None:
    writer = CsvWriter(target)
    for rows in CHUNKS:
        writer.write(rows)
    writer.close()


@pytest.fixture(scope="module")
def expected() -> bytes:
    sink = io.BytesIO()                     # a file object: the buffered path
    _written(sink)
    return sink.getvalue()


def test_a_direct_file_holds_what_the_buffered_writer_writes(tmp_path, expected):
    probe = writers._DirectFile.open(tmp_path / "probe")
    if probe is None:
        pytest.skip("this file system refuses O_DIRECT")
    probe.close()
    _written(tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_bytes() == expected and len(expected) % writers._DirectFile.ALIGN


def test_a_slow_direct_file_goes_back_to_the_page_cache_midway(tmp_path, expected, monkeypatch):
    monkeypatch.setattr(writers._DirectFile, "MIN_BYTES_PER_S", 1e30)   # every disk is too slow
    monkeypatch.setattr(writers._DirectFile, "JUDGED_AFTER", 1)
    stopped = []
    real = writers._DirectFile._stop_direct
    monkeypatch.setattr(writers._DirectFile, "_stop_direct", lambda self: (stopped.append(1), real(self)))
    _written(tmp_path / "rows.csv")
    if writers._DirectFile.open(tmp_path / "probe") is not None:
        assert stopped == [1]               # once, after the first whole blocks
    assert (tmp_path / "rows.csv").read_bytes() == expected


def test_without_o_direct_the_file_is_written_through_the_page_cache(tmp_path, expected, monkeypatch):
    monkeypatch.setattr(writers._DirectFile, "open", classmethod(lambda cls, path: None))
    _written(tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_bytes() == expected


def test_an_os_without_o_direct_writes_through_the_page_cache(tmp_path, expected, monkeypatch):
    """macOS has no os.O_DIRECT: the writer asks getattr(os, "O_DIRECT", 0), never the name."""
    import os

    monkeypatch.delattr(os, "O_DIRECT", raising=False)
    assert writers._DirectFile.open(tmp_path / "probe") is None
    _written(tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_bytes() == expected


def test_replacing_a_large_file_frees_the_old_one_elsewhere(tmp_path, monkeypatch):
    """report/output.written_whole over a file of FREE_LATER_BYTES or more: the new content in
    place at once, the old file's second name gone soon after (a detached rm); a small one
    is replaced plainly."""
    import time

    from simulator.report import output

    monkeypatch.setattr(output, "FREE_LATER_BYTES", 1000)
    links = []                              # the old file's names when the rename drops one

    def replace(src, dst, real=output.os.replace):
        links.append(output.os.stat(dst).st_nlink)
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", replace)
    for size, new, names in ((5000, b"new", 2), (10, b"newer", 1)):
        target = tmp_path / "rows.csv"
        target.write_bytes(b"o" * size)
        with output.written_whole(target) as partial:
            partial.write_bytes(new)
        assert target.read_bytes() == new and links.pop() == names
        deadline = time.monotonic() + 10
        while [p for p in tmp_path.iterdir() if p.name != "rows.csv"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]


def test_a_file_that_cannot_be_opened_is_one_error(tmp_path):
    with pytest.raises(writers.SpecError, match="cannot write"):
        writers.open_writer(tmp_path / "no" / "such" / "rows.csv")
