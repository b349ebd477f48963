"""llmsim sweep: grid files, rows equal to simulator.predict, output formats, interruption,
Dask, CLI errors."""
import csv
import io
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import simulator
from simulator.cli.main import main
from simulator.explore.cost import usd_per_million_tokens
from simulator.errors import SpecError
from simulator.specs import registry
from simulator.explore.sweep import sweep
from simulator.explore.grid import load_grid, parse_grid
from simulator.explore.writers import COLUMNS

GRID_20K = """
models: [llama-3.1-8b, mistral-7b]
hardware: [h100-sxm, rtx-4090]
batch: {from: 1, to: 512, factor: 2}
prompt: [1, 100, 512, 1000, 2048, 3000, 4000, 4096, 4097, 5000, 6000, 7000, 8000, 8192, 9000, 10000, 12000, 16000,
         20000, 32000]
output: {from: 1, to: 2401, step: 100}
"""
METRICS = ["ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "energy_j", "tokens_per_j", "kv_cache_bytes",
           "memory_total_bytes"]


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected(row: dict) -> dict:
    p = simulator.predict(model=row["model"], hardware=row["hardware"], stack=row["stack"], batch=int(row["batch"]),
                          prompt=int(row["prompt"]), output=int(row["output"]), weight_dtype=row["weight_dtype"],
                          activation_dtype=row["activation_dtype"], kv_dtype=row["kv_dtype"], tp=int(row["tp"]),
                          pp=int(row["pp"]))
    cost = usd_per_million_tokens(registry.hardware(row["hardware"]), p.devices, p.e2e_s, p.batch * p.output)
    return dict(ttft_s=p.ttft_s, tpot_s=p.tpot_s, e2e_s=p.e2e_s, output_tokens_per_s=p.output_tokens_per_s,
                energy_j=p.energy_j, tokens_per_j=p.tokens_per_j, kv_cache_bytes=p.memory.kv_cache_bytes,
                memory_total_bytes=p.memory.total_bytes, memory_capacity_bytes=p.memory.capacity_bytes,
                fits=str(p.memory.fits), usd_per_million_output_tokens=cost)


@pytest.fixture(scope="module")
def sweep_20k(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "grid.yaml").write_text(GRID_20K)
    summary = sweep(folder / "grid.yaml", folder / "out.csv", chunk_scenarios=3000)
    return folder, summary, read_rows(folder / "out.csv")


def test_20k_sweep_rows_equal_predict_on_a_sample(sweep_20k):
    _, summary, rows = sweep_20k
    assert summary.written == len(rows) == 20_000 and 0 < summary.fitting < 20_000
    assert list(rows[0]) == list(COLUMNS)
    rng = np.random.default_rng(0)
    for k in rng.choice(len(rows), 300, replace=False):
        row, want = rows[k], _expected(rows[k])
        assert row["fits"] == want["fits"]
        assert float(row["memory_capacity_bytes"]) == want["memory_capacity_bytes"]
        for name in METRICS + ["usd_per_million_output_tokens"]:
            expected = math.nan if want[name] is None else want[name]
            assert_allclose(float(row[name]), expected, rtol=1e-9, err_msg=f"row {k} {name}: {row}")


def test_rows_come_in_grid_order(sweep_20k):
    _, _, rows = sweep_20k
    assert [(int(r["batch"]), int(r["prompt"]), int(r["output"])) for r in rows[23:27]] == [
        (1, 1, 2301), (1, 1, 2401), (1, 100, 1), (1, 100, 101)]
    assert [(r["model"], r["hardware"]) for r in rows[::5000]] == [
        ("llama-3.1-8b", "h100-sxm"), ("llama-3.1-8b", "rtx-4090"), ("mistral-7b", "h100-sxm"),
        ("mistral-7b", "rtx-4090")]


