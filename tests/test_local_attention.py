"""Local attention (sliding windows and chunks) beside global layers, by hand: a two-layer
model with one local and one global layer (KV bytes, prefill pairs, decode sums across the
split), the built-in hybrids' KV memory at long context, Mistral's uniform window as before,
and the sweep kernel equal to predict."""
import json

import numpy as np
import pytest

import simulator
from simulator.engine.bind import bind
from simulator.engine.kernels import roofline
from simulator.engine.kernels.phases import (causal_pairs, chunk_features, decode_segments, decode_step_features,
                                             prefill_features)
from simulator.graph.lower import lower
from simulator.graph.ops import KV, LKV, LPAIR, PAIR, OpKind
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.hf_config import normalise

BF16 = Dtype.bf16
HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 256, 4, 2, 64
KV_BYTES_PER_LAYER = 2 * KV_HEADS * HEAD_DIM * 2          # K and V, bf16: 512 B per token and layer


def _sliding_config(window: int) -> dict:
    """Gemma 2 with two layers: layer 0 slides over ``window`` tokens, layer 1 attends fully."""
    return {"model_type": "gemma2", "hidden_size": HIDDEN, "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "intermediate_size": 512, "vocab_size": 1000,
            "num_hidden_layers": 2, "sliding_window": window}


def _chunked_config(chunk: int) -> dict:
    """Llama 4 text with two layers: layer 0 (rotary) attends within chunks, layer 1 (NoPE) fully."""
    return {"model_type": "llama4_text", "hidden_size": HIDDEN, "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "intermediate_size": 256,
            "intermediate_size_mlp": 512, "vocab_size": 1000, "num_hidden_layers": 2, "num_local_experts": 4,
            "num_experts_per_tok": 1, "attention_chunk_size": chunk, "no_rope_layer_interval": 2}


@pytest.fixture(params=["sliding", "chunked"])
def two_layer(request, tmp_path):
    """(config path, Architecture, signed window) of the two-layer model, W = 64 or chunks of 64."""
    cfg = _sliding_config(64) if request.param == "sliding" else _chunked_config(64)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path), normalise(cfg), 64 if request.param == "sliding" else -64


def _span(c: int, window: int) -> int:
    """Keys a local layer's query at c attends: min(c + 1, W), or (c mod C) + 1."""
    return min(c + 1, window) if window > 0 else c % -window + 1


def test_two_layers_split_into_one_local_and_one_global(two_layer):
    _, arch, window = two_layer
    assert (arch.local_layers, arch.global_layers, arch.chunked_attention) == (1, 1, window < 0)
    t = lower(arch, BF16, BF16, BF16, False)
    assert t.window == window
    assert t.kv_bytes_per_token == 2 * KV_BYTES_PER_LAYER and t.local_kv_bytes_per_token == KV_BYTES_PER_LAYER
    local, glob = t.names.index("attention_local"), t.names.index("attention")
    assert t.local[local] == 1 and t.local[glob] == 0 and t.repeat[local] == t.repeat[glob] == 1
    assert t.flops[local, PAIR] == t.flops[glob, LPAIR] == 0 and t.flops[local, LPAIR] == t.flops[glob, PAIR] > 0
    assert t.bytes[local, KV] == t.bytes[glob, LKV] == 0 and t.bytes[local, LKV] == t.bytes[glob, KV] > 0


@pytest.mark.parametrize("batch,positions", [(1, 10), (3, 64), (2, 1000), (5, 130)])
def test_kv_cache_bytes_by_hand(two_layer, batch, positions):
    """B (P + min(P, 64)) x 512 B: the global layer keeps every position, the local one at most
    the window (or its current chunk at its fullest)."""
    path, _, _ = two_layer
    p = simulator.predict(model=path, hardware="h100-sxm", stack="ideal", batch=batch, prompt=positions - 1,
                          output=1)
    assert p.memory.kv_cache_bytes == batch * (positions + min(positions, 64)) * KV_BYTES_PER_LAYER


