"""A pass's first use of a token count (engine/kernels/iteration.first_use_s, the serving
loop's ``seen`` record, calibration/serving_host.fit_first_shape, the validation's process
state in accuracy/serving.py): the cost paid once per count, by hand; the numba loop and the
plain-Python scheduler alike with it; the fit recovering a known cost from the harness
file's layout; the harness's warm-up token counts restated exactly; the microbenchmark file
kept out of the serving runs."""
import dataclasses
import json

import numpy as np
import pytest
import yaml

from simulator.accuracy import serving as acc
from simulator.calibration import serving_host
from simulator.engine.kernels.iteration import H_FIRST_SHAPE, H_ON, N_HOST, first_use_s, new_shapes
from simulator.serving import reference
from simulator.serving.policy import Policy
from simulator.serving.requests import Lengths, Requests, generate, parse_lengths
from simulator.serving.simulate import engine, serve
from simulator.specs import registry
from simulator.specs.measurement import measurement_root

FIRST_S = 1.5e-3
SHAPES = measurement_root() / "h200-sxm" / "serving-shapes-1" / "serving-shapes-nvidia-h200.json"
WIDE = measurement_root() / "h200-sxm" / "serving-2026-12-02-probe3" / "serving-llama-3.2-1b.json"
EAGER = Policy(max_batched_tokens=2048, max_seqs=64, decode_graphs=False)


def _eng(first_s=FIRST_S, policy=EAGER):
    eng = engine("llama-3.2-1b", "h200-sxm", "pytorch-ref", policy)
    host = eng.host.copy()
    host[H_FIRST_SHAPE] = first_s
    return dataclasses.replace(eng, host=host)


def test_first_use_is_paid_once_per_token_count():
    host = np.zeros(N_HOST)
    host[H_ON], host[H_FIRST_SHAPE] = 1.0, FIRST_S
    seen = new_shapes(100)
    assert first_use_s(host, seen, 37) == FIRST_S and seen[37] == 1
    assert first_use_s(host, seen, 37) == 0.0 and first_use_s(host, seen, 101) == 0.0
    host[H_ON] = 0.0
    assert first_use_s(host, new_shapes(100), 5) == 0.0


def test_a_new_token_count_adds_its_cost_to_that_pass_only():
    """Two requests of one prompt length on an idle engine, 5 s apart: the first prefill (a
    new count) and the first decode step (another) take FIRST_S longer; the second request's
    passes repeat both counts and take what they take without the term; a process that ran
    them before (``seen`` kept) pays nothing."""
    reqs = Requests(np.array([0.0, 5.0]), np.array([300, 300]), np.array([3, 3]), np.ones(2, dtype=np.int64))
    with_, without = serve(_eng(), reqs, None), serve(_eng(0.0), reqs, None)
    assert with_.first_s[0] - without.first_s[0] == pytest.approx(FIRST_S, rel=1e-9)
    assert with_.last_s[0] - without.last_s[0] == pytest.approx(2 * FIRST_S, rel=1e-9)
    assert with_.first_s[1] - 5.0 == pytest.approx(without.first_s[1] - 5.0, rel=1e-12)
    seen = new_shapes(EAGER.max_batched_tokens)
    serve(_eng(), reqs, None, seen=seen)
    again = serve(_eng(), reqs, None, seen=seen)
    assert again.first_s[0] == pytest.approx(without.first_s[0], rel=1e-12)


@pytest.mark.parametrize("concurrency", [0, 5])
def test_loop_equals_plain_python_scheduler_with_first_uses(concurrency):
    eng = dataclasses.replace(_eng(), pool_blocks=300)
    reqs = generate(200, 60.0, Lengths("uniform", 64, 700), Lengths("uniform", 1, 160), seed=7)
    seen_loop, seen_ref = new_shapes(2048), new_shapes(2048)
    seen_loop[[16, 500]] = seen_ref[[16, 500]] = 1
    run = serve(eng, reqs, 60.0, concurrency=concurrency, seen=seen_loop)
    ref = reference.run(eng.model, EAGER, reqs.arrival_s, reqs.prompt, reqs.output, reqs.prefix, 300, concurrency,
                        eng.host, seen_ref)
    assert np.array_equal(run.first_s, ref["first_s"]) and np.array_equal(run.last_s, ref["last_s"])
    assert np.array_equal(seen_loop, seen_ref) and seen_loop.sum() > 100
    assert run.metrics["energy_j_per_request"] * 200 == pytest.approx(ref["energy_j"], rel=1e-12)


