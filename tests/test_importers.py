"""Run-file importers: each format's sample (written by hand from the tool's own source or
docs, tests/data/runs/) becomes the runs its fields say, in the simulator's semantics; bad
files are one line naming the file and field."""
import json
import pathlib

import pytest

from simulator.calibration.importers import load_runs
from simulator.errors import SpecError

DATA = pathlib.Path(__file__).parent / "data" / "runs"


def test_vllm_bench_serve():
    """batch = max_concurrency, lengths = tokens / completed requests, medians in seconds;
    the HF id (an -Instruct variant) names the registry model; --metadata hardware and tp."""
    (run,) = load_runs(DATA / "vllm-bench-serve.json")
    assert (run.model, run.hardware, run.tp) == ("llama-3.1-8b", "h100-sxm", 1)
    assert (run.batch, run.prompt, run.output) == (16, 1024, 128)
    assert run.ttft_s == pytest.approx(0.2955) and run.tpot_s == pytest.approx(0.0127) and run.e2e_s is None


def test_vllm_finite_rate_is_refused(tmp_path):
    data = json.loads((DATA / "vllm-bench-serve.json").read_text())
    bad = tmp_path / "rate.json"
    bad.write_text(json.dumps({**data, "request_rate": 4.0}))
    with pytest.raises(SpecError, match="rate.json: request_rate: expected inf"):
        load_runs(bad)


def test_llama_bench_json():
    """pp512 -> TTFT of a 512-token prompt; tg128 -> TPOT = avg_ns / 128 over prompt 1,
    output 129; Q4_0 weights and f16 cache from model_type and type_k."""
    pp, tg = load_runs(DATA / "llama-bench.json", {"model": "llama-2-7b", "hardware": "h100-sxm"})
    assert (pp.prompt, pp.output, pp.ttft_s, pp.weight_dtype, pp.kv_dtype) == (512, 1, 0.045458, "q4_0", "fp16")
    assert (tg.prompt, tg.output, tg.batch) == (1, 129, 1) and tg.tpot_s == pytest.approx(0.456 / 128)
    assert 128 / (tg.tpot_s * 128) == pytest.approx(280.7, rel=1e-3)      # its avg_ts


def test_llama_bench_csv_depth_and_pg():
    """A tg test after n_depth cached tokens starts at prompt n_depth; a pg test is e2e."""
    pp, tg, pg = load_runs(DATA / "llama-bench.csv", {"model": "llama-2-7b", "hardware": "h100-sxm"})
    assert pp.weight_dtype == "q8_0" and (tg.prompt, tg.output) == (4096, 129)
    assert (pg.prompt, pg.output, pg.e2e_s) == (512, 129, 0.84)


def test_llama_bench_needs_a_model_and_a_known_quantization(tmp_path):
    with pytest.raises(SpecError, match="rows.0: model: required"):
        load_runs(DATA / "llama-bench.json", {"hardware": "h100-sxm"})
    rows = json.loads((DATA / "llama-bench.json").read_text())
    rows[0]["model_type"] = "llama 7B Q4_K - Medium"
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(SpecError, match="rows.0.model_type: .*--weight-dtype"):
        load_runs(bad, {"model": "llama-2-7b", "hardware": "h100-sxm"})
    assert load_runs(bad, {"model": "llama-2-7b", "hardware": "h100-sxm", "weight_dtype": "int4-g32"})[0].weight_dtype \
        == "int4-g32"


@pytest.mark.parametrize("name, model, batch, prompt, output, ttft_s, tpot_s, e2e_s", [
    ("genai-perf.json", "qwen2.5-7b", 8, 1024, 256, 0.0987, 0.00974, 2.5715),
    ("aiperf.json", "llama-3.1-8b", 32, 550, 128, 0.1501, 0.0318, 4.2),
])
def test_genai_perf_and_aiperf(name, model, batch, prompt, output, ttft_s, tpot_s, e2e_s):
    """p50 of each latency (ms -> s), mean lengths, concurrency as the batch."""
    (run,) = load_runs(DATA / name, {"hardware": "h100-sxm"})
    assert (run.model, run.batch, run.prompt, run.output) == (model, batch, prompt, output)
    assert (run.ttft_s, run.tpot_s, run.e2e_s) == pytest.approx((ttft_s, tpot_s, e2e_s))


def test_genai_perf_unknown_unit(tmp_path):
    data = json.loads((DATA / "genai-perf.json").read_text())
    data["time_to_first_token"]["unit"] = "fortnights"
    bad = tmp_path / "g.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="time_to_first_token.p50: unknown time unit"):
        load_runs(bad, {"hardware": "h100-sxm"})


def test_hf_generate():
    """TTFT = median prefill, e2e = median generate, TPOT = (e2e - TTFT) / (N - 1)."""
    a, b = load_runs(DATA / "hf-generate.json")
    assert (a.model, a.hardware, a.ttft_s, a.e2e_s) == ("llama-3.2-1b", "h200-sxm", 0.0182, 1.152)
    assert a.tpot_s == pytest.approx((1.152 - 0.0182) / 63)
    assert b.ttft_s == pytest.approx(0.0605) and b.tpot_s == pytest.approx((0.7085 - 0.0605) / 31)


def test_hf_generate_bad_times(tmp_path):
    data = json.loads((DATA / "hf-generate.json").read_text())
    data["runs"][1]["generate_s"] = [0.01]
    bad = tmp_path / "hf.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="hf.json: runs.1.generate_s: expected generate"):
        load_runs(bad)
    data["runs"][1]["prefill_s"] = [-1.0]
    bad.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="runs.1.prefill_s: expected times > 0"):
        load_runs(bad)


def test_native_rows_and_unknown_formats(tmp_path):
    rows = load_runs(DATA / "h100-truth-vllm.jsonl")
    assert len(rows) == 16 and rows[0].source == "h100-truth-vllm.jsonl:line 1"
    csv = tmp_path / "r.csv"
    csv.write_text("model,hardware,batch,prompt,output,tpot_s,tp\nllama-3.1-8b,h100-sxm,4,128,32,0.007,\n")
    (run,) = load_runs(csv)
    assert (run.batch, run.tpot_s, run.tp) == (4, 0.007, 1)
    other = tmp_path / "x.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(SpecError, match="x.json: not a known run format"):
        load_runs(other)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(SpecError, match="expected a .jsonl, .csv, .json or published .yaml"):
        load_runs(tmp_path / "x.txt")
