"""Issue 13's reproducers on the spec/config side: each bad input exits 2 with one line naming the
file and the field; and the checks behind them (registry loading, model configs, workloads,
hardware physics, check_workload) tested directly."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import yaml

from simulator.cli.main import main
from simulator.errors import FieldError, SpecError, WorkloadError
from simulator.specs import registry
from simulator.specs.consistency import check_workload, ep_problem, fallback_dtype, tp_problem
from simulator.specs.base import Dtype
from simulator.specs.workload import workload

MODELS = registry.data_root() / "model_specs"
H100 = (registry.data_root() / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text()


def _config(name: str) -> dict:
    return yaml.safe_load((MODELS / f"{name}.yaml").read_text())["config"]


def _write_config(tmp_path, name: str, **changes) -> str:
    """A raw config.json of a shipped model with some fields changed (None deletes one)."""
    config = _config(name)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def _exit_2(capsys, argv, *fragments) -> str:
    """main(argv) exits 2 with nothing on stdout and one line on stderr holding each fragment."""
    try:
        code = main(argv)
    except SystemExit as exc:            # argparse's own checks exit from inside main
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmsim: error: ") and "Traceback" not in captured.err, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("model,changes,field", [
    ("llama-3.1-8b", {"hidden_act": []}, "hidden_act"),
    ("llama-3.1-8b", {"model_type": []}, "model_type"),
    ("deepseek-v3", {"n_shared_experts": {"a": 1}}, "n_shared_experts"),
    ("llama-3.1-8b", {"num_hidden_layers": 99999999999999999999}, "num_hidden_layers"),
    ("llama-3.1-8b", {"vocab_size": 2**63}, "vocab_size"),
    ("mistral-7b", {"sliding_window": -5}, "sliding_window"),
    ("mixtral-8x7b", {"num_experts_per_tok": 9}, "num_experts_per_tok"),
    ("mixtral-8x7b", {"num_local_experts": 1}, "num_experts_per_tok"),
    ("llama-3.1-8b", {"num_key_value_heads": 7}, "num_key_value_heads"),
    ("llama-2-7b", {"hidden_size": 4097}, "num_attention_heads"),
    ("llama-3.1-8b", {"tie_word_embeddings": "false"}, "tie_word_embeddings"),
    ("deepseek-v3", {"n_shared_experts": -1}, "n_shared_experts"),
    ("deepseek-v3", {"first_k_dense_replace": -3}, "first_k_dense_replace"),
    ("deepseek-v3", {"first_k_dense_replace": 62}, "first_k_dense_replace"),
    ("llama-3.1-8b", {"intermediate_size": 0}, "intermediate_size"),
    ("llama-3.1-8b", {"hidden_size": -4096}, "hidden_size"),
    ("llama-3.1-8b", {"num_attention_heads": 32.0}, "num_attention_heads"),
    ("llama-3.1-8b", {"num_attention_heads": True}, "num_attention_heads"),
    ("llama-3.1-8b", {"max_position_embeddings": 0}, "max_position_embeddings"),
    ("qwen3-30b-a3b", {"mlp_only_layers": {"a": 1}}, "mlp_only_layers"),
    ("qwen3-30b-a3b", {"decoder_sparse_step": 0}, "decoder_sparse_step"),
    ("gpt-j-6b", {"n_head": 15}, "n_head"),
    ("opt-6.7b", {"enable_bias": "yes"}, "enable_bias"),
    ("llama-3.1-8b", {"use_sliding_window": 1}, "use_sliding_window"),
    ("llama-3.1-8b", {"head_dim": 2**40}, "head_dim"),
])
def test_bad_config_field_is_one_line_naming_file_and_field(tmp_path, capsys, model, changes, field):
    path = _write_config(tmp_path, model, **changes)
    line = _exit_2(capsys, ["predict", "--model", path], path, f": {field}: ")
    assert "nan" not in line


def test_bad_field_in_a_model_spec_names_the_config_path(write_spec, capsys):
    text = (MODELS / "llama-3.1-8b.yaml").read_text().replace("tie_word_embeddings: false",
                                                              "tie_word_embeddings: 'false'")
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        registry.model(str(path))
    assert info.value.path == str(path) and info.value.field == "config.tie_word_embeddings"
    assert "true or false" in info.value.message


def test_one_expert_with_top1_routing_is_valid_physics(tmp_path, capsys):
    """num_experts 1, top-1: every token visits the one expert; finite answers, no nan."""
    path = _write_config(tmp_path, "mixtral-8x7b", num_local_experts=1, num_experts_per_tok=1)
    assert main(["predict", "--model", path, "--hardware", "mi300x", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(math.isfinite(data[k]) and data[k] > 0 for k in ("ttft_s", "tpot_s", "energy_j"))
    assert data["memory"]["weights_bytes"] > 0


def test_experts_per_token_equal_to_experts_is_finite(tmp_path, capsys):
    path = _write_config(tmp_path, "mixtral-8x7b", num_experts_per_tok=8)
    assert main(["predict", "--model", path, "--hardware", "mi300x", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert math.isfinite(data["tpot_s"]) and data["tpot_s"] > 0


@pytest.mark.parametrize("content,fragment", [
    (bytes(range(256)) * 4, "binary or UTF-16"),
    ("name: h100-sxm\nkind: gpu\n".encode("utf-16"), "binary or UTF-16"),
    (b"name: \xc3\x28\n", "UTF-8"),
    (b"name: x\npeak: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "malformed YAML"),
    (b"a: 1\n" + b"#" * (4 * 2**20 + 1), "larger than 4 MiB"),
    (H100.replace("compute_units: 132", "compute_units: 99999999999999999999").encode(), "compute_units"),
])
def test_unreadable_hardware_file_is_one_line(write_spec, capsys, content, fragment):
    path = write_spec("")
    path.write_bytes(content)
    _exit_2(capsys, ["predict", "--hardware", str(path)], str(path), fragment)
    _exit_2(capsys, ["specs", "check", str(path)], str(path), fragment)


def test_deep_json_config_is_one_line(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _exit_2(capsys, ["predict", "--model", str(path)], str(path), "nested too deeply")


@pytest.mark.parametrize("text,fragment", [
    ('{"model_type": "llama", "hidden_size": NaN}', "NaN"),
    ('{"model_type": "llama", "hidden_size": Infinity}', "Infinity"),
    ('{"model_type": "llama", "hidden_size": 1' + "0" * 5000 + "}", "malformed JSON"),
    ("[1, 2]", "mapping"),
])
def test_json_constants_and_huge_integers_are_errors(tmp_path, capsys, text, fragment):
    path = tmp_path / "config.json"
    path.write_text(text)
    _exit_2(capsys, ["predict", "--model", str(path)], str(path), fragment)


def test_binary_spec_through_the_console_entry(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(bytes(range(256)))
    proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", "predict", "--hardware", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == f"llmsim: error: {path}: expected a UTF-8 text file, got a binary or UTF-16 file"


@pytest.mark.parametrize("old,new,field,fragment", [
    ("idle: 70 W", "idle: 900 W", "power.idle", "at most the TDP"),
    ("compute_units: 132", "compute_units: 0", "compute_units", "greater than 0"),
    ("compute_units: 132", "compute_units: -1", "compute_units", "greater than 0"),
    ("bandwidth: 3.35 TB/s", "bandwidth: nan TB/s", "memory.0.bandwidth", "B/s"),
    ("bandwidth: 3.35 TB/s", "bandwidth: -3.35 TB/s", "memory.0.bandwidth", "positive"),
    ("  bf16: 989.4 TFLOP/s", "  bf16: 0 TFLOP/s", "peak.bf16", "positive"),
    ("  bf16: 989.4 TFLOP/s", "  bf16: []", "peak.bf16", "list"),
])
def test_physically_impossible_hardware(write_spec, old, new, field, fragment):
    assert old in H100, old
    path = write_spec(H100.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        registry.load_hardware_file(path)
    assert info.value.path == str(path) and info.value.field.startswith(field), info.value
    assert fragment in info.value.message


def test_derived_peak_of_zero_units_is_an_error(write_spec):
    text = (registry.data_root() / "hardware_specs" / "fpga" / "u280.yaml").read_text()
    data = yaml.safe_load(text)
    assert "fabric" in data
    data["fabric"]["dsp_count"] = 0
    data.pop("peak", None)
    data["fabric"].pop("ai_engine_count", None)
    path = write_spec(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        registry.load_hardware_file(path)
    assert info.value.field.startswith("peak")


@pytest.mark.parametrize("kwargs,field", [
    ({"output": 99999999999999999999}, "output"), ({"batch": 2**63}, "batch"), ({"prompt": True}, "prompt"),
    ({"batch": 2.0}, "batch"), ({"tp": "2"}, "tp"), ({"acceptance": float("nan")}, "acceptance"),
    ({"batch": 2**40, "prompt": 2**40}, "batch"), ({"draft_tokens": 0}, "draft_tokens"),
    ({"batch": 3, "dp": 2}, "dp"), ({"batch": 4, "microbatches": 3}, "microbatches"),
])
def test_workload_ranges_are_structured_errors(kwargs, field):
    with pytest.raises(WorkloadError) as info:
        workload(**kwargs)
    assert info.value.field == field and info.value.path == "<arguments>"
    assert str(info.value).startswith(f"<arguments>: {field}: ") and "\n" not in str(info.value)


def test_huge_output_with_a_draft_model_is_one_line(capsys):
    _exit_2(capsys, ["predict", "--output", "99999999999999999999", "--draft-model", "llama-3.2-1b"], "output")


def test_pipeline_longer_than_the_model_is_one_line(capsys):
    _exit_2(capsys, ["predict", "--model", "llama-3.1-8b", "--pp", "33"], "pp", "32 layers")


def _arch(name):
    return registry.model(name)[1]


def test_check_workload_impossible_cases():
    h100 = registry.hardware("h100-sxm")
    llama = _arch("llama-3.1-8b")
    with pytest.raises(WorkloadError) as info:
        check_workload(workload(pp=33), llama, h100)
    assert info.value.field == "pp"
    with pytest.raises(WorkloadError) as info:
        check_workload(workload(tp=3), llama, h100)
    assert info.value.field == "tp" and "divide" in info.value.message
    with pytest.raises(WorkloadError) as info:
        check_workload(workload(ep=2), llama, h100)
    assert info.value.field == "ep"
    with pytest.raises(WorkloadError) as info:
        check_workload(workload(tp=2), llama, registry.hardware("apple-m4-max"))
    assert info.value.field == "tp" and "interconnect" in info.value.message


def test_check_workload_notes():
    h100 = registry.hardware("h100-sxm")
    llama = _arch("llama-3.1-8b")
    assert check_workload(workload(), llama, h100) == []
    assert check_workload(workload(activation_dtype="fp4"), llama, h100) == [
        "fp4 has no dense peak on h100-sxm: runs at fp8's"]
    notes = check_workload(workload(pp=3, batch=8), llama, h100)
    assert any("pp 3 does not divide the 32 layers" in n for n in notes)
    long = check_workload(workload(prompt=200_000), llama, h100, "llama-3.1-8b")
    assert any("max_position_embeddings (131072)" in n for n in long)


def test_one_tp_rule_for_every_caller():
    llama, mixtral, deepseek = _arch("llama-3.1-8b"), _arch("mixtral-8x7b"), _arch("deepseek-v3")
    assert tp_problem(llama, 1) is None and tp_problem(llama, 8) is None and tp_problem(llama, 16) is None
    assert "does not divide" in tp_problem(llama, 3)
    assert tp_problem(deepseek, 8) is None          # MLA: the latent cache is replicated
    assert ep_problem(mixtral, 8) is None and ep_problem(mixtral, 3) and ep_problem(llama, 2)
    from simulator.graph.transformer import shard
    with pytest.raises(WorkloadError) as info:
        shard(llama, 3)
    assert info.value.field == "tp"


def test_fallback_dtype():
    peaks = {Dtype.bf16: 1.0, Dtype.fp8: 2.0, Dtype.fp32: 0.5}
    assert fallback_dtype(peaks, Dtype.fp4) == Dtype.fp8
    assert fallback_dtype(peaks, Dtype.fp16) == Dtype.bf16
    assert fallback_dtype({Dtype.int8: 1.0}, Dtype.bf16) is None


def test_errors_carry_their_parts():
    err = SpecError("f.yaml", "memory.0.capacity", "expected a positive quantity")
    assert (err.path, err.field, err.expected) == ("f.yaml", "memory.0.capacity", "expected a positive quantity")
    assert str(err) == "f.yaml: memory.0.capacity: expected a positive quantity"
    assert str(SpecError("f.yaml", "", "file not found")) == "f.yaml: file not found"
    assert isinstance(WorkloadError("tp", "x"), FieldError) and str(WorkloadError("tp", "x")) == "<arguments>: tp: x"
    import pickle
    again = pickle.loads(pickle.dumps(WorkloadError("tp", "x")))
    assert (type(again), again.field, str(again)) == (WorkloadError, "tp", "<arguments>: tp: x")


def test_caches_follow_the_files(tmp_path):
    """A spec rewritten in place, a new spec in a folder: no cache_clear needed."""
    path = tmp_path / "my-gpu.yaml"
    path.write_text(H100.replace("name: h100-sxm", "name: my-gpu"))
    assert registry.hardware(str(path)).power.tdp_w == 700
    path.write_text(H100.replace("name: h100-sxm", "name: my-gpu").replace("tdp: 700 W", "tdp: 650 W"))
    os.utime(path, ns=(1, 1))                 # even with an old mtime: the size and ctime changed
    assert registry.hardware(str(path)).power.tdp_w == 650
    stack = (registry.data_root() / "hardware_specs" / "stacks" / "ideal.yaml").read_text()
    spath = tmp_path / "s.yaml"
    spath.write_text(stack)
    first = registry.stack(str(spath))
    assert registry.stack(str(spath)) is first          # unchanged: cached
    spath.write_text(stack.replace("name: ideal", "name: ideal2"))
    assert registry.stack(str(spath)).name == "ideal2"
    registry.hardware.cache_clear()                     # old callers still work
    registry.hardware_index.cache_clear()
    registry.stack.cache_clear()


def test_nesting_beyond_the_limit_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "rope_scaling": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}")
    with pytest.raises(SpecError) as info:
        registry.read_yaml(path)
    assert info.value.field.startswith("rope_scaling.a.a") and "nested too deeply" in info.value.message


def test_yaml_is_parsed_by_the_c_loader_when_built():
    assert registry._LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert issubclass(registry._LOADER, (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def test_a_newline_in_a_field_name_stays_on_one_line(write_spec, capsys):
    path = write_spec('name: x\nkind: gpu\n"ty\\npo": 1\n')
    _exit_2(capsys, ["predict", "--hardware", str(path)], str(path))


LAUGHS = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                 for p, a in zip(["", *"abcdefgh"], "abcdefghi"))    # 9^9 strings through aliases


@pytest.mark.parametrize("tail", [
    "name: x\nkind: gpu\nvendor: *i\nproduct: p\npeak: {bf16: *i}\nmemory: *i\nprovenance: {sources: *i, date: d}\n",
    "name: x\nsource: s\npublished_params: 1e9\nconfig: {model_type: llama, hidden_size: *i, rope_scaling: *i}\n",
])
def test_aliased_yaml_does_not_expand(write_spec, capsys, tail):
    """A 'billion laughs' file is walked and quoted once per node, not per path (bounded time)."""
    import time
    path = write_spec(LAUGHS + tail)
    start = time.monotonic()
    for argv in (["specs", "check", str(path)], ["predict", "--hardware", str(path)], ["predict", "--model", str(path)]):
        _exit_2(capsys, argv, str(path))
    assert time.monotonic() - start < 30


def test_a_node_that_contains_itself_is_an_error(write_spec, capsys):
    path = write_spec("name: &a [1, *a]\n")
    _exit_2(capsys, ["predict", "--hardware", str(path)], str(path), "contains it")


def test_aliases_that_expand_past_the_limit_are_refused(write_spec):
    path = write_spec(LAUGHS + "name: *i\nkind: *i\n")
    with pytest.raises(SpecError) as info:
        registry.read_yaml(path)
    assert "once YAML aliases are expanded" in info.value.message


def test_a_misspelt_operator_kind_in_a_stack_is_an_error(write_spec):
    text = (registry.data_root() / "hardware_specs" / "stacks" / "pytorch-ref.yaml").read_text()
    assert "    norm: " in text
    path = write_spec(text.replace("    norm: ", "    nrom: ", 1))
    with pytest.raises(SpecError) as info:
        registry.stack(str(path))
    assert info.value.field.endswith("_by_kind.nrom") and "'norm'" in info.value.message


def test_a_grouped_gemm_tile_range_must_be_a_range(write_spec):
    text = (registry.data_root() / "hardware_specs" / "stacks" / "pytorch-ref.yaml").read_text()
    assert "      group_tile_min: 128\n      group_tile_max: 256" in text
    path = write_spec(text.replace("      group_tile_min: 128\n", "      group_tile_min: 512\n", 1))
    with pytest.raises(SpecError) as info:
        registry.stack(str(path))
    assert "expert_gemm" in info.value.field and "group_tile_max (256)" in info.value.message


def test_a_long_quantity_string_is_refused_at_once(write_spec):
    """The quantity pattern runs in linear time and long strings stop before it (no regex hang)."""
    import time
    path = write_spec(H100.replace("bandwidth: 3.35 TB/s", "bandwidth: '1 T" + " " * 1_000_000 + "B/s'", 1))
    start = time.monotonic()
    with pytest.raises(SpecError) as info:
        registry.load_hardware_file(path)
    assert info.value.field == "memory.0.bandwidth" and "character string" in info.value.message
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("line, field", [("collective_bandwidth_fraction: 1.5", "collective_bandwidth_fraction"),
                                         ("weight_energy_per_byte: -1 J/B", "weight_energy_per_byte")])
def test_a_profile_share_or_energy_out_of_range_names_its_field(write_spec, line, field):
    text = (registry.data_root() / "hardware_specs" / "stacks" / "pytorch-ref.yaml").read_text()
    anchor = "    decode_step_overhead: "
    assert anchor in text
    path = write_spec(text.replace(anchor, f"    {line}\n{anchor}", 1))
    with pytest.raises(SpecError) as info:
        registry.stack(str(path))
    assert field in info.value.field
