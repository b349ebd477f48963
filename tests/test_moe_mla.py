"""Mixture of experts and multi-head latent attention: parameter counts and hand-computed
decode steps."""
import pytest

import simulator
from simulator.engine.kernels.phases import expert_features
from simulator.graph.lower import lower
from simulator.graph.transformer import active_parameter_count, build, parameter_count
from simulator.specs import registry
from simulator.specs.base import Dtype

BF16 = Dtype.bf16
MOE = ["mixtral-8x7b", "qwen1.5-moe-a2.7b", "qwen3-30b-a3b", "deepseek-v3"]


@pytest.mark.parametrize("name", MOE)
def test_total_and_active_parameters(name):
    """Totals within 1% of the published figures. Active counts within 2%: they are
    published rounded to two or three digits (DeepSeek's "37B" is 37.6B counted with the
    embedding table, as Mistral's 12.9B for Mixtral is)."""
    _, arch, spec = registry.model(name)
    graph = build(arch)
    assert parameter_count(graph) == pytest.approx(spec.published_params, rel=0.01)
    assert active_parameter_count(graph) == pytest.approx(spec.published_active_params, rel=0.02)


def test_touched_experts_grow_with_batch():
    """Uniform top-4 routing over 60 experts: one token touches 4; 256 tokens touch nearly all."""
    touched_1, per_expert_1 = expert_features(1, (60, 4, 1))
    assert touched_1 == pytest.approx(4.0) and per_expert_1 == pytest.approx(1.0)
    touched_256, _ = expert_features(256, (60, 4, 1))
    assert touched_256 == pytest.approx(60 * (1 - (56 / 60) ** 256))
    assert expert_features(16, (60, 4, 1))[0] == pytest.approx(60 * (1 - (56 / 60) ** 16))


def _bytes_per_decode_step(name, batch, position):
    """Weights a decode step reads (all but the expert weights and the gathered embedding,
    plus the touched experts) and the KV cache it reads."""
    _, arch, _ = registry.model(name)
    t = lower(arch, BF16, BF16, BF16, False)
    experts = arch.moe_layers * arch.num_experts * 3 * arch.hidden_size * arch.expert_ffn_size * 2
    embedding = arch.vocab_size * arch.hidden_size * 2
    touched, _ = expert_features(batch, (arch.num_experts, arch.experts_per_token, 1))
    touched_bytes = experts / arch.num_experts * touched
    return t.weight_bytes - experts - embedding + touched_bytes, batch * (position + 1) * t.kv_bytes_per_token


@pytest.mark.parametrize("batch", [1, 256])
def test_moe_decode_step_reads_the_touched_experts(batch):
    """qwen1.5-moe-a2.7b on an H100, ideal stack: a decode step streams the dense weights,
    the experts its batch touches (4 of 60 per layer at batch 1, nearly all 60 at batch 256)
    and the KV cache, at 3.35 TB/s; compute is far below that at both sizes. The hand count
    leaves out the activations (each token's 4 expert inputs and outputs: about 4% of the
    bytes at batch 256, 0.1% at batch 1)."""
    weights, kv = _bytes_per_decode_step("qwen1.5-moe-a2.7b", batch, 512)
    p = simulator.predict(model="qwen1.5-moe-a2.7b", hardware="h100-sxm", stack="ideal", batch=batch, prompt=512,
                          output=2)
    assert p.tpot_s == pytest.approx((weights + kv) / 3.35e12, rel=0.01 if batch == 1 else 0.05)
    assert p.tpot_s >= (weights + kv) / 3.35e12


def test_moe_batch_256_reads_far_more_expert_weight_than_batch_1():
    one = simulator.predict(model="mixtral-8x7b", hardware="h100-sxm", stack="ideal", batch=1, prompt=128,
                            output=2, weight_dtype="fp8")
    many = simulator.predict(model="mixtral-8x7b", hardware="h100-sxm", stack="ideal", batch=256, prompt=128,
                             output=2, weight_dtype="fp8")
    # batch 1 touches 2 of 8 experts a layer, batch 256 all 8: expert bytes x4 (experts are 96% of weights)
    assert 2.5 < many.tpot_s / one.tpot_s < 4.5


def test_mla_cache_holds_the_latent_and_the_rotary_key():
    """DeepSeek-V3: (512 + 64) values a token and layer, 61 layers, bf16 = 70,272 B a token,
    against 2 x 128 heads x 128 x 61 x 2 = 7.99 MB for full multi-head K and V."""
    _, arch, _ = registry.model("deepseek-v3")
    t = lower(arch, BF16, BF16, BF16, False)
    assert t.kv_bytes_per_token == 61 * (512 + 64) * 2
    p = simulator.predict(model="deepseek-v3", hardware="h200-sxm", stack="ideal", batch=4, prompt=1000, output=24,
                          weight_dtype="fp8", tp=8)
    assert p.memory.kv_cache_bytes == 4 * 1024 * 61 * 576 * 2


def test_mla_decode_attends_over_the_latent_and_prefill_expands_it():
    p = simulator.predict(model="deepseek-v3", hardware="h200-sxm", stack="ideal", batch=1, prompt=4096, output=2,
                          weight_dtype="fp8", tp=8)
    ops = {o.name: o for o in p.breakdown}
    assert ops["attention_latent"].prefill_time_s == 0 and ops["attention_latent"].decode_step_time_s > 0
    assert ops["kv_b_proj"].decode_step_time_s == 0 and ops["kv_b_proj"].prefill_time_s > 0
    assert ops["attention"].decode_step_time_s == 0


def test_expert_parallel_all_to_all():
    """qwen3-30b-a3b over 4 devices with ep = 4: each holds 32 of 128 experts; every MoE
    layer dispatches and gathers each token's 8 expert inputs by all-to-all."""
    p = simulator.predict(model="qwen3-30b-a3b", hardware="h100-sxm", stack="ideal", batch=64, prompt=256,
                          output=2, ep=4)
    ops = {o.name: o for o in p.breakdown}
    assert p.devices == 4
    per_layer = 3 / 4 * (16 * 8 * 2048 * 2) / 450e9 + 3 * 2e-6      # 16 local tokens x 8 experts x 2048 x bf16
    assert ops["moe_dispatch"].decode_step_time_s == pytest.approx(48 * per_layer, rel=1e-9)
