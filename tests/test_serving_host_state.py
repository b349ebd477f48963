"""The host's state in serving (simulator/serving/host_state.py, validation/harness/
serving_probe.py) and the mixed pass's host/device overlap (calibration/serving_host.py):
the probe's scale inverted by hand, the scaled engine, the cases that give no scale, the
validation's use of a probed run, the harness probe on the CPU, and the joint fit
recovering known host terms and exponent."""
import json

import numpy as np
import pytest
import yaml

from simulator.accuracy.serving import compare_file
from simulator.calibration import serving_host
from simulator.engine.kernels.iteration import H_ON, H_OVERLAP, N_HOST, decode_cache, iteration_cost
from simulator.engine.kernels.roofline import combine
from simulator.graph.ops import N_FEATURES
from simulator.serving import host_state
from simulator.serving.policy import Policy
from simulator.serving.simulate import engine
from simulator.specs import registry
from simulator.specs.measurement import measurement_root

PROBE = {"decode": 16, "context": 128}
PROBED = measurement_root() / "h200-sxm" / "serving-2026-12-02-probe" / "serving-llama-3.2-1b.json"


def _eng(model="llama-3.2-1b", device="h200-sxm"):
    return engine(model, device, "pytorch-ref", Policy(max_batched_tokens=2048, max_seqs=64, decode_graphs=False))


def _probe(eng, scale):
    """A probe whose every sample is the time the profile gives the pass at ``scale`` x its host seconds."""
    device_s, host_s = host_state.probe_seconds(eng, PROBE)
    wall = combine(device_s, scale * host_s, eng.host[H_OVERLAP])
    return {**PROBE, "before_s": [wall] * 3, "after_s": [wall * 0.9, wall, wall * 1.1]}


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.8])
def test_the_probe_scale_inverts_the_overlap(scale):
    eng = _eng()
    assert eng.host[H_ON] == 1.0 and eng.host[H_OVERLAP] > 1.0
    assert host_state.host_scale(eng, _probe(eng, scale)) == pytest.approx(scale, rel=1e-9)


def test_the_scaled_engine_scales_every_host_term_but_the_flag_and_exponent():
    eng = _eng("llama-3.1-8b")
    fast = host_state.scaled(eng, 0.5)
    assert fast.host[H_ON] == eng.host[H_ON] and fast.host[H_OVERLAP] == eng.host[H_OVERLAP]
    others = [i for i in range(N_HOST) if i not in (H_ON, H_OVERLAP)]
    np.testing.assert_allclose(fast.host[others], 0.5 * eng.host[others], rtol=1e-15)

    def decode_s(e):                       # 8 decodes at 300: host-bound, so nearly halved
        n = 8
        return iteration_cost(e.model, decode_cache(e.model[0].shape[0], 64), np.ones(n, np.int64),
                              np.full(n, 300, np.int64), np.ones(n, np.int64), n, True, e.host, n,
                              np.zeros(N_FEATURES), np.zeros(N_FEATURES))[0]
    assert 0.5 < decode_s(fast) / decode_s(eng) < 0.56


def test_no_scale_without_samples_host_terms_or_a_host_bound_probe():
    eng = _eng()
    assert host_state.host_scale(eng, dict(PROBE)) is None
    device_s, _ = host_state.probe_seconds(eng, PROBE)
    assert host_state.host_scale(eng, {**PROBE, "before_s": [1.5 * device_s]}) is None   # device-bound reading
    other = _eng("llama-3.1-8b", "h100-sxm")                                            # a profile without them
    assert other.host[H_ON] == 0.0 and host_state.host_scale(other, _probe(_eng(), 1.0)) is None


def test_a_probed_run_is_simulated_at_its_probes_host_speed(tmp_path):
    """compare_file scales the host terms by the point's probe, and by nothing without one."""
    doc = json.loads(PROBED.read_text())
    doc["points"] = doc["points"][-1:]
    with_probe, without = tmp_path / "a" / "serving-x.json", tmp_path / "b" / "serving-x.json"
    for path, d in ((with_probe, doc), (without, {**doc, "points": [{k: v for k, v in doc["points"][0].items()
                                                                       if k != "host_probe"}]})):
        path.parent.mkdir()
        path.write_text(json.dumps(d))
    (a,), (b,) = compare_file(with_probe, "h200-sxm"), compare_file(without, "h200-sxm")
    assert a["host_scale"] == pytest.approx(host_state.host_scale(_eng(), doc["points"][0]["host_probe"]), rel=1e-12)
    assert b["host_scale"] is None and a["measured_tpot_p50_s"] == b["measured_tpot_p50_s"]
    assert a["host_scale"] < 1.0 and a["predicted_tpot_p50_s"] < b["predicted_tpot_p50_s"]


