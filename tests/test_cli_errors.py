"""Bad input on the command line never passes silently (issue 13, the CLI half): exit 2 and
one line naming the option and what was expected, no traceback, nothing half-written, no
hang; a reader that stops early ends the command quietly; every exit-0 output holds only
finite, non-negative quantities (missing ones as n/a or null)."""
import csv
import io
import json
import math
import os
import pathlib
import subprocess
import sys
import time

import pytest

import simulator
from simulator.cli.main import EXIT_BROKEN_PIPE, main
from simulator.errors import SimulatorError, WorkloadError

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLAN = ["plan", "--model", "llama-3.2-1b", "--prompt", "256", "--output", "64", "--hardware", "l4",
        "--max-batch", "8"]
SMALL_GRID = "models: llama-3.2-1b\nhardware: l4\nbatch: [1, 2]\nprompt: [128]\noutput: [1, 16]\n"


def assert_one_line_error(cli, argv, *fragments):
    code, out, err = cli(argv)
    assert code == 2, (argv, code, err)
    assert out == "", argv
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmsim: error:"), (argv, err)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (argv, lines[0], fragment)
    return lines[0]


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (not JSON)."""
    def refuse(name):
        raise AssertionError(f"{name} in JSON output")
    return json.loads(text, parse_constant=refuse)


def _no_work(*args, **kwargs):
    raise AssertionError("the command did work before refusing its arguments")


# --- 1. --plot and --out are refused before any work -------------------------------------------

@pytest.mark.parametrize("path,fragment", [
    ("/sys/x.png", "cannot write in folder '/sys'"),
    ("/proc/self/x.png", "cannot write in folder '/proc/self'"),
    ("/no/such/folder/x.png", "no folder '/no/such/folder'"),
])
def test_plot_path_that_cannot_be_written_is_refused_before_any_work(cli, monkeypatch, path, fragment):
    monkeypatch.setattr(simulator, "predict", _no_work)
    pytest.importorskip("matplotlib")
    assert_one_line_error(cli, ["predict", "--plot", path], "--plot", fragment)


def test_plot_path_that_is_a_folder_is_refused(cli, tmp_path, monkeypatch):
    (tmp_path / "picture.png").mkdir()
    monkeypatch.setattr(simulator, "predict", _no_work)
    assert_one_line_error(cli, ["predict", "--plot", str(tmp_path / "picture.png")], "--plot", "is a folder")


def test_unwritable_folder_is_refused(cli, tmp_path, monkeypatch):
    """A folder that takes no new file (read-only): the probe file cannot be created."""
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(simulator, "predict", _no_work)
    assert_one_line_error(cli, ["predict", "--plot", str(tmp_path / "x.png")], "--plot", "Read-only file system")
    grid = tmp_path / "grid.yaml"
    grid.write_text(SMALL_GRID)
    assert_one_line_error(cli, ["sweep", str(grid), "--out", str(tmp_path / "rows.csv")], "--out",
                          "Read-only file system")


@pytest.mark.parametrize("out,fragment", [
    ("/sys/rows.csv", "cannot write in folder '/sys'"),
    ("/no/such/folder/rows.csv", "no folder"),
    ("rows.txt", "expected a file ending .csv or .parquet"),
])
def test_sweep_out_is_checked_before_any_work(cli, tmp_path, monkeypatch, out, fragment):
    import simulator.explore.sweep as sweep_module

    grid = tmp_path / "grid.yaml"
    grid.write_text(SMALL_GRID)
    monkeypatch.setattr(sweep_module, "sweep", _no_work)
    assert_one_line_error(cli, ["sweep", str(grid), "--out", out], "--out", fragment)


# --- 2. a reader that stops early ----------------------------------------------------------------

def _closed_reader(argv, read_first_line: bool):
    proc = subprocess.Popen([sys.executable, "-m", "simulator.cli.main", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if read_first_line:
        assert proc.stdout.readline()
    proc.stdout.close()                   # as `| head -1` does
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


def test_sweep_piped_into_head_exits_quietly(tmp_path):
    grid = tmp_path / "grid.yaml"          # 8,192 rows: far more than a pipe holds
    grid.write_text("models: llama-3.2-1b\nhardware: l4\nbatch: {from: 1, to: 64, step: 1}\n"
                    "prompt: {from: 128, to: 2048, step: 128}\noutput: [16, 32, 64, 128, 256, 512, 1024, 2048]\n")
    code, err = _closed_reader(["sweep", str(grid), "--chunk", "1024"], read_first_line=True)
    assert code == EXIT_BROKEN_PIPE == 141 and err == ""


def test_roofline_into_a_closed_pipe_exits_quietly():
    code, err = _closed_reader(["roofline"], read_first_line=False)
    assert code in (0, EXIT_BROKEN_PIPE) and "Traceback" not in err and err == ""


# --- 3. sweep to stdout streams, and names what it skipped -----------------------------------------

class _Recorder(io.TextIOWrapper):
    """A stdout that counts the writes reaching its byte buffer."""

    def __init__(self):
        self.chunks = []
        recorder = self

        class Bytes(io.BytesIO):
            def write(self, data):
                recorder.chunks.append(len(data))
                return super().write(data)
        super().__init__(Bytes(), encoding="ascii", write_through=True)

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode()


def test_sweep_to_stdout_streams_in_chunks_and_lists_skipped_configurations(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("models: llama-3.2-1b\nhardware: [l4, epyc-9654]\ntp: [1, 2, 3]\nbatch: {from: 1, to: 64, step: 1}\n"
                    "prompt: [128]\noutput: [16]\n")
    stdout = _Recorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["sweep", str(grid), "--chunk", "16"]) == 0
    rows = list(csv.DictReader(io.StringIO(stdout.text())))
    assert len(rows) == 3 * 64                        # l4 at tp 1 and 2, epyc at tp 1
    assert len(stdout.chunks) >= 12                  # rows went out chunk by chunk, not at the end
    err = capsys.readouterr().err.strip().splitlines()
    skipped = [line for line in err if line.startswith("llmsim: skipped ")]
    assert len(skipped) == 3 and len(err) == 3       # tp 3 twice, and tp 2 on a CPU with no link
    assert any("epyc-9654" in line and "tp 2" in line for line in skipped)
    assert all("tp 3" in line or "epyc-9654" in line for line in skipped)
    assert all(": " in line.removeprefix("llmsim: skipped ") for line in skipped)


# --- 4. compare ----------------------------------------------------------------------------------

@pytest.mark.parametrize("hardware,fragment", [
    (",", "expected one or more comma-separated names"),
    ("", "expected one or more comma-separated names"),
    ("h100-sxm,", "an empty name"),
    ("h100-sxm,,l4", "an empty name"),
    ("h100-sxm,l4,h100-sxm", "'h100-sxm' is named more than once"),
    ("h100-sxm,nope", "unknown hardware 'nope'"),
])
def test_compare_hardware_list(cli, monkeypatch, hardware, fragment):
    import simulator.api as api

    monkeypatch.setattr(api, "predict_workload", _no_work)
    line = assert_one_line_error(cli, ["compare", "--hardware", hardware], fragment)
    assert "--hardware" in line or "unknown hardware" in line


def test_compare_json_is_json_with_null_for_missing(cli):
    code, out, _ = cli(["compare", "--hardware", "h100-sxm,groq-lpu", "--batch", "1", "--prompt", "512",
                                "--output", "1", "--format", "json"])
    assert code == 0
    data = strict_json(out)
    rows = {r["label"].strip(): r for r in data["rows"]}
    assert rows["h100-sxm"]["fits"] and rows["h100-sxm"]["tpot_s"] is None        # output 1: no decode step
    assert not rows["groq-lpu"]["fits"] and rows["groq-lpu"]["ttft_s"] is None
    assert rows["groq-lpu x96 (tp 32, pp 3)"]["devices"] == 96
    assert data["workload"]["batch"] == 1


def test_compare_honours_the_draft_model(cli):
    argv = ["compare", "--hardware", "h100-sxm", "--batch", "1", "--format", "json"]
    code, plain, _ = cli(argv)
    code2, drafted, _ = cli(argv + ["--draft-model", "llama-3.2-1b", "--draft-tokens", "4"])
    assert code == code2 == 0
    plain_row, draft_row = strict_json(plain)["rows"][0], strict_json(drafted)["rows"][0]
    p = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=1, draft_model="llama-3.2-1b",
                          draft_tokens=4)
    assert draft_row["tpot_s"] == pytest.approx(p.tpot_s, rel=1e-12)
    assert draft_row["tpot_s"] != pytest.approx(plain_row["tpot_s"], rel=1e-3)


def _deep_model(tmp_path, layers: int) -> str:
    from simulator.specs import registry

    import yaml
    config = yaml.safe_load((ROOT / "model_specs" / "llama-3.2-1b.yaml").read_text())["config"]
    config["num_hidden_layers"] = layers
    path = tmp_path / f"deep-{layers}.json"
    path.write_text(json.dumps(config))
    registry.model(str(path))               # a valid config
    return str(path)


def test_fewest_devices_bisects_the_stages(tmp_path):
    """2^31 - 1 layers: O(log layers) footprints, not one per stage count (a hang before)."""
    from simulator.engine.predict import memory_report
    from simulator.engine.kernels.phases import prefill_features
    from simulator.api import fewest_devices
    from simulator.graph.lower import lower
    from simulator.specs import registry
    from simulator.specs.workload import workload

    model = _deep_model(tmp_path, 2 ** 31 - 1)
    w = workload(batch=1, prompt=128, output=16)
    started = time.perf_counter()
    assert fewest_devices(model, "h100-sxm", "pytorch-ref", w) is None            # more than 4,096 devices
    best = fewest_devices(model, "h100-sxm", "pytorch-ref", w, max_devices=None)
    assert time.perf_counter() - started < 20
    arch = registry.model(model)[1]
    table = lower(arch, w.weight_format, w.activation_dtype, w.kv_dtype, False, best.tp)
    feats = prefill_features(w.batch, w.prompt, table.window, table.moe)
    hw = registry.hardware("h100-sxm")
    assert memory_report(table, hw, best, feats).fits
    assert not memory_report(table, hw, best.model_copy(update={"pp": best.pp - 1}), feats).fits


@pytest.mark.parametrize("batch", [1, 2, 8])
def test_fewest_devices_equals_brute_force(batch):
    """Groq chips and a 1B model: the bisection finds the (devices, then most tp) a full search finds."""
    from simulator.engine.predict import memory_report
    from simulator.engine.kernels.phases import prefill_features
    from simulator.api import fewest_devices
    from simulator.engine.sizing import _tp_degrees
    from simulator.graph.lower import lower
    from simulator.specs import registry
    from simulator.specs.workload import workload

    w = workload(batch=batch, prompt=256, output=16)
    arch, hw = registry.model("llama-3.2-1b")[1], registry.hardware("groq-lpu")
    found = []
    for tp in _tp_degrees(arch):
        table = lower(arch, w.weight_format, w.activation_dtype, w.kv_dtype, False, tp)
        feats = prefill_features(w.batch, w.prompt, table.window, table.moe)
        for pp in range(1, arch.num_layers + 1):
            split = w.model_copy(update={"tp": tp, "pp": pp})
            if memory_report(table, hw, split, feats).fits:
                found.append((tp * pp, -tp, tp, pp))
    best = fewest_devices("llama-3.2-1b", "groq-lpu", "pytorch-ref", w)
    if not found:
        assert best is None
    else:
        assert (best.tp, best.pp) == min(found)[2:]


def test_compare_explains_a_model_that_needs_more_devices_than_searched(cli, tmp_path):
    """10^5 layers on Groq chips fit only on ~170k of them: the note says that, and does not
    claim that the largest split does not fit."""
    code, out, err = cli(["compare", "--model", _deep_model(tmp_path, 100_000), "--hardware", "groq-lpu",
                                  "--batch", "1", "--prompt", "128"])
    assert code == 0 and err == ""
    note = out.strip().splitlines()[-1]
    assert note.startswith("groq-lpu: the fewest that hold it are ") and "more than the 4,096 searched" in note
    devices = int(note.split("are ")[1].split(" devices")[0].replace(",", ""))
    assert devices > 4096 and "smaller batch" not in out


# --- 5. plan targets -----------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--ttft-max", "--tpot-max"])
@pytest.mark.parametrize("value", ["-1", "-5 ms", "0", "0 ms", "nan", "inf", "1e999", "fast", "5 GB"])
def test_plan_time_targets_must_be_positive_finite_times(cli, monkeypatch, option, value):
    import simulator.explore.plan as plan_module

    monkeypatch.setattr(plan_module, "plan", _no_work)
    assert_one_line_error(cli, PLAN + [option, value], option)


@pytest.mark.parametrize("option,value", [
    ("--throughput-min", "-1"), ("--throughput-min", "0"), ("--throughput-min", "nan"), ("--throughput-min", "inf"),
    ("--rate", "0"), ("--rate", "-2"), ("--rate", "nan"), ("--rate", "inf"), ("--rate", "x"),
    ("--prompt", "0"), ("--prompt", "-1"), ("--output", "0"), ("--output", "-3"), ("--batch", "0"),
    ("--max-devices", "0"), ("--max-batch", "100000"), ("--prompt", "99999999999999999999"),
])
def test_plan_numbers_must_be_in_range(cli, monkeypatch, option, value):
    import simulator.explore.plan as plan_module

    monkeypatch.setattr(plan_module, "plan", _no_work)
    line = assert_one_line_error(cli, [*PLAN, option, value])
    assert option in line or option.lstrip("-").replace("-", "_") in line


def test_plan_library_refuses_bad_targets():
    from simulator.explore.plan import Targets, plan

    for bad in (dict(ttft_max_s=-1.0), dict(ttft_max_s=0.0), dict(tpot_max_s=math.nan),
                dict(throughput_min_tokens_per_s=-1.0), dict(throughput_min_tokens_per_s=math.inf),
                dict(rate_requests_per_s=0.0)):
        with pytest.raises(WorkloadError):
            Targets(**bad)
    with pytest.raises(WorkloadError, match="prompt"):
        plan("llama-3.2-1b", 0, 16)
    with pytest.raises(WorkloadError, match="max_batch"):
        plan("llama-3.2-1b", 16, 16, max_batch=10 ** 9)


def test_an_8_s_ttft_does_not_meet_a_500_ms_target(cli):
    code, out, _ = cli(PLAN + ["--ttft-max", "500 ms", "--format", "json"])
    assert code == 0
    for option in strict_json(out)["options"]:
        assert 0 < option["ttft_s"] <= 0.5


def test_plan_json_is_valid_json_with_null_for_unset_targets_and_never_fitting_misses(cli):
    code, out, _ = cli(["plan", "--model", "llama-3.1-70b", "--prompt", "1024", "--output", "64",
                                "--hardware", "l4,h100-sxm", "--max-devices", "1", "--max-batch", "4",
                                "--tpot-max", "1 us", "--format", "json"])
    assert code == 0
    data = strict_json(out)
    assert data["targets"]["ttft_max_s"] is None and data["targets"]["tpot_max_s"] == pytest.approx(1e-6)
    assert not data["options"]
    scores = {m["hardware"]: m["score"] for m in data["misses"]}
    assert scores["l4"] is None                       # never fits
    assert scores["h100-sxm"] is None or scores["h100-sxm"] > 1


# --- 6. values of the wrong type on any option ----------------------------------------------------

@pytest.mark.parametrize("argv,option", [
    (["predict", "--batch", "1.5"], "--batch"),
    (["predict", "--batch", "1e3"], "--batch"),
    (["predict", "--prompt", "99999999999999999999"], "--prompt"),
    (["predict", "--output", "99999999999999999999", "--draft-model", "llama-3.2-1b"], "--output"),
    (["predict", "--tp", "-1"], "--tp"),
    (["predict", "--pp", "two"], "--pp"),
    (["predict", "--dp", "0"], "--dp"),
    (["predict", "--ep", "9223372036854775808"], "--ep"),
    (["predict", "--microbatches", ""], "--microbatches"),
    (["predict", "--draft-tokens", "0"], "--draft-tokens"),
    (["predict", "--acceptance", "1.5"], "--acceptance"),
    (["predict", "--acceptance", "nan"], "--acceptance"),
    (["predict", "--acceptance", "high"], "--acceptance"),
    (["roofline", "--batch", "-4"], "--batch"),
    (["compare", "--hardware", "l4", "--batch", "0"], "--batch"),
    (["sweep", "grid.yaml", "--chunk", "0"], "--chunk"),
    (["sweep", "grid.yaml", "--workers", "-2"], "--workers"),
    (["sweep", "grid.yaml", "--workers", "1000000000000"], "--workers"),
    (["plan", "--model", "llama-3.2-1b", "--prompt", "1.5", "--output", "4"], "--prompt"),
])
def test_wrong_type_or_range_is_one_argparse_line(cli, argv, option):
    line = assert_one_line_error(cli, argv, f"argument {option}")
    assert "expected" in line or "invalid" in line


def test_largest_int64_is_accepted_by_the_parser():
    from simulator.cli.main import build_parser

    args = build_parser().parse_args(["predict", "--batch", str(2 ** 63 - 1)])
    assert args.batch == 2 ** 63 - 1


# --- 8. nothing half-written -----------------------------------------------------------------------

def _fail_on_second_task(monkeypatch, error):
    import simulator.explore.sweep as sweep_module

    real, calls = sweep_module.evaluate_task, []

    def evaluate_task(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return real(*args, **kwargs)
    monkeypatch.setattr(sweep_module, "evaluate_task", evaluate_task)
    return calls


GRID_TWO_CHUNKS = "models: llama-3.2-1b\nhardware: [l4, h100-sxm]\nbatch: {from: 1, to: 32, step: 1}\n"


def test_a_sweep_that_fails_midway_leaves_no_file_and_keeps_the_old_one(cli, tmp_path, monkeypatch):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID_TWO_CHUNKS)
    out = tmp_path / "rows.csv"
    calls = _fail_on_second_task(monkeypatch, SimulatorError("a configuration went wrong"))
    assert_one_line_error(cli, ["sweep", str(grid), "--out", str(out), "--chunk", "32"], "went wrong")
    assert not out.exists() and os.listdir(tmp_path) == ["grid.yaml"]
    out.write_text("the previous rows\n")
    calls.clear()
    assert_one_line_error(cli, ["sweep", str(grid), "--out", str(out), "--chunk", "32"], "went wrong")
    assert out.read_text() == "the previous rows\n" and sorted(os.listdir(tmp_path)) == ["grid.yaml", "rows.csv"]


def test_an_interrupted_sweep_keeps_the_rows_written(cli, tmp_path, monkeypatch):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID_TWO_CHUNKS)
    out = tmp_path / "rows.csv"
    _fail_on_second_task(monkeypatch, KeyboardInterrupt())
    code, _, err = cli(["sweep", str(grid), "--out", str(out), "--chunk", "32"])
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 32 and sorted(os.listdir(tmp_path)) == ["grid.yaml", "rows.csv"]


def test_a_finished_sweep_replaces_the_file(cli, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(SMALL_GRID)
    out = tmp_path / "rows.csv"
    out.write_text("old\n")
    assert cli(["sweep", str(grid), "--out", str(out)])[0] == 0
    assert len(list(csv.DictReader(out.open()))) == 4 and sorted(os.listdir(tmp_path)) == ["grid.yaml", "rows.csv"]


# --- 9. exit-0 output: finite, non-negative, missing as n/a or null ---------------------------------

def test_missing_and_non_finite_quantities_print_as_n_a_and_null():
    from simulator.report.jsontext import json_text
    from simulator.report.table import number, quantity

    assert quantity(None, "s") == "n/a" and quantity(math.nan, "s") == "n/a" and quantity(math.inf, "B") == "n/a"
    assert number(None, ".3g") == "n/a" and number(math.nan, ",.0f") == "n/a" and number(2.5, ".3g") == "2.5"
    assert strict_json(json_text({"a": math.inf, "b": [math.nan, 1.0], "c": None})) == {"a": None, "b": [None, 1.0],
                                                                                       "c": None}


_NUMBER = __import__("re").compile(r"(?<![\w.])-?(?:\d[\d,]*\.?\d*(?:e[+-]?\d+)?|nan|inf)(?![\w])", __import__("re").I)


@pytest.mark.parametrize("argv", [
    ["predict", "--output", "1"],
    ["predict", "--model", "llama-3.1-70b", "--hardware", "l4"],              # does not fit
    ["predict", "--draft-model", "llama-3.2-1b", "--batch", "1"],
    ["compare", "--hardware", "h100-sxm,groq-lpu,epyc-9654", "--output", "1"],
    ["roofline", "--output", "1"],
    PLAN + ["--ttft-max", "1 ms"],                                            # nothing meets: closest misses
    PLAN,
])
def test_exit_0_tables_hold_no_nan_inf_or_negative_numbers(cli, argv):
    code, out, _ = cli(argv)
    assert code == 0
    for token in _NUMBER.findall(out):
        assert token.lower() not in ("nan", "inf", "-inf") and not token.startswith("-"), (argv, token)


@pytest.mark.parametrize("argv", [
    ["predict", "--output", "1", "--format", "json"],
    ["predict", "--model", "llama-3.1-70b", "--hardware", "l4", "--format", "json"],
    ["compare", "--hardware", "h100-sxm,groq-lpu", "--output", "1", "--format", "json"],
    ["roofline", "--output", "1", "--format", "json"],
    PLAN + ["--format", "json"],
])
def test_exit_0_json_holds_no_nan_inf_or_negative_numbers(cli, argv):
    code, out, _ = cli(argv)
    assert code == 0

    def walk(value):
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0, (argv, value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(strict_json(out))


# --- shipped data: `llmsim validate` after a plain `pip install .` ----------------------------------

def test_package_data_ships_every_committed_measurement_and_published_run():
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in ("simulator._data.validation.measurements", "simulator._data.validation.published"):
        assert package in tool["packages"]
        folder = ROOT / tool["package-dir"][package]
        shipped = {p for pattern in tool["package-data"][package] for p in folder.glob(pattern)}
        wanted = {p for p in folder.rglob("*") if p.suffix in (".json", ".yaml")}
        assert wanted and wanted <= shipped, sorted(str(p) for p in wanted - shipped)
