"""Speculative decoding: hand-checked iteration arithmetic."""
import pytest

import simulator
from simulator.engine.kernels.scenario import tokens_per_iteration

KW = dict(model="llama-3.1-8b", hardware="h100-sxm", batch=1, prompt=1024, output=65)


def test_expected_tokens_per_iteration():
    assert tokens_per_iteration(4, 0.0) == 1.0
    assert tokens_per_iteration(4, 1.0) == 5.0
    assert tokens_per_iteration(4, 0.5) == pytest.approx(1 + 0.5 + 0.25 + 0.125 + 0.0625)


@pytest.mark.parametrize("acceptance", [0.0, 0.6, 0.9, 1.0])
def test_tpot_is_draft_steps_plus_verify_over_accepted_tokens(acceptance):
    p = simulator.predict(**KW, draft_model="llama-3.2-1b", draft_tokens=4, acceptance=acceptance)
    s = p.speculative
    assert p.tpot_s == pytest.approx((4 * s.draft_step_s + s.verify_pass_s) / tokens_per_iteration(4, acceptance))
    plain = simulator.predict(**KW)
    assert s.plain_tpot_s == pytest.approx(plain.tpot_s)
    assert s.draft_step_s == pytest.approx(simulator.predict(**{**KW, "model": "llama-3.2-1b"}).tpot_s)
    assert p.ttft_s == pytest.approx(plain.ttft_s + simulator.predict(**{**KW, "model": "llama-3.2-1b"}).ttft_s)
    assert p.memory.weights_bytes > plain.memory.weights_bytes


def test_verify_pass_costs_about_one_decode_step_at_batch_1():
    """Five tokens instead of one barely change a memory-bound pass: the weights dominate."""
    s = simulator.predict(**KW, draft_model="llama-3.2-1b").speculative
    assert s.plain_tpot_s <= s.verify_pass_s < 1.2 * s.plain_tpot_s


def test_speculation_pays_only_when_drafts_are_accepted():
    never = simulator.predict(**KW, draft_model="llama-3.2-1b", acceptance=0.0).speculative.speedup
    often = simulator.predict(**KW, draft_model="llama-3.2-1b", acceptance=0.9).speculative.speedup
    assert never < 1.0 < often
