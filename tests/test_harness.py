"""The measurement harness as a package: imported without sys.path edits, its models built from
the simulator's Architecture (the sizes it recorded in the committed runs come out the same),
and its plan made without torch or a GPU."""
import json
import pathlib
import re
import tomllib

import pytest

from simulator.specs.measurement import load_e2e, measurement_root
from validation.harness import config as C

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "validation" / "harness" / "testdata"


def test_harness_is_an_installed_package():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {"validation", "validation.harness"} <= set(packages)


def test_no_sys_path_edits_between_package_and_harness():
    edit = re.compile(r"sys\.path\s*(\.(insert|append|extend)\b|\+?=)")
    for folder in ("simulator", "validation"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not edit.search(path.read_text()), path


def _recorded_models() -> list[dict]:
    """Each measured model as the harness recorded it in a committed GPU run (the harness's
    own config parser wrote these)."""
    models = {}
    for path in sorted(measurement_root().rglob("e2e-*.json")):
        for m in load_e2e(path).models:
            models.setdefault(m.name, m.model_dump())
    return list(models.values())


@pytest.mark.parametrize("recorded", _recorded_models(), ids=lambda m: m["name"])
def test_models_from_the_architecture_match_the_committed_runs(recorded):
    cfg = C.load_spec(recorded["name"])
    mine = cfg.to_json()
    for key in ("model_type", "hidden", "ffn", "layers", "heads", "kv_heads", "head_dim", "vocab", "tied_embeddings",
                "qkv_bias", "qk_norm", "rms_norm_eps", "rope_theta", "param_count", "weight_bytes",
                "kv_bytes_per_token", "matmul_shapes", "published_params"):
        assert mine[key] == recorded[key], key
    assert cfg.kernels_per_layer() == 23 + cfg.qkv_bias + 2 * cfg.qk_norm


@pytest.mark.parametrize("name", ["qwen2.5-0.5b", "tiny-mha"])
def test_testdata_specs_load(name):
    cfg = C.load_spec(TESTDATA / f"{name}.yaml")
    assert cfg.name == name and cfg.param_count() > 0
    assert cfg.qkv_bias == (name == "qwen2.5-0.5b") and (cfg.heads == cfg.kv_heads) == (name == "tiny-mha")


def test_tiny_mha_published_count_is_its_count():
    cfg = C.load_spec(TESTDATA / "tiny-mha.yaml")
    assert cfg.published_params == cfg.param_count()


@pytest.mark.parametrize("config, words", [
    (dict(model_type="gptj", n_embd=256, n_head=4, n_layer=2, vocab_size=100), "not a Llama-style decoder"),
    (dict(model_type="mixtral", hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, vocab_size=100, num_local_experts=4, num_experts_per_tok=2), "mixture-of-experts"),
    (dict(model_type="llama", hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
          vocab_size=100, mlp_bias=True), "biases"),
    (dict(model_type="mamba", hidden_size=256), "model_type"),    # gpt2 is a supported family now (issue 18)
])
def test_models_the_reference_stack_cannot_build_are_refused(config, words):
    with pytest.raises(C.UnsupportedModelError, match=words):
        C.config_from_dict("m", config)


def test_dry_run_plans_without_torch(capsys):
    from validation.harness import measure

    assert measure.main(["--dry-run", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "estimated total" in out and "llama-3.2-1b" in out


def test_cpu_path_inputs_without_torch():
    from validation.harness import cpu

    shapes, heads = C.micro_inputs(cpu.model_configs(["smollm-135m", "llama-3.2-1b"]))
    assert shapes[(576 + 2 * 192, 576)] == ["smollm-135m:qkv"] and (32, 8, 64) in heads


def test_written_documents_are_checked_against_the_schema(tmp_path):
    from validation.harness.jsonfile import write_json

    doc = {"schema": "llmsim-harness-e2e/1", "environment": {"harness_version": "t", "date_utc": "2026-01-01"},
           "points": [{"model": "m", "phase": "prefill", "batch": 1, "prompt_len": 8, "latency_median_s": 0.01}]}
    write_json(tmp_path / "e2e-x.json", doc)
    assert load_e2e(tmp_path / "e2e-x.json").points[0].length == 8
    del doc["points"][0]["prompt_len"]
    with pytest.raises(ValueError):
        write_json(tmp_path / "e2e-y.json", doc)
    assert not (tmp_path / "e2e-y.json").exists() and json.loads((tmp_path / "e2e-x.json").read_text())