def _tiny_batch(slots, max_len):
    """A one-layer CPU decoder's MixedBatch (torch needed)."""
    from validation.harness.config import config_from_dict
    from validation.harness.model import RefDecoder
    from validation.harness.serving import MixedBatch

    cfg = config_from_dict("t", dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=100,
                                     rms_norm_eps=1e-5, rope_theta=1e4))
    return MixedBatch(RefDecoder(cfg, device="cpu", max_positions=max_len + 64), slots, max_len)


def test_the_harness_probe_times_its_point_and_frees_the_slots():
    pytest.importorskip("torch")
    from validation.harness import serving_probe
    from validation.harness.serving import MixedBatch

    batch = _tiny_batch(32, 300)
    before, after = serving_probe.host_probe(batch, reps=3), serving_probe.host_probe(batch, reps=3)
    assert not batch.slot_of and len(batch.free) == 32
    entry = serving_probe.record(before, after)
    assert (entry["decode"], entry["context"]) == serving_probe.PROBE[:2]
    assert len(entry["before_s"]) == len(entry["after_s"]) == 3 and min(entry["before_s"] + entry["after_s"]) > 0
    assert serving_probe.summary(entry).startswith("host probe median")
    short = MixedBatch(batch.m, 32, 100)                 # a cache too short for context 128: the context that fits
    assert serving_probe.host_probe(short, reps=1)["context"] == 100 - 16 - 1


def test_the_joint_fit_recovers_known_host_terms_and_exponent():
    """Walls made from the committed micro rows' compositions with known terms and p through
    the simulator's own device seconds: the fit gives them back."""
    hw = registry.hardware("h200-sxm")
    path = registry.data_root() / "hardware_specs" / "stacks" / "pytorch-ref.yaml"
    fields = yaml.safe_load(path.read_text())["devices"]["h200-sxm"]
    docs = [json.loads(f.read_text())["mixed"] for f in serving_host.micro_files("h200-sxm")]
    rows = [d for d in docs if len({r["layers"] for r in d}) > 1][-1]     # two layer counts: pass and layer apart
    truth = np.array([1e-3, 3.5e-4, 2.3e-4, 1.1e-4, 1.8e-4, 5e-5])
    dev = serving_host.device_s(rows, hw, fields)
    walls = serving_host.overlapped_s(dev, serving_host.design(rows) @ truth, 3.5)
    fit = serving_host.fit_mixed([{**r, "wall_mean_s": w} for r, w in zip(rows, walls)], hw, fields)
    assert fit.params["overlap_exponent"] == pytest.approx(3.5, rel=1e-3)
    np.testing.assert_allclose([fit.params[k] for k in serving_host.TERMS], truth, rtol=2e-3)


def test_the_warm_up_meets_the_runs_chunk_lengths_and_frees_the_slots():
    """serving.warm_up runs every given prompt length as a chunk beside decodes, then frees the slots."""
    pytest.importorskip("torch")
    from validation.harness.serving import warm_up

    batch = _tiny_batch(16, 120)
    seen = []
    forward = batch.forward
    batch.forward = lambda chunks: (seen.append(chunks), forward(chunks))[1]
    prompts = [30, 41, 57, 64, 80]
    warm_up(batch, Policy(max_batched_tokens=256, max_seqs=16, decode_graphs=False), prompts, 16 * 8)
    fresh = {ch.length for chunks in seen for ch in chunks if ch.length > 1}
    assert set(prompts) <= fresh and any(len(chunks) > 1 and any(c.length == 1 for c in chunks) for chunks in seen)
    assert not batch.slot_of and len(batch.free) == 16


def test_one_segment_is_the_scaled_engine_and_the_loop_equals_the_reference_in_segments():
    """A run in one segment at scale 1.7 is the engine scaled by 1.7, bit for bit; in three
    segments the numba loop and the plain-Python scheduler agree bit for bit, and a slower
    middle segment makes the run's end later than its fast start alone would."""
    import dataclasses

    from simulator.serving import reference
    from simulator.serving.requests import Lengths, generate
    from simulator.serving.simulate import serve

    eng = dataclasses.replace(_eng(), pool_blocks=400)
    reqs = generate(150, 40.0, Lengths("uniform", 64, 700), Lengths("uniform", 1, 120), seed=4)
    one = serve(eng, reqs, 40.0, segments=(np.array([0.0]), np.array([1.7])))
    scaled = serve(host_state.scaled(eng, 1.7), reqs, 40.0)
    assert np.array_equal(one.first_s, scaled.first_s) and np.array_equal(one.last_s, scaled.last_s)
    segments = (np.array([0.0, 1.0, 2.5]), np.array([0.8, 1.6, 1.0]))
    run = serve(eng, reqs, 40.0, segments=segments)
    ref = reference.run(eng.model, eng.policy, reqs.arrival_s, reqs.prompt, reqs.output, reqs.prefix, 400, 0,
                        eng.host, None, segments)
    assert np.array_equal(run.first_s, ref["first_s"]) and np.array_equal(run.last_s, ref["last_s"])
    fast = serve(eng, reqs, 40.0, segments=(np.array([0.0]), np.array([0.8])))
    assert np.nanmax(run.last_s) > np.nanmax(fast.last_s)


