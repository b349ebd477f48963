"""The reference decoder of the `pytorch-ref` stack (README.md, "The reference stack").

A lean Llama-style decoder written directly in PyTorch with random bf16
weights drawn on the GPU. Everything the stack describes is here, and nothing
more is fused than what the named torch calls do:

per layer (prefill and decode alike)
    rms_norm -> qkv = h @ Wqkv.t() [-> qkv + bqkv, a separate add, when the
    model has q/k/v biases] -> rotary on q and k as separate elementwise ops
    (neg, cat, mul, mul, add each) -> K and V copied into the static cache
    [layers, batch, kv_heads, max_len, head_dim] -> flash SDPA -> o @ Wo.t()
    -> residual add -> rms_norm -> gu = h @ Wgu.t() -> silu(gate) * up
    -> down matmul -> residual add
then the final rms_norm (over every position), the LM head on the last
position of each sequence only, and a greedy argmax.

Variants (config.ModelConfig): a mixture-of-experts model runs moe.moe_mlp in place of the
gate_up / silu * up / down block; the FP8 W8A8 variant (linear_dtype "fp8") runs every
layer's qkv, o, gate_up and down through fp8.fp8_linear (e4m3 weights with per-row scales,
per-token activation quantization, torch._scaled_mm), while embedding, LM head, norms,
rotary, attention and the KV cache stay bf16. The rotary tables hold ``max_positions``
rows: the harness sizes them for the longest point of the run.

Attention
    prefill: SDPA(q, k, v, is_causal=True, enable_gqa=kv_heads < heads) on the
             freshly computed q, k, v ([B, heads, S, head_dim] views);
    decode:  q [B, heads, head_dim] viewed as [B, kv_heads, heads // kv_heads,
             head_dim] attends, unmasked, to cache[:, :, :C+1] of its layer.
Both run with the flash backend forced (sdpa_kernel(FLASH_ATTENTION)) on CUDA.

The model it builds is a config.ModelConfig: the simulator's Architecture of the model.
This module imports torch lazily.
"""

from __future__ import annotations

import contextlib

from validation.harness.config import ModelConfig, config_from_dict
from validation.harness.fp8 import fp8_linear, quantize_weight
from validation.harness.moe import moe_mlp


# --------------------------------------------------------------------------- torch part


def _sdpa_ctx(device_type: str):
    """Force the flash backend on CUDA (the stack's attention); no-op elsewhere."""
    if device_type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def _rope(x, cos, sin):
    """Rotary embedding as separate elementwise ops: x*cos + rotate_half(x)*sin."""
    import torch

    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    rot = torch.cat((-x2, x1), dim=-1)
    return x * cos + rot * sin


def _mm(x, w):
    """x @ W.t() for a bf16 weight W [out, in], or the FP8 linear for (Wq, sw)."""
    return fp8_linear(x, *w) if isinstance(w, tuple) else x @ w.t()


