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
    """Each measured model (and linear dtype) as the harness recorded it in a committed GPU run
    (the harness's own config parser wrote these)."""
    models = {}
    for path in sorted(measurement_root().rglob("e2e-*.json")):
        for m in load_e2e(path).models:
            d = m.model_dump()
            models.setdefault((d["name"], d.get("linear_dtype", "bf16")), d)
    return list(models.values())


@pytest.mark.parametrize("recorded", _recorded_models(), ids=lambda m: f"{m['name']}-{m.get('linear_dtype', 'bf16')}")
def test_models_from_the_architecture_match_the_committed_runs(recorded):
    cfg = C.load_spec(recorded["name"]).variant(recorded.get("linear_dtype", "bf16"))
    mine = cfg.to_json()
    for key in ("model_type", "hidden", "ffn", "layers", "heads", "kv_heads", "head_dim", "vocab", "tied_embeddings",
                "qkv_bias", "qk_norm", "rms_norm_eps", "rope_theta", "param_count", "weight_bytes",
                "kv_bytes_per_token", "matmul_shapes", "published_params"):
        assert mine[key] == recorded[key], key
    base = 23 + cfg.qkv_bias + 2 * cfg.qk_norm
    assert cfg.kernels_per_layer() == base + 32 * cfg.fp8 + (29 - 4) * cfg.is_moe


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
    (dict(model_type="qwen2_moe", hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, vocab_size=100, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
          shared_expert_intermediate_size=128), "shared experts"),
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


# ---------------------------------------------------------------- variants: MoE, FP8, long context


@pytest.mark.parametrize("name", ["mixtral-8x7b", "qwen3-30b-a3b"])
def test_moe_models_are_built_with_their_published_sizes(name):
    from simulator.specs import registry

    cfg = C.load_spec(name)
    _, _, spec = registry.model(name)
    assert cfg.is_moe and abs(cfg.param_count() / spec.published_params - 1) < 0.01
    assert abs(cfg.active_param_count() / spec.published_active_params - 1) < 0.03
    e, n, k = cfg.expert_shapes()["experts_gate_up"]
    assert (e, n, k) == (cfg.experts, 2 * cfg.expert_ffn, cfg.hidden) and "router" in cfg.matmul_shapes()
    with pytest.raises(C.UnsupportedModelError, match="FP8"):
        cfg.variant("fp8")


def test_fp8_variant_halves_the_linear_weights_only():
    """About 70 GB of FP8 weights for a 70B model (reference-stack.md): linear weights 1 byte,
    embedding and LM head still bf16; the KV cache does not change."""
    bf16 = C.load_spec("llama-3.1-70b")
    fp8 = bf16.variant("fp8")
    assert 68e9 < fp8.weight_bytes() < 74e9 and 0.5 < fp8.weight_bytes() / bf16.weight_bytes() < 0.53
    assert fp8.kv_bytes_per_token() == bf16.kv_bytes_per_token() and fp8.param_count() == bf16.param_count()
    assert fp8.to_json()["linear_dtype"] == "fp8" and bf16.linear_dtype == "bf16"
    with pytest.raises(C.UnsupportedModelError, match="linear_dtype"):
        bf16.variant("int4")


def _planned(suite_name, gpu=None):
    from validation.harness import points as P

    suite, gpu = P.SUITES[suite_name], gpu or P.H200
    out = {}
    for name in suite.models:
        cfg = C.load_spec(name).variant(suite.linear_dtype)
        out[name] = P.plan_model(cfg, gpu, gpu.free_bytes - cfg.weight_bytes(), False, suite)[0]
    return out


@pytest.mark.parametrize("suite", ["fp8", "long", "moe"])
def test_each_new_suite_plans_at_least_40_points_of_both_phases_on_an_h200(suite):
    planned = _planned(suite)
    pts = [p for ps in planned.values() for p in ps]
    assert len(pts) >= 40 and {p.phase for p in pts} == {"prefill", "decode"}
    assert all(ps for ps in planned.values()), "every model of the suite keeps points"