def test_cost_uses_purchase_price_amortised_over_three_years(sweep_20k):
    _, _, rows = sweep_20k
    row = next(r for r in rows if r["hardware"] == "rtx-4090" and r["fits"] == "True")
    assert float(row["usd_per_hour"]) == pytest.approx(1599 / (3 * 365 * 24))
    expected = float(row["usd_per_hour"]) * float(row["e2e_s"]) / 3600 / (int(row["batch"]) * int(row["output"])) * 1e6
    assert float(row["usd_per_million_output_tokens"]) == pytest.approx(expected, rel=1e-9)
    h100 = next(r for r in rows if r["hardware"] == "h100-sxm")
    assert float(h100["usd_per_hour"]) == pytest.approx(3.78)      # an hourly (cloud) price is used as is


def test_whatif_rows_record_factors_and_values(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("models: llama-3.1-8b\nhardware: h100-sxm\nbatch: 8\nprompt: 1024\noutput: 128\n"
                    "whatif: {bandwidth: {from: 0.5, to: 4, factor: 2}, capacity: [1, 0.1]}\n")
    sweep(grid, tmp_path / "o.csv")
    rows = read_rows(tmp_path / "o.csv")
    assert [float(r["bandwidth_factor"]) for r in rows[::2]] == [0.5, 1, 2, 4]
    bandwidth = registry.hardware("h100-sxm").memory[0].bandwidth_bytes_per_s
    assert [float(r["memory_bandwidth_bytes_per_s"]) for r in rows[::2]] == pytest.approx(
        [0.5 * bandwidth, bandwidth, 2 * bandwidth, 4 * bandwidth])
    capacity = registry.hardware("h100-sxm").memory[0].capacity_bytes
    assert {r["fits"] for r in rows[1::2]} == {"False"}
    assert float(rows[1]["memory_capacity_bytes"]) == pytest.approx(0.1 * capacity, rel=1e-11)
    tpot = [float(r["tpot_s"]) for r in rows[::2]]
    assert tpot == sorted(tpot, reverse=True) and tpot[0] > 1.5 * tpot[1]


def test_unrunnable_configurations_are_skipped_and_listed(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("models: [llama-3.1-8b]\nhardware: [h100-sxm, apple-m1-max]\ntp: [1, 3]\nbatch: 1\n")
    summary = sweep(grid, tmp_path / "o.csv")
    assert summary.configurations == 2 and len(summary.skipped) == 2
    assert "skipped 2 configurations" in summary.text("o.csv")
    assert {r["hardware"] for r in read_rows(tmp_path / "o.csv")} == {"h100-sxm", "apple-m1-max"}


def test_interrupted_sweep_keeps_the_chunks_written(tmp_path):
    (tmp_path / "g.yaml").write_text(GRID_20K)

    def stop_after_two_chunks(done, total):
        if done >= 4000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path / "g.yaml", tmp_path / "o.csv", chunk_scenarios=2000, progress=stop_after_two_chunks)
    rows = read_rows(tmp_path / "o.csv")
    assert len(rows) == 4000 and rows[-1]["fits"] in ("True", "False")


def test_parquet_output_equals_csv(tmp_path, sweep_20k):
    pq = pytest.importorskip("pyarrow.parquet")
    folder, _, rows = sweep_20k
    sweep(folder / "grid.yaml", tmp_path / "o.parquet", chunk_scenarios=7000)
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 20_000 and table.column_names == list(COLUMNS)
    k = 12_345
    got = table.slice(k, 1).to_pylist()[0]
    assert got["model"] == rows[k]["model"] and got["fits"] == (rows[k]["fits"] == "True")
    assert got["e2e_s"] == pytest.approx(float(rows[k]["e2e_s"]), rel=1e-11, nan_ok=True)


def test_dask_cluster_gives_identical_rows(tmp_path, sweep_20k):
    distributed = pytest.importorskip("dask.distributed")
    folder, _, _ = sweep_20k
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        summary = sweep(folder / "grid.yaml", tmp_path / "dask.csv", chunk_scenarios=1500,
                        scheduler=cluster.scheduler_address)
    assert summary.written == 20_000
    assert (tmp_path / "dask.csv").read_bytes() == (folder / "out.csv").read_bytes()


def test_cli_workers_starts_a_local_cluster(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    grid = tmp_path / "g.yaml"
    grid.write_text("models: llama-3.2-1b\nhardware: [l4, h100-sxm]\nbatch: [1, 4]\nprompt: [64, 128]\noutput: 8\n")
    assert main(["sweep", str(grid), "--workers", "1", "--out", str(tmp_path / "d.csv")]) == 0
    assert main(["sweep", str(grid)]) == 0
    local = capsys.readouterr().out.split("\n", 1)[1]
    assert (tmp_path / "d.csv").read_text() == local


def test_grid_parsing_ranges_and_defaults(tmp_path):
    g = parse_grid({"models": "llama-3.1-8b", "hardware": ["h100-sxm"], "batch": {"from": 1, "to": 100, "factor": 3},
                    "prompt": {"from": 128, "to": 512, "step": 128}, "weight_dtype": ["bf16", "q4_0"],
                    "whatif": {"peak": [1, 2]}})
    assert g.batch.tolist() == [1, 3, 9, 27, 81] and g.prompt.tolist() == [128, 256, 384, 512]
    assert g.output.tolist() == [128] and len(g.groups) == 4 and g.scenarios == 80
    b, s, n = g.slice_axes(g.batch, g.prompt, g.output, 3, 6)
    assert b.tolist() == [1, 3, 3] and s.tolist() == [512, 128, 256]


@pytest.mark.parametrize("text,field,fragment", [
    ("modles: [x]\nhardware: h100-sxm", "modles", "did you mean 'models'"),
    ("models: [lama-3.1-8b]\nhardware: h100-sxm", "models.0", "unknown model 'lama-3.1-8b'"),
    ("models: m.yaml\nhardware: h100-sxm", "", "file not found"),
    ("models: llama-3.1-8b\nhardware: [h100-sxm, h900]", "hardware.1", "unknown hardware"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nbatch: [4, 0]", "batch.1", "greater than 0"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nbatch: {from: 1, to: 8}", "batch", "expected a range"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nprompt: {from: 8, to: 1, step: 1}", "prompt", "from <= to"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nweight_dtype: int5", "weight_dtype.0", "expected a dtype"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nkv_dtype: [fp7]", "kv_dtype.0", "expected one of"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nwhatif: {bandwith: [2]}", "whatif.bandwith", "did you mean"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\nwhatif: {peak: [-1]}", "whatif.peak.0", "greater than 0"),
    ("models: llama-3.1-8b\nhardware: h100-sxm\ntp: [0]", "tp.0", "greater than 0"),
])
def test_grid_errors_name_file_and_field(tmp_path, text, field, fragment):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_grid(path)
    assert fragment in str(info.value)
    if field:
        assert info.value.path == str(path) and info.value.field == field


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:          # argparse usage errors
        return exc.code


def test_cli_sweep_errors_are_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text("models: llama-3.1-8b\nhardware: h100-sxm\nbatch: [0]\n")
    for argv in (["sweep", str(path)], ["sweep", str(tmp_path / "missing.yaml")],
                 ["sweep", str(path), "--workers", "2", "--scheduler", "tcp://x:1"],
                 ["sweep", str(path), "--out", str(tmp_path / "no" / "such" / "dir.csv")]):
        assert _exit_code(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("llmsim: error:"), argv


def test_cli_sweep_prints_csv_and_summary(tmp_path, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text("models: llama-3.2-1b\nhardware: l4\nbatch: [1, 2]\noutput: [1, 16]\n")
    assert main(["sweep", str(path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4 and rows[0]["tpot_s"] == "nan" and rows[1]["tpot_s"] != "nan"
    assert main(["sweep", str(path), "--out", str(tmp_path / "o.csv")]) == 0
    assert "sweep: 4 scenarios (1 configurations)" in capsys.readouterr().out


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_only():
    from simulator.cli.sweep import Progress

    tty = _Tty()
    bar = Progress(tty, interval_s=0.0, after_s=0.0)
    bar(50, 100)
    bar(100, 100)
    bar.close()
    text = tty.getvalue()
    assert "50/100 scenarios" in text and "100/100" in text and text.endswith("\n")
    plain = io.StringIO()
    Progress(plain, interval_s=0.0, after_s=0.0)(50, 100)
    assert plain.getvalue() == ""
