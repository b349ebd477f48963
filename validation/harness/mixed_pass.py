"""The continuous-batching mode's forward pass (serving.py's docstring describes it): the
scheduled chunks of one iteration as one pass over the flattened tokens on the reference
decoder's weights (``MixedBatch``), its self-check against the reference prefill, and the
probe of the masked-attention kernel it runs on."""
from __future__ import annotations

import time


def _masked_sdpa(q, k, v, mask):
    """SDPA with a boolean mask on the memory-efficient kernel (math if it cannot run), never
    cuDNN's, which builds a plan for every new shape (a decode batch's span grows by one
    position an iteration: ~40 ms each, seen in this harness's first run)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def probe_masked_attention(device="cuda") -> dict:
    """Milliseconds of one masked decode attention ([2 slots, 8 KV heads, 4 queries each,
    head dim 64]) at three new spans (700, 701, 702 positions) through SDPA's default choice
    of kernel and through _masked_sdpa: a kernel that plans per shape shows in every call."""
    import torch
    import torch.nn.functional as F

    out = {}
    for label, attend in (("default", lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
                          ("efficient", _masked_sdpa)):
        times = []
        for span in (700, 701, 702):
            q = torch.randn(2, 8, 4, 64, device=device, dtype=torch.bfloat16)
            k, v = (torch.randn(2, 8, span, 64, device=device, dtype=torch.bfloat16) for _ in range(2))
            mask = torch.ones(2, 1, 1, span, device=device, dtype=torch.bool)
            torch.cuda.synchronize()
            t = time.perf_counter()
            attend(q, k, v, mask)
            torch.cuda.synchronize()
            times.append(round((time.perf_counter() - t) * 1e3, 3))
        out[label] = times
    return out


class MixedBatch:
    """The mixed forward pass over a RefDecoder's weights with a slot KV cache."""

    def __init__(self, model, slots: int, max_len: int):
        import torch

        c = model.cfg
        self.m, self.c = model, c
        shape = (c.layers, slots, c.kv_heads, max_len, c.head_dim)
        self.k = torch.zeros(shape, device=model.device, dtype=model.dtype)
        self.v = torch.zeros(shape, device=model.device, dtype=model.dtype)
        self.last_token = torch.zeros(slots, device=model.device, dtype=torch.long)
        self.free = list(range(slots))
        self.slot_of: dict[int, int] = {}

    # ---------------------------------------------------------------- slots
    def assign(self, running: list[int], chunks) -> None:
        """Free the slots of requests no longer running; give new ones the lowest free slot."""
        alive = set(running)
        for r in [r for r in self.slot_of if r not in alive]:
            self.free.append(self.slot_of.pop(r))
        self.free.sort()
        for ch in chunks:
            r = ch.ids[0]
            if r not in self.slot_of:
                self.slot_of[r] = self.free.pop(0)

    # ---------------------------------------------------------------- the pass
    def forward(self, chunks, prompt_ids=None):
        """One iteration over ``chunks`` (policy.Chunk, one request each); returns the logits
        of each entry's last token (decode entries first). A chunk's tokens are random, or
        ``prompt_ids[request][start:start + length]`` when given (the self-check)."""
        import torch
        import torch.nn.functional as F

        from validation.harness.model import _mm, _rope, _sdpa_ctx

        m, c = self.m, self.c
        dev = m.device
        H, KV, hd = c.heads, c.kv_heads, c.head_dim
        G = H // KV
        dec = [ch for ch in chunks if ch.length == 1]
        pre = [ch for ch in chunks if ch.length > 1]
        order = dec + pre
        slots = [self.slot_of[ch.ids[0]] for ch in order]
        positions, token_slots = [], []
        for ch, s in zip(order, slots):
            positions.extend(range(ch.start, ch.start + ch.length))
            token_slots.extend([s] * ch.length)
        T, D = len(positions), len(dec)
        pos = torch.tensor(positions, device=dev)
        tok_slot = torch.tensor(token_slots, device=dev)
        ids = []
        if D:
            ids.append(self.last_token[tok_slot[:D]])
        if T > D and prompt_ids is not None:
            ids.extend(prompt_ids[ch.ids[0]][ch.start:ch.start + ch.length] for ch in pre)
        elif T > D:
            ids.append(torch.randint(0, c.vocab, (T - D,), device=dev))
        x = F.embedding(torch.cat(ids) if len(ids) > 1 else ids[0], m.embed)
        cos, sin = m.cos[pos].view(T, 1, hd), m.sin[pos].view(T, 1, hd)
        if D:
            hi = max(slots[:D]) + 1
            dec_slots = tok_slot[:D]
            span = max(ch.start for ch in dec) + 1
            slot_pos = torch.zeros(hi, device=dev, dtype=torch.long)
            slot_pos[dec_slots] = pos[:D]
            mask = (torch.arange(span, device=dev).view(1, span) <= slot_pos.view(hi, 1)).view(hi, 1, 1, span)
        chunk_masks = {}
        for ch in pre:
            if ch.start > 0:
                kpos = torch.arange(ch.start + ch.length, device=dev).view(1, 1, -1)
                qpos = torch.arange(ch.start, ch.start + ch.length, device=dev).view(1, -1, 1)
                chunk_masks[ch] = (kpos <= qpos).expand(G, -1, -1).reshape(G * ch.length, -1)
        for l in range(c.layers):
            h = F.rms_norm(x, (c.hidden,), m.ln1[l], c.rms_norm_eps)
            qkv = _mm(h, m.wqkv[l])
            if c.qkv_bias:
                qkv = qkv + m.bqkv[l]
            qkv = qkv.view(T, H + 2 * KV, hd)
            q, k, v = qkv[:, :H], qkv[:, H:H + KV], qkv[:, H + KV:]
            if c.qk_norm:
                q = F.rms_norm(q, (hd,), m.qn[l], c.rms_norm_eps)
                k = F.rms_norm(k, (hd,), m.kn[l], c.rms_norm_eps)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            kc, vc = self.k[l], self.v[l]
            kc[tok_slot, :, pos] = k
            vc[tok_slot, :, pos] = v
            outs = []
            if D:
                qg = torch.zeros(hi, KV, G, hd, device=dev, dtype=q.dtype)
                qg[dec_slots] = q[:D].reshape(D, KV, G, hd)
                o = _masked_sdpa(qg, kc[:hi, :, :span], vc[:hi, :, :span], mask)
                outs.append(o[dec_slots].reshape(D, H * hd))
            offset = D
            for ch, s in zip(pre, slots[D:]):
                L = ch.length
                qc = q[offset:offset + L].transpose(0, 1)                     # [H, L, hd]
                if ch.start == 0:
                    with _sdpa_ctx(dev.type):
                        o = F.scaled_dot_product_attention(qc[None], k[offset:offset + L].transpose(0, 1)[None],
                                                           v[offset:offset + L].transpose(0, 1)[None],
                                                           is_causal=True, enable_gqa=KV < H)[0]
                else:
                    end = ch.start + L
                    o = _masked_sdpa(qc.reshape(1, KV, G * L, hd), kc[s:s + 1, :, :end], vc[s:s + 1, :, :end],
                                     chunk_masks[ch])
                    o = o.reshape(H, L, hd)
                outs.append(o.transpose(0, 1).reshape(L, H * hd))
                offset += L
            o = torch.cat(outs) if len(outs) > 1 else outs[0]
            x = x + _mm(o, m.wo[l])
            x = m._mlp_and_residual(l, x)
        x = F.rms_norm(x, (c.hidden,), m.final_norm, c.rms_norm_eps)
        ends, total = [], 0
        for ch in order:
            total += ch.length
            ends.append(total - 1)
        logits = x[torch.tensor(ends, device=dev)] @ m.lm_head.t()
        self.last_token[torch.tensor(slots, device=dev)] = logits.argmax(dim=-1)
        return logits