@pytest.mark.parametrize("seq_len", [1, 63, 64, 65, 128, 200, 1000])
def test_prefill_pairs_by_hand(two_layer, seq_len):
    _, arch, window = two_layer
    f = prefill_features(3, seq_len, window)
    assert f[PAIR] == 3 * seq_len * (seq_len + 1) / 2
    assert f[LPAIR] == 3 * sum(_span(c, window) for c in range(seq_len)) == 3 * causal_pairs(seq_len, window)
    assert f[KV] == f[LKV] == 3 * seq_len


@pytest.mark.parametrize("start,length", [(0, 5), (60, 10), (64, 1), (100, 200), (127, 2), (500, 1)])
def test_chunk_pass_reads_by_hand(start, length):
    """A pass of ``length`` tokens after ``start``: local pairs the sum of the spans; cached
    positions read: the window's (sliding), from the first query's chunk on (chunked)."""
    for window in (64, -64):
        f = chunk_features(2, start, length, window)
        assert f[PAIR] == 2 * sum(c + 1 for c in range(start, start + length))
        assert f[LPAIR] == 2 * sum(_span(c, window) for c in range(start, start + length))
        assert f[KV] == 2 * (start + length)
        kept = min(start + length, 64) if window > 0 else start + length - start // 64 * 64
        assert f[LKV] == 2 * kept


def _step_s(b, batch: int, position: int) -> float:
    return roofline.evaluate_point(*b.pass_arrays(), decode_step_features(batch, position, b.table.window,
                                                                          b.table.moe))[0].sum()


@pytest.mark.parametrize("prompt,output", [(10, 40), (40, 100), (63, 2), (64, 3), (100, 300), (70, 400)])
def test_decode_sum_equals_every_step_across_the_split(two_layer, prompt, output):
    """TPOT x (N - 1) is the sum of the decode steps at S .. S + N - 2, each at its own features
    (local span min(c + 1, W) or (c mod C) + 1), across the window or several chunk boundaries."""
    path, arch, window = two_layer
    st = registry.stack("pytorch-ref")
    b = bind(lower(arch, BF16, BF16, BF16, False), registry.hardware("h100-sxm"), st, BF16)
    p = simulator.predict(model=path, hardware="h100-sxm", batch=4, prompt=prompt, output=output)
    steps = [_step_s(b, 4, c) + b.step_overhead_s for c in range(prompt, prompt + output - 1)]
    assert p.tpot_s * (output - 1) == pytest.approx(sum(steps), rel=1e-9)


def test_decode_segments_are_linear_pieces(two_layer):
    """decode_segments (the Python view of the segments) gives each step's features exactly."""
    _, _, window = two_layer
    for f0, f1, lo, hi in decode_segments(2, 30, 300, window):
        for c in range(lo, hi + 1):
            np.testing.assert_array_equal(f0 + f1 * c, decode_step_features(2, c, window))


@pytest.mark.parametrize("batch,prompt,output", [(1, 30, 200), (8, 100, 50), (4, 2000, 300), (16, 63, 2)])
def test_sweep_kernel_equals_predict(two_layer, batch, prompt, output):
    path, _, _ = two_layer
    many = simulator.predict_many(path, "h100-sxm", batch=np.array([batch, batch]),
                                  prompt=np.array([prompt, prompt + 1]), output=np.array([output, output]))
    for k, s in enumerate((prompt, prompt + 1)):
        p = simulator.predict(model=path, hardware="h100-sxm", batch=batch, prompt=s, output=output)
        assert many["ttft_s"][k] == pytest.approx(p.ttft_s, rel=1e-9)
        assert many["tpot_s"][k] == pytest.approx(p.tpot_s, rel=1e-9)
        assert many["kv_cache_bytes"][k] == pytest.approx(p.memory.kv_cache_bytes, rel=1e-12)


# (model, local layers, global layers, window, tensor parallel): the layer counts by hand from
# the configs (transformers' default layer_types; Llama 4: a NoPE global layer every 4th)
HYBRIDS = [("gemma-2-9b", 21, 21, 4096, 1), ("gemma-3-1b", 22, 4, 512, 1), ("gemma-3-4b", 29, 5, 1024, 1),
           ("gpt-oss-20b", 12, 12, 128, 1), ("gpt-oss-120b", 18, 18, 128, 1), ("llama-4-maverick", 36, 12, 8192, 8)]


