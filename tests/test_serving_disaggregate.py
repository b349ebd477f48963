"""--disaggregate P:D (serving/disaggregate.py): one request by hand through the two stages,
the cost of both pools, and bad splits."""
import dataclasses

import numpy as np
import pytest

from simulator.api import resolve_hardware
from simulator.errors import WorkloadError
from simulator.serving.disaggregate import parse_split, serve_split, transfer_s
from simulator.serving.policy import Policy
from simulator.serving.requests import Lengths, Requests, generate
from simulator.serving.simulate import engine, serve

HW = "h100-sxm"


def test_one_request_is_its_prefill_then_the_moved_kv_then_its_decode():
    """TTFT: a prefill-only serve of it; the decode replica gets it at first + transfer
    (latency + 1000 positions x KV bytes per token / NVLink's 450 GB/s) with prompt + 1
    positions cached and 63 tokens to go; its last token is that run's."""
    eng = engine("llama-3.1-8b", HW, "pytorch-ref", Policy())
    hw = resolve_hardware(HW)
    one = Requests(np.array([0.5]), np.array([1000]), np.array([64]), np.ones(1, dtype=np.int64))
    run = serve_split(eng, hw, one, 1, 1, 1.0)
    pre = serve(eng, Requests(one.arrival_s, one.prompt, np.ones(1, dtype=np.int64), one.prefix))
    assert run.first_s[0] == pre.first_s[0]
    moved = pre.first_s[0] + transfer_s(eng, hw, np.array([1000.0]))[0]
    assert transfer_s(eng, hw, np.array([1000.0]))[0] == pytest.approx(
        2e-6 + 1000 * eng.kv_bytes_per_block / 16 / 450e9)
    dec = serve(dataclasses.replace(eng, policy=dataclasses.replace(eng.policy, prefix_hit=1.0)),
                Requests(np.array([moved]), np.array([1001]), np.array([63]), np.ones(1, dtype=np.int64)))
    assert run.last_s[0] == dec.last_s[0]
    m = run.metrics
    assert m["ttft_s"]["p50"] == pytest.approx(pre.first_s[0] - 0.5)
    assert m["tpot_s"]["p50"] == pytest.approx((dec.last_s[0] - pre.first_s[0]) / 63)


def test_both_pools_are_paid_and_split_load_serves_what_one_replica_cannot():
    """At 16 requests/s of 2048-token prompts one H100 saturates; 1 prefill + 1 decode replica
    does not, at twice the devices (cost uses both)."""
    eng = engine("llama-3.1-8b", HW, "pytorch-ref", Policy())
    reqs = generate(600, 16.0, Lengths("fixed", 2048), Lengths("fixed", 256), seed=1)
    together = serve(eng, reqs, 16.0).metrics
    split = serve_split(eng, resolve_hardware(HW), reqs, 1, 1, 16.0).metrics
    assert together["saturated"] and not split["saturated"]
    assert split["replicas"] == 2 and split["usd_per_million_tokens"] == pytest.approx(
        2 * eng.usd_per_hour / 3600 / split["output_tokens_per_s"] * 1e6)


@pytest.mark.parametrize("text", ["1", "0:2", "a:b", "1:-1", ":3"])
def test_bad_splits_are_one_clear_error(text):
    with pytest.raises(WorkloadError, match="disaggregate"):
        parse_split(text)