def self_check(cfg, device="cuda") -> dict:
    """The mixed pass against the reference decoder's prefill: two requests (prompts 40 and
    23) prefilled in chunks (0-24 and 24-40 beside 0-23), then one decode iteration of both
    at their own positions; each entry's logits against RefDecoder.prefill of the same
    tokens. Returns the largest relative error (bf16: about 1e-2) and whether argmax agrees."""

    from simulator.serving.policy import Chunk
    from validation.harness.model import RefDecoder

    m = RefDecoder(cfg, device=device, max_positions=128, seed=3)
    batch = MixedBatch(m, 4, 64)
    toks = {0: m.random_tokens(41), 1: m.random_tokens(24)}
    steps = [[Chunk((0,), 0, 24), Chunk((1,), 0, 23)], [Chunk((0,), 24, 16)], [Chunk((0,), 40, 1), Chunk((1,), 23, 1)]]
    checks = [(0, 24), (1, 23), (0, 40), (0, 41), (1, 24)]          # (request, tokens) whose last logits to compare
    got = []
    for i, chunks in enumerate(steps):
        batch.assign([0, 1], chunks)
        if i == 2:
            batch.last_token[batch.slot_of[0]] = toks[0][40]
            batch.last_token[batch.slot_of[1]] = toks[1][23]
        logits = batch.forward(chunks, toks)
        dec = [ch for ch in chunks if ch.length == 1]
        got.extend(logits[j] for j in range(len(dec)))
        got.extend(logits[len(dec) + j] for j in range(len(chunks) - len(dec)))
    worst, same = 0.0, True
    for (r, n), g in zip(checks, got):
        k, v = m.new_cache(1, 64)
        _, ref = m.prefill(toks[r][:n].view(1, n), k, v, return_logits=True)
        ref, g = ref[0].double(), g.double()
        worst = max(worst, ((g - ref).norm() / ref.norm()).item())
        same = same and bool(g.argmax() == ref.argmax())
    return {"logits_rel_err": worst, "argmax_equal": same}
