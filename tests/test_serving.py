"""Serving simulation (simulator/serving/): the numba loop against the plain-Python
scheduler (serving/reference.py driving policy.Scheduler, bit for bit), near-zero load
against predict --batch 1, a two-request schedule computed by hand from the roofline
kernel, growth with rate, saturation, the KV pool, and rejection."""
import dataclasses

import numpy as np
import pytest

import simulator
import simulator.accuracy.serving
import simulator.specs.registry
from simulator.engine.kernels import scenario as sc
from simulator.engine.kernels.iteration import H_CACHED, H_CONCAT, H_DECODE, H_FIRST_SHAPE, H_FRESH, H_LAYERS, H_ON, \
    H_OVERLAP, H_PASS, H_SCHED, H_SCHED_RUNNING, decode_cache, iteration_device_s
from simulator.engine.kernels.roofline import combine, evaluate_point
from simulator.graph.ops import KV, N_FEATURES, ONE, PAIR, SEQ, TOK
from simulator.serving import reference
from simulator.serving.policy import Policy
from simulator.serving.requests import Lengths, Requests, generate
from simulator.serving.simulate import engine, max_rate, meets, serve

MODEL, DEVICE = "llama-3.2-1b", "h200-sxm"
UNIFORM_PROMPT, UNIFORM_OUTPUT = Lengths("uniform", 64, 700), Lengths("uniform", 1, 160)


def _eng(policy=Policy(), model=MODEL, device=DEVICE, **kw):
    return engine(model, device, "pytorch-ref", policy, **kw)


@pytest.mark.parametrize("model, device", [("llama-3.1-8b", "h100-sxm"), ("qwen2.5-14b", "mi300x")])
def test_near_zero_load_equals_predict_batch_1(model, device):
    """At 0.01 requests/s no two requests overlap: TTFT is the prefill pass and TPOT the
    mean decode step of predict --batch 1 (the issue asks within 5%; they are the same
    kernels, so within 1e-9) on a profile without the eager mixed pass's host terms."""
    eng = _eng(model=model, device=device)
    assert eng.host[H_ON] == 0.0
    run = serve(eng, generate(40, 0.01, Lengths("fixed", 512), Lengths("fixed", 64), seed=2), 0.01)
    p = simulator.predict(model=model, hardware=device, batch=1, prompt=512, output=64)
    assert run.metrics["ttft_s"]["p50"] == pytest.approx(p.ttft_s, rel=1e-9)
    assert run.metrics["tpot_s"]["p50"] == pytest.approx(p.tpot_s, rel=1e-9)
    assert run.metrics["e2e_s"]["p50"] == pytest.approx(p.e2e_s, rel=1e-9)
    assert not run.metrics["saturated"] and run.metrics["preemptions"] == 0


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.2-1b"])
def test_near_zero_load_of_an_eager_stack_equals_predict_batch_1(model):
    """A stack that launches every decode step eagerly (hf-transformers: decode_graphs false;
    on the H100 no mixed-pass host terms) served with eager decode steps: each step is
    scenario.decode_step_s, max(device, host launch time) + decode step overhead, as predict
    sums them, so TTFT and TPOT equal predict --batch 1's within 1e-9."""
    assert not simulator.specs.registry.stack("hf-transformers").decode_graphs
    eng = engine(model, "h100-sxm", "hf-transformers", Policy(decode_graphs=False))
    assert eng.host[H_ON] == 0.0
    run = serve(eng, generate(40, 0.01, Lengths("fixed", 512), Lengths("fixed", 64), seed=2), 0.01)
    p = simulator.predict(model=model, hardware="h100-sxm", stack="hf-transformers", batch=1, prompt=512, output=64)
    assert run.metrics["tpot_s"]["p50"] == pytest.approx(p.tpot_s, rel=1e-9)
    assert run.metrics["ttft_s"]["p50"] == pytest.approx(p.ttft_s, rel=1e-9)