@pytest.mark.parametrize("model,local,glob,window,tp", HYBRIDS)
def test_hybrid_kv_memory_at_long_context_by_hand(model, local, glob, window, tp):
    """B (P x global layers + min(P, W) x local layers) x 2 KV heads/tp x head_dim x 2 B."""
    _, arch, _ = registry.model(model)
    assert (arch.local_layers, arch.global_layers, arch.sliding_window) == (local, glob, window)
    positions = min(arch.max_positions or 32768, 32768)
    per_layer = 2 * max(1, arch.num_kv_heads // tp) * arch.head_dim * 2
    p = simulator.predict(model=model, hardware="h200-sxm", stack="ideal", batch=2, prompt=positions - 1, output=1,
                          tp=tp)
    assert p.memory.kv_cache_bytes == 2 * (positions * glob + min(positions, window) * local) * per_layer


def test_llama4_chunked_layers_from_no_rope_layers():
    """An explicit no_rope_layers list (0: NoPE, full attention) overrides the interval."""
    cfg = {**_chunked_config(8192), "num_hidden_layers": 4, "no_rope_layers": [1, 0, 0, 1]}
    arch = normalise(cfg)
    assert (arch.local_layers, arch.global_layers, arch.chunked_attention) == (2, 2, True)
    assert normalise({**cfg, "no_rope_layers": []}).global_layers == 2      # empty: interval 2 -> layers 1, 3


def test_gpt_oss_sinks_cost_a_softmax_term_per_head_and_query():
    """One learned logit per head joins each softmax: 5 FLOPs per head and query, beside the
    2 x heads x 2 head_dim + 5 heads per pair (< 1% once a query attends 128 keys)."""
    _, arch, _ = registry.model("gpt-oss-20b")
    t = lower(arch, BF16, BF16, BF16, False)
    i = t.names.index("attention_local")
    assert t.flops[i, 0] == 0 and t.flops[i, 2] == 5 * arch.num_heads
    assert t.flops[i, LPAIR] == 2 * arch.num_heads * 2 * arch.head_dim + 5 * arch.num_heads


def test_mistral_uniform_window_is_one_local_operator():
    """Every Mistral layer is local: one attention operator on the local features, no global
    KV; its features at prefill and decode are the single-window formulas."""
    _, arch, _ = registry.model("mistral-7b")
    t = lower(arch, BF16, BF16, BF16, False)
    attention = [i for i, k in enumerate(t.kind) if OpKind(int(k)).is_attention]
    assert [t.names[i] for i in attention] == ["attention"] and t.local[attention[0]] == 1
    assert t.repeat[attention[0]] == 32 and t.local_kv_bytes_per_token == t.kv_bytes_per_token
    f = prefill_features(2, 5000, t.window)
    assert f[LPAIR] == 2 * (4096 * 4097 / 2 + (5000 - 4096) * 4096)
    assert decode_step_features(2, 9000, t.window)[LPAIR] == 2 * 4096
    far = simulator.predict(model="mistral-7b", hardware="h100-sxm", batch=2, prompt=20000, output=2)
    assert far.memory.kv_cache_bytes == 2 * 4096 * t.kv_bytes_per_token


def test_prefill_attention_ramp_takes_the_local_layers_pairs(two_layer):
    """A local layer's prefill attention reaches L / (L + L0) of its rate at its own attended
    length L = P_l / T, not the global layers' P / T."""
    _, arch, window = two_layer
    b = bind(lower(arch, BF16, BF16, BF16, False), registry.hardware("h100-sxm"), registry.stack("pytorch-ref"), BF16)
    flops, mem_s, alt_mem_s, op = b.pass_arrays("prefill")
    f = prefill_features(2, 1000, window)
    i = b.table.names.index("attention_local")
    half = op[i, roofline.OP_HALF_LENGTH]
    assert half > 0 and op[i, roofline.OP_LOCAL] == 1
    length = f[LPAIR] / f[2]
    compute = flops[i] @ f / (op[i, roofline.OP_PEAK] * length / (length + half))
    expected = (roofline.combine(compute, mem_s[i] @ f, op[i, roofline.OP_OVERLAP]) + op[i, roofline.OP_OVERHEAD])
    assert roofline.evaluate_point(flops, mem_s, alt_mem_s, op, f)[0][i] == pytest.approx(expected, rel=1e-12)