class RefDecoder:
    """Random-weight reference decoder. Weights are [out, in], used as x @ W.t()."""

    def __init__(self, cfg: ModelConfig, device="cuda", dtype=None, max_positions: int = 8192 + 64, seed: int = 0):
        import torch

        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype or torch.bfloat16
        if (cfg.fp8 or cfg.is_moe) and self.dtype != torch.bfloat16:
            raise ValueError(f"{cfg.name}: the FP8 and MoE layers of the reference stack run in bf16, not {self.dtype}")
        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        self._gen = g
        c = cfg

        def w(*shape):  # [..., out, in], std in^-1/2
            t = torch.empty(*shape, device=self.device, dtype=self.dtype)
            return t.normal_(0.0, shape[-1] ** -0.5, generator=g)

        def linear(out_f, in_f):  # a layer's linear weight: bf16, or (e4m3, row scales) in the FP8 variant
            return quantize_weight(w(out_f, in_f)) if c.fp8 else w(out_f, in_f)

        def vec(n, mean=0.0, std=0.02):
            t = torch.empty(n, device=self.device, dtype=self.dtype)
            return t.normal_(mean, std, generator=g)

        self.embed = torch.empty(c.vocab, c.hidden, device=self.device, dtype=self.dtype).normal_(0.0, 1.0, generator=g)
        self.lm_head = self.embed if c.tied_embeddings else w(c.vocab, c.hidden)
        self.final_norm = vec(c.hidden, 1.0)
        self.ln1, self.ln2, self.wqkv, self.bqkv, self.wo, self.wgu, self.wd = [], [], [], [], [], [], []
        self.qn, self.kn, self.wr = [], [], []
        for _ in range(c.layers):
            self.ln1.append(vec(c.hidden, 1.0))
            self.wqkv.append(linear(c.qkv_out, c.hidden))
            self.bqkv.append(vec(c.qkv_out) if c.qkv_bias else None)
            if c.qk_norm:
                self.qn.append(vec(c.head_dim, 1.0))
                self.kn.append(vec(c.head_dim, 1.0))
            self.wo.append(linear(c.hidden, c.q_dim))
            self.ln2.append(vec(c.hidden, 1.0))
            if c.is_moe:  # router [E, hidden]; experts' fused gate+up [E, 2f, hidden], down [E, hidden, f]
                self.wr.append(w(c.experts, c.hidden))
                self.wgu.append(w(c.experts, 2 * c.expert_ffn, c.hidden))
                self.wd.append(w(c.experts, c.hidden, c.expert_ffn))
            else:
                self.wgu.append(linear(2 * c.ffn, c.hidden))
                self.wd.append(linear(c.hidden, c.ffn))
        self.max_positions = max_positions
        self._make_rope(max_positions)

    def _make_rope(self, n: int):
        import torch

        hd = self.cfg.head_dim
        inv = 1.0 / (self.cfg.rope_theta ** (torch.arange(0, hd, 2, device=self.device, dtype=torch.float32) / hd))
        t = torch.arange(n, device=self.device, dtype=torch.float32)
        f = torch.outer(t, inv)
        emb = torch.cat((f, f), dim=-1)
        self.cos = emb.cos().to(self.dtype)
        self.sin = emb.sin().to(self.dtype)

    # ---------------------------------------------------------------- caches
    def new_cache(self, batch: int, max_len: int, fill_random: bool = True):
        """Static KV cache: two tensors [layers, batch, kv_heads, max_len, head_dim]."""
        import torch

        c = self.cfg
        shape = (c.layers, batch, c.kv_heads, max_len, c.head_dim)
        k = torch.empty(shape, device=self.device, dtype=self.dtype)
        v = torch.empty(shape, device=self.device, dtype=self.dtype)
        if fill_random:  # never time on zeros / uninitialised memory
            for t in (k, v):
                for l in range(c.layers):
                    t[l].normal_(0.0, 1.0, generator=self._gen)
        return k, v

    def random_tokens(self, *shape):
        import torch

        return torch.randint(0, self.cfg.vocab, shape, device=self.device, generator=self._gen)

    # ---------------------------------------------------------------- forward passes
    def _mlp_and_residual(self, l, x):
        import torch.nn.functional as F

        c = self.cfg
        h = F.rms_norm(x, (c.hidden,), self.ln2[l], c.rms_norm_eps)
        if c.is_moe:
            return x + self._reduce(moe_mlp(h, self.wr[l], self.wgu[l], self.wd[l], c.top_k))
        gu = _mm(h, self.wgu[l])
        gate, up = gu.split(c.ffn, dim=-1)
        a = F.silu(gate) * up
        return x + self._reduce(_mm(a, self.wd[l]))

    def _reduce(self, y):
        """A layer's attention-output and MLP-output partial sums: whole on one device (the
        tensor-parallel decoder, parallel_model.py, all-reduces them here)."""
        return y

    def _head(self, x, B, S, return_logits):
        import torch.nn.functional as F

        c = self.cfg
        x = F.rms_norm(x, (c.hidden,), self.final_norm, c.rms_norm_eps)
        last = x.view(B, S, c.hidden)[:, -1]
        logits = last @ self.lm_head.t()
        nxt = logits.argmax(dim=-1)
        return (nxt, logits) if return_logits else nxt

    def prefill(self, tokens, kcache, vcache, return_logits=False):
        """tokens [B, S] from position 0; fills kcache/vcache[:, :B, :, :S]."""
        import torch.nn.functional as F

        c = self.cfg
        B, S = tokens.shape
        with _sdpa_ctx(self.device.type):
            x = F.embedding(tokens.reshape(B * S), self.embed)
            for l in range(c.layers):
                x = self._prefill_layer(l, x, B, S, kcache[l, :B], vcache[l, :B])
            return self._head(x, B, S, return_logits)

    def _prefill_layer(self, l, x, B, S, kc, vc):
        """Layer l of a prefill over x [B S, hidden] from position 0; writes kc/vc [B, kv_heads, :S]."""
        import torch.nn.functional as F

        c = self.cfg
        H, KV, hd = c.heads, c.kv_heads, c.head_dim
        cos = self.cos[:S].view(1, S, 1, hd)
        sin = self.sin[:S].view(1, S, 1, hd)
        h = F.rms_norm(x, (c.hidden,), self.ln1[l], c.rms_norm_eps)
        qkv = _mm(h, self.wqkv[l])
        if c.qkv_bias:
            qkv = qkv + self.bqkv[l]
        qkv = qkv.view(B, S, H + 2 * KV, hd)
        q = qkv[:, :, :H]
        k = qkv[:, :, H : H + KV]
        v = qkv[:, :, H + KV :]
        if c.qk_norm:
            q = F.rms_norm(q, (hd,), self.qn[l], c.rms_norm_eps)
            k = F.rms_norm(k, (hd,), self.kn[l], c.rms_norm_eps)
        q = _rope(q, cos, sin)  # [B, S, H, hd]
        k = _rope(k, cos, sin)  # [B, S, KV, hd]
        kt, vt = k.transpose(1, 2), v.transpose(1, 2)  # [B, KV, S, hd]
        kc[:, :, :S].copy_(kt)
        vc[:, :, :S].copy_(vt)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), kt, vt, is_causal=True, enable_gqa=KV < H)
        o = o.transpose(1, 2).reshape(B * S, H * hd)
        x = x + self._reduce(_mm(o, self.wo[l]))
        return self._mlp_and_residual(l, x)

    def decode(self, tokens, pos: int, kcache, vcache, return_logits=False):
        """One token per sequence (tokens [B]) at position `pos`, attending over pos+1 positions."""
        import torch.nn.functional as F

        (B,) = tokens.shape
        with _sdpa_ctx(self.device.type):
            x = F.embedding(tokens, self.embed)  # [B, hidden]
            for l in range(self.cfg.layers):
                x = self._decode_layer(l, x, pos, kcache[l, :B], vcache[l, :B])
            return self._head(x, B, 1, return_logits)

    def _decode_layer(self, l, x, pos: int, kc, vc):
        """Layer l of a decode step over x [B, hidden] at position `pos`; writes kc/vc[:, :, pos]."""
        import torch.nn.functional as F

        c = self.cfg
        B = x.shape[0]
        H, KV, hd = c.heads, c.kv_heads, c.head_dim
        h = F.rms_norm(x, (c.hidden,), self.ln1[l], c.rms_norm_eps)
        qkv = _mm(h, self.wqkv[l])
        if c.qkv_bias:
            qkv = qkv + self.bqkv[l]
        qkv = qkv.view(B, H + 2 * KV, hd)
        q = qkv[:, :H]
        k = qkv[:, H : H + KV]
        v = qkv[:, H + KV :]
        if c.qk_norm:
            q = F.rms_norm(q, (hd,), self.qn[l], c.rms_norm_eps)
            k = F.rms_norm(k, (hd,), self.kn[l], c.rms_norm_eps)
        q = _rope(q, self.cos[pos], self.sin[pos])  # [B, H, hd], contiguous
        k = _rope(k, self.cos[pos], self.sin[pos])
        kc[:, :, pos].copy_(k)
        vc[:, :, pos].copy_(v)
        qg = q.view(B, KV, H // KV, hd)
        o = F.scaled_dot_product_attention(qg, kc[:, :, : pos + 1], vc[:, :, : pos + 1])
        o = o.reshape(B, H * hd)
        x = x + self._reduce(_mm(o, self.wo[l]))
        return self._mlp_and_residual(l, x)


_TINY = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
             num_key_value_heads=2, vocab_size=1000, rms_norm_eps=1e-6, rope_theta=10000.0)