def test_the_fit_recovers_a_known_first_use_cost():
    """The committed file's layout with every repeat at its measured value and every new pass
    FIRST_S x the model's probe scale longer (beside decodes: a new-count pass too): the
    fit's median gives FIRST_S back; a pass without decodes' new-count time is not read."""
    hw = registry.hardware("h200-sxm")
    fields = yaml.safe_load((registry.data_root() / "hardware_specs" / "stacks" / "pytorch-ref.yaml").read_text())
    fields = fields["devices"]["h200-sxm"]
    params = {k: float(str(fields["mixed_host"][k]).split()[0]) for k in serving_host.TERMS}
    params["overlap_exponent"] = fields["mixed_overlap_exponent"]
    doc = json.loads(SHAPES.read_text())
    for m in doc["models"]:
        scale = serving_host.probe_scale(m, hw, fields, params)
        assert 0.3 < scale < 3.0
        for r in m["shapes"]:
            base = min(r["repeat_s"])
            r["new_s"] = base + FIRST_S * scale
            r["new_t_s"] = base + (FIRST_S * scale if r["decode"] else 1.0)
    fit = serving_host.fit_first_shape([doc], hw, fields, params)
    assert fit.params["first_shape"] == pytest.approx(FIRST_S, rel=1e-9)


def test_the_warm_up_token_counts_are_the_harness_warm_ups():
    """accuracy.serving.warm_up_tokens restates validation/harness/serving.warm_up: the token
    count of every pass it runs (counted through a batch that runs nothing), for a file of
    the wide warm-up, the prompts drawn as the harness's main draws them."""
    from validation.harness.serving import warm_up

    class Counting:
        def __init__(self):
            self.tokens = []

        def assign(self, running, chunks):
            pass

        def forward(self, chunks):
            self.tokens.append(sum(len(c.ids) * c.length for c in chunks))

    doc = json.loads(WIDE.read_text())
    assert "warm_up_tokens" not in doc and doc["environment"]["date_utc"] >= acc.WIDE_WARM_UP_SINCE
    drawn = generate(48, None, parse_lengths(doc["prompt"], "prompt"), Lengths("fixed", 16),
                     doc["points"][0]["seed"] + 1000).prompt
    batch = Counting()
    returned = warm_up(batch, Policy(**doc["policy"]), [min(int(x), doc["slot_max_len"] - 17) for x in drawn],
                       doc["pool_blocks"])
    assert returned == batch.tokens == acc.warm_up_tokens(doc) and len(returned) > 48
    assert acc.warm_up_tokens({**doc, "warm_up_tokens": [3, 4]}) == [3, 4]


def test_the_shapes_microbenchmark_is_no_serving_run():
    files = [p for p, _ in acc.measured_files()]
    assert SHAPES.exists() and SHAPES not in files and WIDE in files


def test_the_host_monitor_times_its_task_beside_the_caller_and_stops():
    """validation/harness/serving_monitor.Monitor: samples every PERIOD_S over the window asked
    for, as seconds from its start, each the task's seconds; the process ends on stop."""
    import time

    from validation.harness.serving_monitor import PERIOD_S, Monitor

    monitor = Monitor()
    time.sleep(0.3)
    t0 = time.perf_counter()
    time.sleep(0.3)
    got = monitor.since(t0, 0.3)
    monitor.stop()
    assert not monitor.proc.is_alive()
    assert 0.3 / PERIOD_S / 4 <= len(got["start_s"]) <= 0.3 / PERIOD_S + 1
    assert all(0.0 <= s <= 0.3 for s in got["start_s"]) and min(got["task_s"]) > 0.0