def test_near_zero_load_with_the_mixed_pass_host_terms():
    """On the H200, whose pytorch-ref profile has the harness's mixed-pass host terms
    (calibration/serving_host.py): TPOT is predict --batch 1's graphed decode step plus the
    scheduler's seconds (within 5%, the issue's bound, and within 1e-9 of that sum); TTFT is
    one eager pass of a fresh chunk: combine(device + prefill step overhead, pass + layers +
    fresh, the fitted overlap exponent) + scheduler, the prefill's device seconds predict's
    (when predict's TTFT is not its host launch floor)."""
    eng = _eng()
    h, params = eng.host, eng.model[sc.M_PARAMS]
    assert h[H_ON] == 1.0
    run = serve(eng, generate(40, 0.01, Lengths("fixed", 512), Lengths("fixed", 64), seed=2), 0.01)
    p = simulator.predict(model=MODEL, hardware=DEVICE, batch=1, prompt=512, output=64)
    sched = h[H_SCHED] + h[H_SCHED_RUNNING]
    assert run.metrics["tpot_s"]["p50"] == pytest.approx(p.tpot_s, rel=0.05)
    assert run.metrics["tpot_s"]["p50"] == pytest.approx(p.tpot_s + sched, rel=1e-9)
    one = np.ones(1, dtype=np.int64)
    device_s, prefill = iteration_device_s(eng.model, decode_cache(eng.model[0].shape[0], 4), one, np.zeros(1, np.int64),
                                           one * 512, 1, np.zeros(N_FEATURES), np.zeros(N_FEATURES))
    assert prefill and device_s > params[sc.P_PREFILL_STEP_S] and 1.0 < h[H_OVERLAP] < 30.0
    if p.ttft_s > params[sc.P_HOST_LAUNCH_S]:
        assert device_s == pytest.approx(p.ttft_s, rel=1e-9)
    host_s = h[H_PASS] + h[H_LAYERS] + h[H_FRESH]
    assert run.metrics["ttft_s"]["p50"] == pytest.approx(combine(device_s, host_s, h[H_OVERLAP]) + sched, rel=1e-9)


def test_two_request_schedule_by_hand():
    """Budget 10: requests of prompt 8 / output 3 and prompt 6 / output 2 both at 0 s.
    Iteration 1: A's whole prompt (8) and B's first 2 prompt tokens; A samples token 1.
    Iteration 2: A's decode at position 8, B's chunk 2..5; B samples token 1, A token 2.
    Iteration 3: both decode (positions 9 and 6); A's token 3 and B's token 2 end them.
    Each iteration's time: the roofline's operators at the summed features, eager
    (combine(device + prefill step overhead, the mixed pass's host seconds of its groups, p)) for
    the two with a chunk, the decode step's + its overhead for the third (pytorch-ref
    decodes in a CUDA graph); each plus the scheduler's seconds with 2 running; the two eager
    passes each the first of its token count: + the profile's first_shape (0 without one)."""
    eng = _eng(Policy(max_batched_tokens=10, max_seqs=4))
    model = eng.model
    params = model[sc.M_PARAMS]
    flops, mem_s, alt = model[sc.M_FLOPS], model[sc.M_MEM_S], model[sc.M_ALT_MEM_S]

    def pass_s(op, seq, tok, pair, kv):
        f = np.zeros(flops.shape[1])
        f[ONE], f[SEQ], f[TOK], f[PAIR], f[KV] = 1.0, seq, tok, pair, kv
        return evaluate_point(flops, mem_s, alt, op, f)[0].sum()

    h = eng.host
    host_s = [h[H_PASS] + h[H_LAYERS] + h[H_FRESH] * 2 + h[H_CONCAT],                   # two fresh chunks
              h[H_PASS] + h[H_LAYERS] + h[H_DECODE] + h[H_CACHED] + h[H_CONCAT]]         # a decode, a later chunk

    def eager(device_s, i):                  # each pass a token count new to the engine: + first_shape
        return (combine(device_s + params[sc.P_PREFILL_STEP_S], host_s[i], h[H_OVERLAP]) + h[H_SCHED]
                + 2 * h[H_SCHED_RUNNING] + h[H_FIRST_SHAPE])

    # iteration 1: chunks (0, 8) and (0, 2): T 10, pairs 36 + 3, cached positions 8 + 2
    t1 = eager(pass_s(model[sc.M_OP_PREFILL], 2, 10, 36 + 3, 10), 0)
    # iteration 2: A decodes at 8 (9 pairs, 9 positions), B's chunk (2, 4): pairs 21 - 3, 6 positions
    t2 = t1 + eager(pass_s(model[sc.M_OP_PREFILL], 2, 5, 9 + 18, 9 + 6), 1)
    # iteration 3: A at 9, B at 6: a decode step of 2 at mean position 7.5 (10 + 7 pairs)
    t3 = t2 + pass_s(model[sc.M_OP_DECODE], 2, 2, 17, 17) + params[sc.P_DECODE_STEP_S] + h[H_SCHED] + 2 * h[H_SCHED_RUNNING]
    reqs = Requests(np.zeros(2), np.array([8, 6]), np.array([3, 2]), np.ones(2, dtype=np.int64))
    run = serve(eng, reqs, None)
    np.testing.assert_allclose(run.first_s, [t1, t2], rtol=1e-12)
    np.testing.assert_allclose(run.last_s, [t3, t3], rtol=1e-12)
    assert run.metrics["iterations"] == 3
    assert run.metrics["tpot_s"]["mean"] == pytest.approx(((t3 - t1) / 2 + (t3 - t2)) / 2, rel=1e-12)


