"""Prediction.confidence: the profile used and why, calibrated or not, extrapolation reasons,
and error bands taken from the committed validation residuals (issue 14, item 4)."""
import json

import numpy as np
import pytest

import simulator
from simulator.accuracy import bands as B
from simulator.accuracy.confidence import Residuals
from simulator.accuracy.measured import load_points, predict_point
from simulator.api import prepare
from simulator.cli.main import main
from simulator.engine.predict import evaluate
from simulator.explore.whatif import Factors, scale
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.fit_facts import differences, digest
from simulator.specs.workload import workload

BF16 = Dtype.bf16


def _predict(hardware="h100-sxm", **w):
    scenario = {"batch": 8, "prompt": 1024, "output": 128, **w}
    return simulator.predict(model="llama-3.1-8b", hardware=hardware, **scenario)


def _half_widths(c):
    return c.error_band.ttft.half_width, c.error_band.tpot.half_width


def test_predict_json_carries_confidence(capsys):
    assert main(["predict", "--format", "json"]) == 0
    c = json.loads(capsys.readouterr().out)["confidence"]
    assert c["calibrated"] is True and c["extrapolated"] == []
    assert "h100-sxm" in c["profile"] and "fitted on h100-sxm" in c["profile"]
    band = c["error_band"]
    assert 0 < band["ttft"]["low"] <= band["ttft"]["high"] and 0 < band["tpot"]["low"] <= band["tpot"]["high"]
    assert band["coverage"] == pytest.approx(0.9) and "n=" in band["source"]


