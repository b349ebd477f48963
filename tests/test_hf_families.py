"""Hugging Face families (issue 18): each family's built-in spec against the published total
and active parameter counts within 1%, the structure each family's config selects, the
checkpoint's quantization_config as the weight format, and unknown families named to the
nearest supported one."""
import json

import pytest

import simulator
from simulator.cli.main import main
from simulator.errors import SpecError
from simulator.graph.transformer import active_parameter_count, build, parameter_count
from simulator.specs import registry
from simulator.specs.hf_config import normalise
from simulator.specs.hf_quant import weight_format
from simulator.specs.quant import parse_weight_format

# family -> built-in specs (their published counts and sources are in model_specs/NAME.yaml)
FAMILY_SPECS = {
    "phi3": ["phi-3-mini-4k"], "gemma2": ["gemma-2-9b"], "gemma3_text": ["gemma-3-1b", "gemma-3-4b"],
    "olmo2": ["olmo-2-7b"], "falcon": ["falcon-7b", "falcon-40b"], "gpt2": ["gpt2"], "gpt_neox": ["gpt-neox-20b"],
    "deepseek_v2": ["deepseek-v2"], "gpt_oss": ["gpt-oss-20b", "gpt-oss-120b"], "llama4_text": ["llama-4-maverick"],
    "qwen3_moe": ["qwen3-235b-a22b"],          # qwen3-30b-a3b: tests/test_moe_mla.py
}
# gpt-oss's model card counts active parameters without the embedding table (it counts the unembedding)
ACTIVE_WITHOUT_EMBEDDING = {"gpt-oss-20b", "gpt-oss-120b"}
# active counts published to two digits ("21B" is 20.5B to 21.5B): within that rounding, else 1%
ROUNDED_ACTIVE = {"deepseek-v2": 0.5e9, "llama-4-maverick": 0.5e9}


@pytest.mark.parametrize("family,name", [(f, n) for f, names in FAMILY_SPECS.items() for n in names])
def test_family_matches_published_total_and_active(family, name):
    _, arch, spec = registry.model(name)
    assert arch.family == family
    graph = build(arch)
    assert parameter_count(graph) == pytest.approx(spec.published_params, rel=0.01)
    if spec.published_active_params:
        active = active_parameter_count(graph)
        if name in ACTIVE_WITHOUT_EMBEDDING:
            active -= graph.nodes["embed_tokens"]["params"]
        tolerance = max(0.01 * spec.published_active_params, ROUNDED_ACTIVE.get(name, 0.0))
        assert active == pytest.approx(spec.published_active_params, abs=tolerance)


def _arch(name: str, **changes):
    config = {**registry.model(name)[2].config, **changes}
    return normalise({k: v for k, v in config.items() if v is not None})


def test_falcon_old_decoder_is_multi_query_with_one_norm_new_decoder_has_kv_heads_and_two():
    old, new = registry.model("falcon-7b")[1], registry.model("falcon-40b")[1]
    assert (old.num_kv_heads, old.parallel_block, old.parallel_mlp_norm, old.tied_embeddings) == (1, True, False, True)
    assert (new.num_kv_heads, new.parallel_block, new.parallel_mlp_norm) == (8, True, True)
    assert "mlp_norm" in build(new) and "mlp_norm" not in build(old)
    sequential = _arch("falcon-7b", parallel_attn=False, multi_query=False)
    assert not sequential.parallel_block and sequential.num_kv_heads == 71
    assert "post_attention_norm" in build(sequential)


def test_gpt2_has_learned_positions_and_biases_neox_partial_rotary_and_two_norms():
    gpt2 = registry.model("gpt2")[1]
    assert (gpt2.positions, gpt2.learned_positions, gpt2.qkv_bias, gpt2.mlp_bias, gpt2.gated_mlp) == \
        ("learned", 1024, True, True, False)
    neox = registry.model("gpt-neox-20b")[1]
    assert neox.rotary_dim == 96 // 4 and neox.parallel_mlp_norm and neox.norm == "layernorm"


def test_gemma_norms_and_the_local_and_global_layers_of_gemma_and_gpt_oss():
    """transformers' default layer_types: Gemma 2 and gpt-oss alternate sliding and full layers
    (layer i full when i + 1 is even), Gemma 3 has one full layer in sliding_window_pattern (6)."""
    g2, g3 = registry.model("gemma-2-9b")[1], registry.model("gemma-3-1b")[1]
    assert g2.sandwich_norm and g3.sandwich_norm and g3.qk_norm and not g2.qk_norm and g2.tied_embeddings
    assert (g2.sliding_window, g2.global_layers, g2.local_layers) == (4096, 21, 21)
    assert (g3.sliding_window, g3.global_layers, g3.local_layers) == (512, 4, 22)          # layers 5, 11, 17, 23
    assert _arch("gemma-3-1b", sliding_window_pattern=1).sliding_window is None             # every layer full
    oss = registry.model("gpt-oss-20b")[1]
    assert (oss.sliding_window, oss.global_layers, oss.chunked_attention) == (128, 12, False)
    assert oss.attention_sinks and oss.router_bias and oss.expert_bias
    uniform = _arch("gpt-oss-20b", layer_types=["sliding_attention"] * 24)
    assert (uniform.sliding_window, uniform.global_layers) == (128, 0)
    assert _arch("gpt-oss-20b", layer_types=["full_attention"] * 24).sliding_window is None


def test_olmo2_norms_whole_q_and_k():
    graph = build(registry.model("olmo-2-7b")[1])
    assert graph.nodes["qk_norm"]["params"] == 4096 + 4096