POLICIES = [Policy(max_batched_tokens=512, max_seqs=32), Policy(max_batched_tokens=300, max_seqs=16, prefix_hit=0.5),
            Policy(max_batched_tokens=2048, max_seqs=64, decode_graphs=False), Policy(max_seqs=8, batching="static")]


@pytest.mark.parametrize("policy", POLICIES, ids=["chunked", "prefix", "eager", "static"])
@pytest.mark.parametrize("concurrency", [0, 5])
def test_loop_equals_plain_python_scheduler(policy, concurrency):
    """The numba loop and policy.Scheduler in serving/reference.py give the same schedule:
    every request's first and last token times bit for bit, the same preemptions (a pool of
    300 blocks forces them), iterations, peak blocks and energy; ITL percentiles within the
    histogram's bin (0.6%), its mean exactly."""
    eng = dataclasses.replace(_eng(policy), pool_blocks=300)
    reqs = generate(250, 60.0, UNIFORM_PROMPT, UNIFORM_OUTPUT, seed=5)
    run = serve(eng, reqs, 60.0, concurrency=concurrency)
    ref = reference.run(eng.model, policy, reqs.arrival_s, reqs.prompt, reqs.output, reqs.prefix, 300, concurrency,
                        eng.host)
    assert np.array_equal(run.requests.arrival_s, ref["arrival_s"])
    assert np.array_equal(run.first_s, ref["first_s"]) and np.array_equal(run.last_s, ref["last_s"])
    assert np.array_equal(run.preemptions, ref["preemptions"])
    m = run.metrics
    assert (m["iterations"], m["preemptions"]) == (ref["iterations"], ref["preemption_count"])
    assert m["kv_peak_fraction"] * 300 == ref["peak_blocks"]
    assert m["energy_j_per_request"] * 250 == pytest.approx(ref["energy_j"], rel=1e-12)
    assert m["itl_s"]["mean"] == pytest.approx(ref["itl_s"].mean(), rel=1e-12)
    for q in (50, 90, 99):
        assert m["itl_s"][f"p{q}"] == pytest.approx(np.percentile(ref["itl_s"], q), rel=0.006)
    if policy.batching == "continuous" and concurrency == 0 and policy.prefix_hit == 0:
        assert m["preemptions"] > 0