def test_the_dense_suite_is_the_default_grid():
    planned = _planned("dense")
    assert sum(len(ps) for ps in planned.values()) == 264          # README: 264 points on an H200
    assert max(p.length for p in planned["llama-3.2-1b"]) == 8192


def test_long_suite_reaches_128k_cached_positions_within_memory():
    from validation.harness import points as P

    planned = _planned("long")
    one_b = {(p.batch, p.length) for p in planned["llama-3.2-1b"] if p.phase == "decode"}
    assert (1, 131072) in one_b and all(p.mem_bytes <= P.H200.free_bytes for ps in planned.values() for p in ps)
    assert {p.length for p in planned["llama-3.1-8b"] if p.phase == "prefill"} == {16384, 32768, 65536}
    assert P.SUITES["long"].max_length(C.load_spec("llama-3.2-1b")) == 131073


def test_moe_decode_reads_only_the_experts_its_tokens_touch():
    from validation.harness import points as P

    cfg = C.load_spec("mixtral-8x7b")
    experts = 2 * cfg.layers * sum(e * n * k for e, n, k in cfg.expert_shapes().values())
    one = P.weight_bytes_read(cfg, 1)                     # one token: its top-2 of 8 experts
    assert one == pytest.approx(cfg.weight_bytes() - experts * 6 / 8, rel=1e-9)
    assert P.weight_bytes_read(cfg, 4096) == pytest.approx(cfg.weight_bytes(), rel=1e-6)


def test_the_three_new_suites_fit_one_device_call():
    from validation.harness import measure
    from validation.harness import points as P

    class Args:
        suite, models, quick, spec_dir = "fp8,long,moe", None, False, str(measure.DEFAULT_SPEC_DIR)

    items, problems = measure.resolve_items(Args)
    assert not problems and len(items) == 7
    _, total = P.estimate_run(items, P.H200, False, measure.energy_per_item(False, len(items)), micro=False)
    assert 200 < total <= 540 - measure.END_RESERVE_S


def test_an_unknown_suite_is_one_line_and_exit_2(capsys):
    from validation.harness import measure

    assert measure.main(["--dry-run", "--suite", "dense,sparse"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--suite" in err[0] and "sparse" in err[0]


def test_points_record_the_precisions_the_simulator_predicts_with():
    from validation.harness import points as P
    from validation.harness.e2e import point_precision

    fp8 = point_precision(P.SUITES["fp8"], C.load_spec("llama-3.1-8b").variant("fp8"))
    assert fp8 == dict(suite="fp8", dtype="fp8", weight_dtype="fp8", activation_dtype="fp8", kv_dtype="bf16")
    moe = point_precision(P.SUITES["moe"], C.load_spec("mixtral-8x7b"))
    assert moe["suite"] == "moe" and moe["weight_dtype"] == moe["kv_dtype"] == "bf16"


# ---------------------------------------------------------------- the torch parts (skipped without torch)


def test_moe_mlp_equals_a_loop_over_each_tokens_experts():
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("this torch has no _grouped_mm")
    from validation.harness.moe import moe_mlp

    g = torch.Generator().manual_seed(0)
    tokens, hidden, experts, top_k, ffn = 13, 64, 6, 2, 32
    h = torch.randn(tokens, hidden, generator=g).bfloat16()
    wr = torch.randn(experts, hidden, generator=g).bfloat16()
    wgu = (0.1 * torch.randn(experts, 2 * ffn, hidden, generator=g)).bfloat16()
    wd = (0.1 * torch.randn(experts, hidden, ffn, generator=g)).bfloat16()
    out = moe_mlp(h, wr, wgu, wd, top_k).double()
    hd = h.double()
    top, ids = (hd @ wr.double().t()).topk(top_k, dim=-1)
    weights = top.softmax(dim=-1)
    ref = torch.zeros_like(hd)
    for t in range(tokens):
        for j in range(top_k):
            gu = wgu[ids[t, j]].double() @ hd[t]
            ref[t] += weights[t, j] * (wd[ids[t, j]].double() @ (torch.nn.functional.silu(gu[:ffn]) * gu[ffn:]))
    assert ((out - ref).norm() / ref.norm()).item() < 0.02


def test_fp8_linear_is_the_matmul_within_e4m3_rounding():
    torch = pytest.importorskip("torch")
    from validation.harness.fp8 import E4M3_MAX, fp8_linear, quantize_rowwise, quantize_weight

    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 64, generator=g).bfloat16()
    w = torch.randn(48, 64, generator=g).bfloat16()
    try:
        y = fp8_linear(x, *quantize_weight(w))
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"this torch has no rowwise _scaled_mm here: {exc}")
    ref = x.double() @ w.double().t()
    assert y.dtype == torch.bfloat16 and 0 < ((y.double() - ref).norm() / ref.norm()).item() < 0.06
    xq, sx = quantize_rowwise(x)
    assert xq.dtype == torch.float8_e4m3fn and sx.shape == (9, 1)
    assert torch.allclose(xq.float().abs().amax(dim=-1), torch.full((9,), E4M3_MAX))