def test_segments_follow_the_runs_cpu_task_against_the_probes():
    """host_segments: each task sample starts a segment whose scale is the probe's scale x the
    running median of SEGMENT_SAMPLES task times over the probes' median task; none without
    task samples or probe tasks."""
    eng = _eng()
    probe = {**_probe(eng, 1.0), "task_before_s": [1e-3] * 5, "task_after_s": [1e-3] * 5}
    task = {"start_s": [0.25 * i for i in range(10)], "task_s": [1e-3] * 5 + [2e-3] * 5}
    start, scale = host_state.host_segments(eng, {"host_probe": probe, "cpu_task": task})
    base = host_state.host_scale(eng, probe)
    assert list(start) == task["start_s"]
    np.testing.assert_allclose(scale[[0, 1, 8, 9]], [base, base, 2 * base, 2 * base], rtol=1e-12)
    assert host_state.host_segments(eng, {"host_probe": probe}) is None
    assert host_state.host_segments(eng, {"host_probe": {**probe, "task_before_s": [], "task_after_s": []},
                                          "cpu_task": task}) is None


def test_segments_follow_the_launch_task_where_the_run_timed_it():
    """host_segments: a run that timed the launch task (launch_s in cpu_task, launch_before_s /
    launch_after_s at its probes) is segmented by it, not by the interpreter's task; a run
    with launch samples but probes without them falls back to the task."""
    eng = _eng()
    probe = {**_probe(eng, 1.0), "task_before_s": [1e-3] * 5, "task_after_s": [1e-3] * 5,
             "launch_before_s": [5e-4] * 5, "launch_after_s": [5e-4] * 5}
    task = {"start_s": [0.25 * i for i in range(10)], "task_s": [1e-3] * 10, "launch_s": [5e-4] * 5 + [7.5e-4] * 5}
    base = host_state.host_scale(eng, probe)
    _, scale = host_state.host_segments(eng, {"host_probe": probe, "cpu_task": task})
    np.testing.assert_allclose(scale[[0, 1, 8, 9]], [base, base, 1.5 * base, 1.5 * base], rtol=1e-12)
    old = {k: v for k, v in probe.items() if not k.startswith("launch")}
    _, scale = host_state.host_segments(eng, {"host_probe": old, "cpu_task": task})
    np.testing.assert_allclose(scale, base, rtol=1e-12)


def test_a_paired_probe_converts_launch_seconds_by_the_median_pair():
    """launch_conversion: with each probe pass followed by a launch task (launch_paired), the
    host scale per launch second is the median over the pairs: a slow phase that caught the
    after probe's passes and their launches alike (both 1.5x) leaves it at the steady host's
    (within the overlap's non-linearity), where the pooled medians would not; host_segments
    uses it; None for an unpaired probe."""
    eng = _eng()
    base = _probe(eng, 1.0)
    n = len(base["before_s"])
    slow = {**base, "after_s": [1.5 * t for t in base["after_s"]]}
    paired = {**slow, "launch_before_s": [5e-4] * n, "launch_after_s": [7.5e-4] * n, "launch_paired": True}
    assert host_state.launch_conversion(eng, {k: v for k, v in paired.items() if k != "launch_paired"}) is None
    per_second = host_state.launch_conversion(eng, paired)
    steady = host_state.host_scale(eng, base) / 5e-4
    assert per_second == pytest.approx(steady, rel=0.1)
    assert abs(per_second / steady - 1.0) < abs(host_state.host_scale(eng, slow) / 6.25e-4 / steady - 1.0)
    task = {"start_s": [0.25 * i for i in range(6)], "task_s": [1e-3] * 6, "launch_s": [5e-4] * 6}
    _, scale = host_state.host_segments(eng, {"host_probe": {**paired, "task_before_s": [1e-3], "task_after_s": [1e-3]},
                                              "cpu_task": task})
    np.testing.assert_allclose(scale, per_second * 5e-4, rtol=1e-12)