def test_prefix_hits_make_first_tokens_sooner():
    """With 3/4 of a 4096-token prompt cached, a prefill computes 1024 tokens (attending over
    4096): under 40% of the cold first token of a compute-bound 8B prefill."""
    reqs = generate(100, 2.0, Lengths("fixed", 4096), Lengths("fixed", 16), seed=1)
    cold = serve(_eng(model="llama-3.1-8b"), reqs, 2.0).metrics
    warm = serve(_eng(Policy(prefix_hit=0.75), model="llama-3.1-8b"), reqs, 2.0).metrics
    assert warm["ttft_s"]["p50"] < 0.4 * cold["ttft_s"]["p50"]


def test_percentiles_grow_with_rate_and_overload_is_saturated():
    """Four stable rates (the H200's pytorch-ref engine, host-bound in its eager mixed
    passes, serves 74-80/s of these requests: 80/s saturates once each new token count's
    first use is paid) and an overload."""
    eng = _eng(Policy(max_batched_tokens=2048, max_seqs=64))
    runs = [serve(eng, generate(600, r, UNIFORM_PROMPT, UNIFORM_OUTPUT, seed=3), r).metrics
            for r in (2.0, 20.0, 40.0, 70.0, 2000.0)]
    for key, stat in (("ttft_s", "p50"), ("ttft_s", "p90"), ("tpot_s", "p50"), ("tpot_s", "p90"), ("e2e_s", "p50")):
        values = [m[key][stat] for m in runs]
        assert values == sorted(values), (key, stat, values)
    p99 = [m["ttft_s"]["p99"] for m in runs]      # 6 requests above it: within 1% of the last rate's
    assert all(b >= 0.99 * a for a, b in zip(p99, p99[1:])) and p99[-1] > 100 * p99[0], p99
    assert [m["saturated"] for m in runs] == [False, False, False, False, True]
    assert runs[-1]["requests_per_s"] < 0.2 * 2000.0
    assert runs[0]["requests_per_s"] == pytest.approx(2.0, rel=0.15)


def test_static_batching_is_slower_to_first_token_than_continuous():
    reqs = generate(400, 30.0, UNIFORM_PROMPT, UNIFORM_OUTPUT, seed=4)
    continuous = serve(_eng(Policy(max_seqs=32)), reqs, 30.0).metrics
    static = serve(_eng(Policy(max_seqs=32, batching="static")), reqs, 30.0).metrics
    assert static["ttft_s"]["p50"] > 2 * continuous["ttft_s"]["p50"]


def test_kv_pool_is_the_memory_left_after_weights_and_activations():
    p = simulator.predict(model=MODEL, hardware=DEVICE, batch=1, prompt=8192, output=1)
    eng = _eng(Policy(max_batched_tokens=8192, kv_memory_fraction=0.5))
    per_block = 16 * p.memory.kv_cache_bytes / 8193
    expected = 0.5 * (p.memory.capacity_bytes - p.memory.weights_bytes - p.memory.activation_bytes) / per_block
    assert eng.pool_blocks == int(expected)


def test_requests_beyond_the_model_or_the_pool_are_rejected_and_counted():
    eng = dataclasses.replace(_eng(), pool_blocks=100)         # 1,600 tokens
    reqs = Requests(np.array([0.0, 0.1, 0.2]), np.array([100, 1500, 200_000]), np.array([10, 200, 10]),
                    np.ones(3, dtype=np.int64))
    m = serve(eng, reqs, None).metrics
    assert (m["completed"], m["rejected"]) == (1, 2)