SELF_CHECK_VARIANTS = ("bf16", "fp8", "moe")


def tiny_config(variant: str = "bf16") -> ModelConfig:
    """The self-check's tiny models: a Qwen2-style dense decoder (q/k/v biases) in bf16, the
    same in the FP8 variant, and a Qwen3-MoE-style one (8 experts, top-2, q/k norms)."""
    if variant not in SELF_CHECK_VARIANTS:
        raise ValueError(f"self-check variant {variant!r}, expected one of {SELF_CHECK_VARIANTS}")
    if variant == "moe":
        return config_from_dict("selfcheck-tiny-moe", dict(_TINY, model_type="qwen3_moe", head_dim=32, num_experts=8,
                                                           num_experts_per_tok=2, moe_intermediate_size=128))
    cfg = config_from_dict("selfcheck-tiny", dict(_TINY, model_type="qwen2", head_dim=64))
    return cfg.variant("fp8") if variant == "fp8" else cfg


def self_check(cfg: ModelConfig | None = None, device="cuda", dtype=None, S: int = 37, B: int = 2) -> dict:
    """Consistency of the two paths: logits of decode at position S after a
    prefill of S tokens vs. the prefill of the same S+1 tokens. Returns the
    relative error (bf16 on the GPU lands near 1e-2; fp32 on the CPU near 1e-6).
    ``cfg`` defaults to tiny_config("bf16")."""
    import torch

    cfg = cfg or tiny_config("bf16")
    m = RefDecoder(cfg, device=device, dtype=dtype, max_positions=S + 8, seed=1)
    toks = m.random_tokens(B, S + 1)
    k1, v1 = m.new_cache(B, S + 8)
    k2, v2 = m.new_cache(B, S + 8)
    _, ref = m.prefill(toks, k1, v1, return_logits=True)
    m.prefill(toks[:, :S].contiguous(), k2, v2)
    _, dec = m.decode(toks[:, S].contiguous(), S, k2, v2, return_logits=True)
    ref, dec = ref.double(), dec.double()
    rel = ((dec - ref).norm() / ref.norm()).item()
    kv_rel = ((k2[:, :, :, : S + 1].double() - k1[:, :, :, : S + 1].double()).norm() / k1[:, :, :, : S + 1].double().norm()).item()
    return {"model": cfg.name, "linear_dtype": cfg.linear_dtype, "moe": cfg.is_moe, "logits_rel_err": rel, "kv_rel_err": kv_rel,
            "argmax_equal": bool((dec.argmax(-1) == ref.argmax(-1)).all().item()), "finite": bool(torch.isfinite(dec).all().item())}
