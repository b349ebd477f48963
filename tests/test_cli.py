import json
import subprocess
import sys

import pytest

from simulator.cli.main import main

FIELDS = {"ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "prefill_energy_j", "decode_step_energy_j",
          "energy_j", "tokens_per_j", "memory", "breakdown"}
MEMORY = {"weights_bytes", "kv_cache_bytes", "activation_bytes", "total_bytes", "capacity_bytes", "fits"}


def test_predict_json_has_the_documented_fields(capsys):
    assert main(["predict", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "8", "--prompt",
                 "1024", "--output", "128", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert FIELDS <= set(data) and MEMORY <= set(data["memory"])
    op = data["breakdown"][0]
    assert {"name", "share", "prefill_bound", "decode_bound"} <= set(op)


def test_default_predict_prints_a_table(capsys):
    assert main(["predict"]) == 0
    out = capsys.readouterr().out
    assert "time to first token" in out and "llama-3.1-8b on h100-sxm" in out


@pytest.mark.parametrize("argv,fragment", [
    (["predict", "--batch", "0"], "batch"),
    (["predict", "--prompt", "-5"], "prompt"),
    (["predict", "--batch", "x"], "invalid int"),
    (["predict", "--model", "lama-3.1-8b"], "closest: llama-3.1-8b"),
    (["predict", "--hardware", "nope.yaml"], "nope.yaml: file not found"),
    (["predict", "--weight-dtype", "fp7"], "weight_dtype"),
    (["predict", "--format", "xml"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, fragment):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in captured.err


def test_bad_spec_file_through_the_console_entry(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: gpu\nvendor: v\nproduct: p\npeak: {bf16: 1 TFLOP/s}\n"
                   "memory: [{name: m, capacity: 1 GB, bandwidth: 1 TB}]\nprovenance: {sources: [s], date: d}\n")
    proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", "predict", "--hardware", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"llmsim: error: {bad}: memory.0.bandwidth: expected a quantity in B/s "
                                   "(e.g. '3.35 TB/s'), got '1 TB' which is bytes")


def test_compare_says_why_a_device_cannot_hold_a_workload(capsys):
    """Groq chips (230 MB each) hold an 8B model only split 96 ways at batch 1; a batch of 8 x
    1024-token prompts needs more activation space per chip than any split leaves."""
    assert main(["compare", "--model", "llama-3.1-8b", "--hardware", "groq-lpu,h100-sxm", "--batch", "1",
                 "--prompt", "512"]) == 0
    out = capsys.readouterr().out
    assert "groq-lpu x96 (tp 32, pp 3)" in out and "does not fit" in out
    assert main(["compare", "--model", "llama-3.1-8b", "--hardware", "groq-lpu"]) == 0
    assert "prefill activations" in capsys.readouterr().out