@pytest.mark.parametrize("variant", ["bf16", "fp8", "moe"])
def test_decode_after_prefill_matches_the_longer_prefill_on_the_cpu(variant):
    torch = pytest.importorskip("torch")
    from validation.harness.model import self_check, tiny_config

    try:
        check = self_check(tiny_config(variant), device="cpu", dtype=torch.float32 if variant == "bf16" else None)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"{variant} layers do not run on this torch's CPU build: {exc}")
    assert check["finite"] and check["argmax_equal"] and check["logits_rel_err"] < 1e-2


# ---------------------------------------------------------------- the files' per-part precisions


def _e2e_doc(**point) -> dict:
    return {"schema": "llmsim-harness-e2e/1", "environment": {"harness_version": "t", "date_utc": "2026-01-01"},
            "points": [{"model": "llama-3.1-8b", "phase": "decode", "batch": 4, "context_len": 512,
                        "latency_median_s": 0.01, **point}]}


def test_precisions_default_to_the_runs_one_dtype(tmp_path):
    """Files before the per-part fields: weights, activations and KV all in ``dtype``."""
    path = tmp_path / "e2e-old.json"
    path.write_text(json.dumps(_e2e_doc(dtype="fp32")))
    point = load_e2e(path).points[0]
    assert point.precisions == ("fp32", "fp32", "fp32") and point.suite is None


def test_an_fp8_point_names_its_parts_and_is_predicted_with_them(tmp_path):
    from simulator.accuracy.measured import Point, load_points
    from simulator.specs.base import Dtype

    path = tmp_path / "h200-sxm" / "e2e-x.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_e2e_doc(suite="fp8", dtype="fp8", weight_dtype="fp8", activation_dtype="fp8",
                                        kv_dtype="bf16")))
    (point,) = load_points(tmp_path)
    assert isinstance(point, Point) and point.suite == "fp8"
    assert point.precisions == (Dtype.fp8, Dtype.fp8, Dtype.bf16)
    assert "fp8" in point.label
    from dataclasses import replace

    from simulator.accuracy.measured import predict_point
    from simulator.api import prepare
    from simulator.engine.predict import evaluate
    from simulator.specs.workload import workload

    wanted = evaluate(prepare("llama-3.1-8b", "h200-sxm", "pytorch-ref", Dtype.fp8, Dtype.fp8, Dtype.bf16),
                      workload(batch=4, prompt=512, output=2), require_fit=False).tpot_s
    assert predict_point(point, "pytorch-ref") == pytest.approx(wanted, rel=1e-12)
    assert predict_point(replace(point, kv_dtype="fp8"), "pytorch-ref") != pytest.approx(wanted, rel=1e-6)