def test_llama4_interleaves_dense_and_moe_layers():
    arch = registry.model("llama-4-maverick")[1]
    assert (arch.moe_layers, arch.ffn_size, arch.expert_ffn_size, arch.shared_ffn_size) == (24, 16384, 8192, 8192)
    text = registry.model("llama-4-maverick")[2].config["text_config"]
    with pytest.raises(SpecError) as info:
        normalise({"model_type": "llama4", "text_config": {**text, "moe_layers": [0, 2]}})
    assert info.value.field == "text_config.moe_layers"


def test_wrapper_errors_name_the_text_config_field(tmp_path, capsys):
    config = dict(registry.model("gemma-3-4b")[2].config)
    config["text_config"] = {**config["text_config"], "num_hidden_layers": "34"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["predict", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "text_config.num_hidden_layers" in err and "integer" in err


def test_a_wrapper_text_config_is_read_against_the_text_class_defaults():
    """gemma-3-4b's published text_config names six fields; the rest are Gemma3TextConfig's defaults."""
    arch = registry.model("gemma-3-4b")[1]
    assert (arch.num_heads, arch.num_kv_heads, arch.head_dim, arch.vocab_size) == (8, 4, 256, 262208)
    assert (arch.hidden_size, arch.num_layers, arch.tied_embeddings) == (2560, 34, True)


@pytest.mark.parametrize("config,expected", [
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}, "int4-g128"),
    ({"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": False}, "int4"),
    ({"quant_method": "gptq", "bits": 8, "group_size": 32}, "int8-g32"),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
        "num_bits": 4, "type": "int", "strategy": "group", "group_size": 128}}}}, "int4-g128"),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {
        "num_bits": 8, "type": "float", "strategy": "channel"}}}}, "fp8"),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {
        "num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16}}}}, "nvfp4"),
    ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}, "fp8"),
    ({"quant_method": "mxfp4"}, "mxfp4"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "int4-g64"),
])
def test_quantization_config_becomes_a_weight_format(config, expected):
    name = weight_format(config)
    assert name == expected
    parse_weight_format(name)                     # every name is one the workload accepts


@pytest.mark.parametrize("config,field", [
    ({"quant_method": "hqq"}, "quantization_config.quant_method"),
    ({"quant_method": "awq", "bits": 3, "group_size": 128}, "quantization_config.bits"),
    ({"quant_method": "compressed-tensors", "config_groups": {}}, "quantization_config.config_groups"),
])
def test_bad_quantization_config_names_its_field(config, field):
    with pytest.raises(SpecError) as info:
        weight_format(config)
    assert info.value.field == field


def test_awq_8b_is_sized_as_4_bit_unless_the_weight_dtype_overrides():
    """The layers' 6.98e9 weights x 4.125 bits (4-bit, one fp16 scale per 128) + the 16-bit embedding
    and LM head (2 x 128,256 x 4,096) = 5.70 GB (the checkpoint's files: 5.7 GB), not bf16's 16.1 GB."""
    awq = simulator.predict("llama-3.1-8b-awq", "h100-sxm", batch=1, prompt=128, output=2)
    assert awq.weight_dtype == "int4-g128"
    outer = 2 * 128256 * 4096
    assert awq.memory.weights_bytes == pytest.approx((8.0303e9 - outer) * 4.125 / 8 + outer * 2, rel=1e-3)
    full = simulator.predict("llama-3.1-8b-awq", "h100-sxm", batch=1, prompt=128, output=2, weight_dtype="bf16")
    assert full.memory.weights_bytes == pytest.approx(8.0303e9 * 2, rel=1e-3)
    assert simulator.predict("gpt-oss-20b", "h100-sxm", batch=1, prompt=128, output=2).weight_dtype == "mxfp4"


def test_cli_weight_dtype_overrides_the_checkpoint(capsys):
    assert main(["predict", "--model", "llama-3.1-8b-awq", "--format", "json", "--weight-dtype", "fp8"]) == 0
    assert json.loads(capsys.readouterr().out)["weight_dtype"] == "fp8"
    assert main(["predict", "--model", "llama-3.1-8b-awq", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["weight_dtype"] == "int4-g128"


@pytest.mark.parametrize("model_type,nearest", [("mllama", "llama"), ("phi", "phi3"), ("qwen2_vl", "qwen2"),
                                                ("falcon_mamba", "falcon"), ("gemma", "gemma2")])
def test_unknown_family_is_one_line_naming_the_nearest(tmp_path, capsys, model_type, nearest):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": model_type, "hidden_size": 64}))
    assert main(["predict", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model_type" in err and f"the nearest is {nearest} " in err


@pytest.mark.parametrize("command", ["compare", "roofline"])
def test_compare_and_roofline_use_the_checkpoint_format(capsys, command):
    assert main([command, "--model", "llama-3.1-8b-awq", "--hardware", "h100-sxm"]) == 0
    assert "weights int4-g128" in capsys.readouterr().out.splitlines()[0]


def test_refinedweb_configs_read_as_falcon():
    """The configs Falcon first shipped with (RefinedWebModel: 7B; RefinedWeb: 40B) use n_head, n_layer, n_head_kv."""
    old = normalise({"model_type": "RefinedWebModel", "hidden_size": 4544, "n_head": 71, "n_layer": 32,
                     "multi_query": True, "parallel_attn": True, "bias": False, "vocab_size": 65024})
    assert old == registry.model("falcon-7b")[1]
    new = normalise({"model_type": "RefinedWeb", "hidden_size": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60,
                     "parallel_attn": True, "bias": False, "vocab_size": 65024})
    assert new == registry.model("falcon-40b")[1]
