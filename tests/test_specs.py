import pytest

from simulator.errors import SpecError, UnknownNameError
from simulator.specs import registry

H100 = (registry.data_root() / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text()


@pytest.mark.parametrize("name", sorted(registry.hardware_index()))
def test_every_hardware_spec_validates(name):
    spec = registry.hardware(name)
    assert spec.name == name, "the file name and the spec's name must agree"
    assert spec.peak_flops(), "a device needs a dense peak"
    assert spec.provenance.sources


@pytest.mark.parametrize("name", sorted(registry.model_index()))
def test_every_model_spec_validates(name):
    display, arch, spec = registry.model(name)
    assert display == name and spec.source.startswith("https://")
    assert arch.q_dim > 0 and arch.num_heads % arch.num_kv_heads == 0


@pytest.mark.parametrize("name", sorted(registry.stack_index()))
def test_every_stack_validates(name):
    assert registry.stack(name).name == name


def _error(path) -> SpecError:
    with pytest.raises(SpecError) as info:
        registry.load_hardware_file(path)
    return info.value


@pytest.mark.parametrize("old,new,field,fragment", [
    ("  tdp: 700 W", "  tdp: 700 W\n  tdpp: 1 W", "power.tdpp", "unknown field"),
    ("bandwidth: 3.35 TB/s", "bandwidth: 3.35", "memory.0.bandwidth", "units are required"),
    ("bandwidth: 3.35 TB/s", "bandwidth: 3.35 TB", "memory.0.bandwidth", "bytes"),
    ("capacity: 80 GiB", "capacity: 0 GiB", "memory.0.capacity", "positive"),
    ("tdp: 700 W", "tdp: -700 W", "power.tdp", "positive"),
    ("  bf16: 989.4 TFLOP/s", "  bf17: 989.4 TFLOP/s", "peak.bf17", "bf16"),
    ("kind: gpu", "kind: gpux", "", "gpu"),
    ("name: h100-sxm\n", "", "name", "missing"),
])
def test_bad_hardware_spec_names_file_and_field(write_spec, old, new, field, fragment):
    assert old in H100
    path = write_spec(H100.replace(old, new, 1))
    err = _error(path)
    assert err.path == str(path)
    assert err.field.startswith(field)
    assert fragment in err.message
    assert "\n" not in str(err)


def test_malformed_yaml(write_spec):
    err = _error(write_spec("name: [unclosed\n"))
    assert "malformed YAML" in err.message


def test_non_mapping_yaml(write_spec):
    assert "mapping" in _error(write_spec("- a\n- b\n")).message


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError) as info:
        registry.hardware("h100-sxn")
    assert "h100-sxm" in info.value.suggestions


def test_model_config_typo_is_an_error(write_spec):
    text = (registry.data_root() / "model_specs" / "llama-3.1-8b.yaml").read_text()
    path = write_spec(text.replace("tie_word_embeddings", "tie_word_embedding"))
    with pytest.raises(SpecError) as info:
        registry.model(str(path))
    assert info.value.field == "config.tie_word_embedding"


def test_model_missing_field(write_spec):
    text = (registry.data_root() / "model_specs" / "llama-3.1-8b.yaml").read_text()
    path = write_spec("\n".join(line for line in text.splitlines() if "intermediate_size" not in line))
    with pytest.raises(SpecError) as info:
        registry.model(str(path))
    assert info.value.field == "config.intermediate_size" and "missing" in info.value.message


def test_raw_hf_config_json_is_accepted_with_unknown_fields(tmp_path):
    import json
    cfg = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
           "tie_word_embeddings": True, "some_future_field": {"x": 1}}
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    name, arch, spec = registry.model(str(folder / "config.json"))
    assert name == "my-model" and spec is None and arch.head_dim == 64


def test_derived_peaks_follow_the_unit_formulas():
    from simulator.specs.hardware import CpuCores, FpgaFabric, SystolicArrays
    from simulator.specs.base import Dtype
    cpu = CpuCores(cores=56, clock="2.0 GHz", vector_width_bits=512, fma_units_per_core=2,
                   vector_dtypes=[Dtype.fp32], matrix_ops_per_cycle_per_core={Dtype.bf16: 1024})
    peak = cpu.derived_peak()
    assert peak[Dtype.fp32] == pytest.approx(56 * 2e9 * 2 * 2 * 16)       # 7.17 TFLOP/s
    assert peak[Dtype.bf16] == pytest.approx(56 * 2e9 * 1024)             # 114.7 TFLOP/s
    tpu = SystolicArrays(arrays=4, dim=128, clock="1.5 GHz", ops_multiplier={Dtype.bf16: 1, Dtype.int8: 2})
    assert tpu.derived_peak()[Dtype.bf16] == pytest.approx(4 * 128 * 128 * 2 * 1.5e9)  # 196.6 TFLOP/s
    fpga = FpgaFabric(dsp_count=9024, clock="300 MHz", ops_per_dsp_per_cycle={Dtype.int8: 4})
    assert fpga.derived_peak()[Dtype.int8] == pytest.approx(9024 * 4 * 300e6)