def test_the_table_prints_the_band_and_the_reasons(capsys):
    assert main(["predict", "--prompt", "65536", "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "confidence: TTFT ±" in out and "TPOT ±" in out
    assert "extrapolated: decode attention at 65,662 cached positions; microbenchmarks reach 8,192" in out


def test_a_scenario_beyond_the_measured_range_says_why_and_widens():
    inside, beyond = _predict().confidence, _predict(batch=1, prompt=65536).confidence
    assert inside.extrapolated == []
    reasons = " | ".join(beyond.extrapolated)
    assert "prefill attention over 65,536 tokens; attention microbenchmarks reach 8,192" in reasons
    assert "65,536 tokens (batch x prompt); GEMM microbenchmarks reach 16,384 rows" in reasons
    assert all(w > v for w, v in zip(_half_widths(beyond), _half_widths(inside)))
    assert beyond.error_band.ttft.low < 1 < beyond.error_band.ttft.high      # either way


def test_configuration_reasons_dtype_parallelism_and_moe():
    c = _predict(weight_dtype="fp8", activation_dtype="fp8", tp=2).confidence
    assert "fp8 compute on a profile fitted on bf16 microbenchmarks" in c.extrapolated
    assert "fp8 weights: the validated runs of h100-sxm are bf16" in c.extrapolated
    assert "tensor parallelism (tp 2): the validated runs are single-device" in c.extrapolated
    def moe(hardware):
        return simulator.predict(model="mixtral-8x7b", hardware=hardware, batch=8, prompt=512, output=64).confidence

    assert any(r.startswith("mixture of experts") for r in moe("h100-sxm").extrapolated)   # no MoE run measured
    h200 = moe("h200-sxm")                # MoE runs validated and grouped GEMMs among its microbenchmarks
    assert not any(r.startswith("mixture of experts") for r in h200.extrapolated)
    assert "(bf16-moe)" in h200.error_band.source


def test_an_uncalibrated_device_says_so_with_a_wider_band():
    fitted, mi300x = _predict().confidence, _predict("mi300x").confidence
    assert mi300x.calibrated is False and "not fitted on this device" in mi300x.profile
    assert all(u > f for u, f in zip(_half_widths(mi300x), _half_widths(fitted)))
    assert "unfitted gpu profile on h100-sxm, h200-sxm" in mi300x.error_band.source


def test_a_class_never_measured_carries_an_assumed_band_and_says_so():
    c = _predict("tpu-v5e").confidence
    assert c.calibrated is False and "no measured tpu device" in c.error_band.assumption
    gpu = _predict("mi300x").confidence
    assert all(t >= g for t, g in zip(_half_widths(c), _half_widths(gpu)))


def test_a_renamed_copy_with_another_bandwidth_does_not_get_the_fitted_profile(tmp_path):
    text = (registry.hardware_index()["h100-sxm"]).read_text()
    assert "3.35 TB/s" in text
    mine = tmp_path / "my-h100.yaml"
    mine.write_text(text.replace("3.35 TB/s", "4.0 TB/s"))
    c = _predict(str(mine)).confidence
    assert c.calibrated is False
    assert "pytorch-ref default profile" in c.profile
    assert "not those h100-sxm's entry was fitted on" in c.profile and "4 TB/s, not 3.35 TB/s" in c.profile
    same = tmp_path / "same-h100.yaml"
    same.write_text(text.replace("3.35 TB/s", "3350 GB/s"))        # the same fact in other units
    assert _predict(str(same)).confidence.calibrated is True


def test_a_whatif_copy_keeps_the_fitted_profile_and_is_named():
    h100 = registry.hardware("h100-sxm")
    copy = scale(h100, Factors(bandwidth=2))
    prep = prepare("llama-3.1-8b", copy, "pytorch-ref", BF16, BF16, BF16)
    assert prep.choice.entry == "devices.h100-sxm"
    assert prep.rates.profile == registry.stack("pytorch-ref").devices["h100-sxm"]
    c = _predict(copy).confidence
    assert c.calibrated is False and "what-if copy of h100-sxm (bandwidth x2)" in c.profile
    assert all(w >= v for w, v in zip(_half_widths(c), _half_widths(_predict().confidence)))


def test_profile_from_borrows_by_name_and_says_so():
    prep = prepare("llama-3.1-8b", "mi300x", "pytorch-ref", BF16, BF16, BF16, profile_from="h100-sxm")
    assert prep.choice.entry == "devices.h100-sxm" and not prep.choice.calibrated
    assert "borrowed from h100-sxm" in prep.choice.why


def test_the_ideal_stack_has_no_band():
    c = _predict(stack="ideal").confidence
    assert c.error_band is None and "speed-of-light" in c.profile


def test_another_stack_uses_its_published_residuals():
    c = _predict(stack="trtllm").confidence
    assert "published trtllm runs" in c.error_band.source and c.error_band.assumption


def test_fit_facts_name_what_differs_and_the_digest_follows_them():
    h100, h200 = registry.hardware("h100-sxm"), registry.hardware("h200-sxm")
    assert differences(h100, h100) == [] and digest(h100) != digest(h200)
    diffs = " ".join(differences(h200, h100))
    assert "bandwidth" in diffs and "capacity" in diffs
    assert registry.stack("pytorch-ref").devices["h100-sxm"].fitted_for == digest(h100)


def test_a_band_is_stated_on_the_measured_value():
    """A prediction 25% high (r = +0.25) means measured = predicted / 1.25 = 0.8 of it."""
    band = Residuals(-0.2, 0.25, 10, "x").band()
    assert band.low == pytest.approx(0.8) and band.high == pytest.approx(1.25)
    assert band.half_width == pytest.approx(0.25)
    one_sided = Residuals(0.0, 0.25, 10, "x")               # measured 0.8-1.0 of it: half-width 0.2
    sym = one_sided.symmetric().band()                       # either way: measured in [p / 1.2, 1.2 p]
    assert sym.high == pytest.approx(1.2) and sym.low == pytest.approx(1 / 1.2)


@pytest.mark.parametrize("hardware", ["h100-sxm", "intel-xeon-2c-vm"])
def test_the_bands_cover_the_validated_points(hardware):
    """Each validated latency point's measured value lies inside the band its own scenario gets
    for at least 85% of the points (the bands hold the middle 90% of each group)."""
    points = [p for p in load_points() if p.hardware == hardware and p.metric == "latency"]
    inside = []
    for p in points[::3]:
        prep = prepare(p.model, hardware, "pytorch-ref", Dtype(p.dtype), Dtype(p.dtype), Dtype(p.dtype))
        w = workload(batch=p.batch, prompt=p.length, output=1 if p.phase == "prefill" else 2,
                     weight_dtype=p.dtype, activation_dtype=p.dtype, kv_dtype=p.dtype)
        c = evaluate(prep, w, require_fit=False).confidence
        band = c.error_band.ttft if p.phase == "prefill" else c.error_band.tpot
        assert not [r for r in c.extrapolated if r.startswith(p.phase)], (p.label, c.extrapolated)
        predicted = predict_point(p, "pytorch-ref")
        inside.append(predicted * band.low <= p.measured <= predicted * band.high)
    assert np.mean(inside) >= 0.85


def test_the_committed_bands_are_current():
    """validation/measurements/bands.json is what the committed runs give now (python -m tools.bands)."""
    fresh, committed = B.derive(), B.load()
    assert fresh.keys() == committed.keys()
    assert json.loads(json.dumps(fresh)) == committed


def test_a_device_fitted_but_never_validated_gets_the_fitted_devices_band_as_an_assumption():
    """Rule 6: an entry fitted on this very spec, with no validated runs of the device."""
    st = registry.stack("pytorch-ref")
    mi300x = registry.hardware("mi300x")
    own = st.devices["h100-sxm"].model_copy(update={"fitted_for": digest(mi300x)})
    mine = st.model_copy(update={"devices": {**st.devices, "mi300x": own}})
    c = simulator.predict(model="llama-3.1-8b", hardware="mi300x", stack=mine, batch=8, prompt=1024,
                          output=128).confidence
    assert c.calibrated is True and "no validated runs of mi300x" in c.error_band.assumption


def test_the_fitted_range_reads_the_beyond_envelope_sections():
    from simulator.accuracy.coverage import file_range
    from simulator.specs.measurement import MicroFile

    micro = MicroFile.model_validate({
        "schema": "llmsim-harness-micro/1", "environment": {"harness_version": "t", "date_utc": "2026-12-01"},
        "matmul": [{"m": 64, "n": 8, "k": 8, "flops": 1.0, "bytes": 1.0, "latency_s": 1e-6}],
        "attention": [{"phase": "decode", "heads": 8, "kv_heads": 8, "head_dim": 64, "batch": 4, "context_len": 131072,
                       "flops": 1.0, "bytes": 1.0, "latency_s": 1e-6}],
        "fp8_matmul": [{"m": 16384, "n": 8, "k": 8}], "grouped_mm": [{"experts": 8}]})
    r = file_range(micro)
    assert r.gemm_rows_max == 16384 and r.decode_context_max == 131072 and r.decode_batch_max == 4
    assert r.dtypes == {"bf16", "fp8"} and r.moe and r.prefill_length_max == 0


def test_without_a_bands_file_predictions_carry_no_band(monkeypatch, tmp_path):
    from simulator.accuracy.confidence import build_scope

    monkeypatch.setattr(B, "bands_path", lambda: tmp_path / "none.json")
    w = workload(batch=3, prompt=77, output=5)
    c = build_scope(prepare("llama-3.2-1b", "h100-sxm", "pytorch-ref", BF16, BF16, BF16), w)(3, 77, 5)
    assert c.error_band is None and c.calibrated is True


def test_a_stack_fitted_from_runs_uses_its_cross_validated_residuals():
    """Rule 5: calibrate --from-runs records each held-out run's error; those are the band."""
    held = [{"metric": "tpot_s", "error": e} for e in np.linspace(-0.1, 0.05, 12)]
    held += [{"metric": "ttft_s", "error": e} for e in (0.2, -0.2)]           # too few: widened
    fitted = registry.stack("vllm").model_copy(update={
        "name": "my-vllm", "calibration": {"cross_validation": {"scheme": "model", "held_out": held}}})
    c = _predict(stack=fitted).confidence
    assert "my-vllm's cross-validated runs (leave one model out) (n=12)" in c.error_band.source
    expected = Residuals.of(B.quantiles([h["error"] for h in held[:12]]), "x").band()
    assert c.error_band.tpot == expected
    assert c.error_band.ttft.half_width > 0.25 and "widened to" in c.error_band.source
