"""``llmsim serving``: bad traces and options are one line and exit 2 with nothing written;
JSON has one entry per rate; --out rows, --plot, the same seed gives the same bytes; the
serving accuracy comparison reproduces a run it was given."""
import csv
import json

import numpy as np
import pytest

from simulator.accuracy.serving import compare_file
from simulator.serving.policy import Policy
from simulator.serving.requests import Lengths, generate
from simulator.serving.simulate import engine, serve

BASE = ["serving", "--model", "llama-3.2-1b", "--hardware", "h200-sxm", "--requests", "60", "--prompt", "256",
        "--output", "32"]


@pytest.mark.parametrize("text, fragments", [
    ('{"arrival_s": 0, "prompt": 10}\n', ["line 1", "output"]),
    ('{"arrival_s": -1, "prompt": 10, "output": 5}\n', ["line 1: arrival_s", ">= 0"]),
    ('{"arrival_s": 2, "prompt": 10, "output": 5}\n{"arrival_s": 1, "prompt": 10, "output": 5}\n',
     ["line 2: arrival_s", "in order"]),
    ('{"arrival_s": 0, "prompt": 2.5, "output": 5}\n', ["line 1: prompt", "whole number"]),
    ('not json\n', ["line 1", "JSON object"]),
    ('', ["at least one request"]),
])
def test_bad_jsonl_trace_is_one_line_and_exit_2(cli, tmp_path, text, fragments):
    trace = tmp_path / "trace.jsonl"
    trace.write_text(text)
    out = tmp_path / "rows.csv"
    code, stdout, err = cli([*BASE[:5], "--trace", str(trace), "--out", str(out)])
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and "Traceback" not in err and str(trace) in err
    assert all(f in err for f in fragments), err
    assert not out.exists()


def test_bad_csv_trace_names_its_line(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt,output\n0.0,100,10\n0.5,,10\n")
    code, _, err = cli([*BASE[:5], "--trace", str(trace)])
    assert code == 2 and "line 3" in err and "prompt" in err and err.count("\n") == 1


@pytest.mark.parametrize("extra, fragment", [
    (["--prompt-dist", "uniform:9:3"], "LO <= HI"),
    (["--prompt-dist", "zipf:3"], "uniform:LO:HI"),
    (["--output-dist", "lognormal:100:x"], "--output-dist"),
    (["--rate", "2,-1"], "rates > 0"),
    (["--max-rate"], "--ttft-slo"),
    (["--prefix-hit", "1"], "below 1"),
])
def test_bad_options_are_one_line(cli, extra, fragment):
    code, out, err = cli([*BASE, *extra])
    assert code == 2 and out == "" and fragment in err and err.count("\n") == 1


def test_trace_runs_and_counts_requests_too_long_for_the_model(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt,output,prefix_id\n0,100,10,a\n0.01,100,10,a\n0.02,200000,5,\n")
    code, out, _ = cli([*BASE[:5], "--trace", str(trace), "--format", "json"])
    assert code == 0
    (entry,) = json.loads(out)["rates"]
    assert (entry["completed"], entry["rejected"], entry["rate"]) == (2, 1, None)


def test_json_rates_rows_plot_and_same_seed_same_bytes(cli, tmp_path):
    rows, plot = tmp_path / "rows.csv", tmp_path / "serving.png"
    argv = [*BASE, "--rate", "1,20,400", "--ttft-slo", "50 ms", "--tpot-slo", "20 ms", "--format", "json",
            "--out", str(rows), "--plot", str(plot)]
    code, first, _ = cli(argv)
    assert code == 0
    doc = json.loads(first)
    assert [e["rate"] for e in doc["rates"]] == [1.0, 20.0, 400.0]
    for entry in doc["rates"]:
        for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
            assert set(entry[key]) == {"p50", "p90", "p99", "mean"}
        for key in ("requests_per_s", "output_tokens_per_s", "goodput_requests_per_s", "saturated", "preemptions",
                    "kv_peak_fraction", "energy_j_per_request", "tokens_per_j", "usd_per_million_tokens"):
            assert key in entry
    assert doc["rates"][-1]["saturated"] and not doc["rates"][0]["saturated"]
    with rows.open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 180 and {r["rate"] for r in table} == {"1", "20", "400"}
    assert plot.stat().st_size > 10_000
    code, second, _ = cli(argv[:-4])
    assert code == 0 and second == first
    code, third, _ = cli([*argv[:-4], "--seed", "2"])
    assert third != first


def test_table_and_closed_loop(cli):
    code, out, _ = cli([*BASE, "--concurrency", "4"])
    assert code == 0 and "4 clients" in out and "TTFT p50" in out and "n/a" not in out.split("goodput")[0]


def test_accuracy_comparison_reproduces_a_run_written_as_a_measurement(tmp_path):
    """A serving file holding the simulator's own run compares with zero error."""
    policy = Policy(max_batched_tokens=1024, max_seqs=16, decode_graphs=False)
    reqs = generate(80, 10.0, Lengths("uniform", 64, 512), Lengths("uniform", 2, 64), seed=3)
    r = serve(engine("llama-3.2-1b", "h200-sxm", "pytorch-ref", policy), reqs, 10.0)
    point = {"rate": 10.0, "requests": {"arrival_s": r.requests.arrival_s.tolist(), "prompt": reqs.prompt.tolist(),
                                        "output": reqs.output.tolist(), "first_s": r.first_s.tolist(),
                                        "last_s": r.last_s.tolist()}}
    path = tmp_path / "serving-llama-3.2-1b.json"
    path.write_text(json.dumps({"model": "llama-3.2-1b", "policy": vars(policy), "points": [point]}))
    (row,) = compare_file(path, "h200-sxm")
    for key in ("ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "output_tokens_per_s"):
        assert row[f"error_{key}"] == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(row["measured_ttft_p50_s"])