def test_same_seed_same_bits_and_another_seed_differs():
    a = generate(1000, 5.0, UNIFORM_PROMPT, Lengths("lognormal", 100, 50), seed=9)
    b = generate(1000, 5.0, UNIFORM_PROMPT, Lengths("lognormal", 100, 50), seed=9)
    c = generate(1000, 5.0, UNIFORM_PROMPT, Lengths("lognormal", 100, 50), seed=10)
    for field in ("arrival_s", "prompt", "output"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
        assert getattr(a, field).tobytes() != getattr(c, field).tobytes()
    eng = _eng()
    assert serve(eng, a, 5.0).first_s.tobytes() == serve(eng, b, 5.0).first_s.tobytes()


def test_arrival_distributions_have_their_mean_and_spread():
    poisson = np.diff(generate(20000, 4.0, Lengths("fixed", 1), Lengths("fixed", 1), seed=1).arrival_s)
    bursty = np.diff(generate(20000, 4.0, Lengths("fixed", 1), Lengths("fixed", 1), seed=1, cv=3.0).arrival_s)
    assert poisson.mean() == pytest.approx(0.25, rel=0.03) and poisson.std() / poisson.mean() == pytest.approx(1, rel=0.05)
    assert bursty.mean() == pytest.approx(0.25, rel=0.08) and bursty.std() / bursty.mean() == pytest.approx(3, rel=0.1)
    lengths = Lengths("lognormal", 300, 120).draw(np.random.Generator(np.random.PCG64(0)), 50000)
    assert lengths.mean() == pytest.approx(300, rel=0.02) and lengths.std() == pytest.approx(120, rel=0.05)


def test_closed_loop_keeps_n_requests_in_flight():
    run = serve(_eng(), generate(300, None, Lengths("fixed", 256), Lengths("fixed", 64), seed=1), None, concurrency=8)
    arrivals = run.requests.arrival_s
    assert (arrivals[:8] == 0).all() and np.all(np.diff(arrivals) >= 0)
    finished = np.sort(run.last_s)
    assert np.array_equal(np.sort(arrivals[8:]), finished[:300 - 8])     # each start is a finish
    assert not run.metrics["saturated"]


def test_max_rate_meets_the_slos_and_a_higher_rate_does_not():
    eng = _eng(Policy(max_batched_tokens=2048, max_seqs=64))

    def make(rate):
        return generate(400, rate, UNIFORM_PROMPT, UNIFORM_OUTPUT, seed=6)

    best, run = max_rate(eng, make, 0.1, 0.012, 90)
    assert meets(run.metrics, 0.1, 0.012, 90)
    above = serve(eng, make(best * 1.05), best * 1.05, ttft_slo_s=0.1, tpot_slo_s=0.012)
    assert not meets(above.metrics, 0.1, 0.012, 90)
    assert max_rate(eng, make, 1e-6, None)[0] is None


_TWIN = """
import dataclasses, json
from simulator.serving.policy import Policy
from simulator.serving.requests import Lengths, generate
from simulator.serving.simulate import engine, serve
eng = dataclasses.replace(engine("llama-3.2-1b", "h200-sxm", "pytorch-ref", Policy(max_batched_tokens=256, max_seqs=8)),
                          pool_blocks=60)
run = serve(eng, generate(30, 40.0, Lengths("uniform", 16, 300), Lengths("uniform", 1, 40), seed=8), 40.0)
print(json.dumps([run.first_s.tolist(), run.last_s.tolist(), run.metrics["preemptions"]]))
"""


def test_loop_interpreted_equals_compiled():
    """The loop and the iteration kernel run as plain Python (NUMBA_DISABLE_JIT=1) give the
    compiled results (a pool of 60 blocks: preemptions included)."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _TWIN], env=env, capture_output=True, text=True, check=True).stdout
    first, last, preemptions = json.loads(out)
    eng = dataclasses.replace(_eng(Policy(max_batched_tokens=256, max_seqs=8)), pool_blocks=60)
    run = serve(eng, generate(30, 40.0, Lengths("uniform", 16, 300), Lengths("uniform", 1, 40), seed=8), 40.0)
    np.testing.assert_allclose(run.first_s, first, rtol=1e-12)
    np.testing.assert_allclose(run.last_s, last, rtol=1e-12)
    assert run.metrics["preemptions"] == preemptions > 0


def test_committed_serving_runs_within_the_errors_reached(tmp_path):
    """The committed H200 continuous-batching runs re-simulated with the mixed-pass host terms,
    overlap exponent and first use of a token count fitted from the serving microbenchmarks
    (never from these runs): the median |error| each metric reached, so a change that worsens
    them fails (TTFT p50, p90, TPOT p50, tokens/s):
    probed earlier (-probe, -probe2: 11 rates)                     14.2 21.4  9.2 1.0
    held out (-probe3, -monitor, -task, -launch, -launch2: 31)     10.0 13.3  6.1 1.2
    the 42 probed at the profile's average host                    18.4 18.4 15.0 3.6
    the 12 earlier rates (no probe)                                33.0 47.3 30.9 7.3
    all 54                                                         14.6 20.2  9.5 1.8
    A probed run is simulated at the host speed its probes measured; -task's four in segments
    of its in-run CPU task, -launch's and -launch2's sixteen in segments of their in-run launch
    task (serving/host_state.host_segments; -launch2's probes pair each pass with one); the earlier rates' decode-only iterations took 0.9-1.9x
    (median 1.4x) the modelled host time, in phases of seconds; the probes miss such phases
    within a run (probe2's 8B at 32/s: 1.6x for its first 10 s, probes at 1.0x; probe3's 1B
    at 36/s: 1.26x, probes 0.92x)."""
    import json

    from simulator.accuracy.serving import compare_all, compare_file, measured_files, summary
    from simulator.cli.validate import serving_report
    from simulator.specs.measurement import measurement_root

    rows = compare_all(hardware=["h200-sxm"])
    probed = [r for r in rows if r["host_scale"] is not None]
    held_out = [r for r in probed if r["session"] in ("serving-2026-12-02-probe3", "serving-2026-12-02-monitor",
                                                      "serving-2026-12-02-task", "serving-2026-12-02-launch",
                                                      "serving-2026-12-02-launch2")]
    earlier_probed = [r for r in probed if r not in held_out]
    earlier = [r for r in rows if r["host_scale"] is None]
    assert len(rows) == 54 and len(probed) == 42 and len(held_out) == 31
    assert sum(r["host_segmented"] for r in rows) == 20
    assert {r["session"] for r in earlier_probed} == {"serving-2026-12-02-probe", "serving-2026-12-02-probe2"}
    assert all(0.5 < r["host_scale"] < 1.6 for r in probed)
    average = []
    for path, hw in measured_files():
        doc = json.loads(path.read_text())
        if any("host_probe" in pt for pt in doc["points"]):
            doc["points"] = [{k: v for k, v in pt.items() if k != "host_probe"} for pt in doc["points"]]
            copy = tmp_path / path.parent.name / path.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(json.dumps(doc))
            average += compare_file(copy, hw)
    reached = {"earlier probed": (0.143, 0.215, 0.093, 0.011), "held out": (0.101, 0.133, 0.062, 0.012),
               "probed at the average host": (0.184, 0.184, 0.150, 0.036),
               "earlier": (0.331, 0.474, 0.310, 0.074), "all": (0.146, 0.202, 0.095, 0.018)}
    groups = {"earlier probed": earlier_probed, "held out": held_out, "probed at the average host": average,
              "earlier": earlier, "all": rows}
    for name, group in groups.items():
        for (key, stats), b in zip(summary(group).items(), reached[name]):
            assert stats["n"] == len(group) and stats["median_abs_error"] <= b, (name, key, stats)
    text, data = serving_report(measurement_root(), ["h200-sxm"])
    assert "serving runs" in text and "TPOT p50: median |error| 9.5%" in text and len(data["runs"]) == 54
