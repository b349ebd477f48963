"""The FP8 W8A8 linear layer of the reference stack (reference-stack.md, "FP8 W8A8 variant").

    weight  Wq [out, in] float8_e4m3fn, sw [1, out] fp32 with sw_n = amax_k |W[n, k]| / 448
    input   sx [T, 1] fp32 = max(amax_k |x[t, k]|, 1e-12) / 448, xq = (x.float() / sx).to(e4m3)
    output  y [T, out] bf16 = torch._scaled_mm(xq, Wq.t(), scale_a=sx, scale_b=sw)  (rowwise scales)

so y[t, n] = sx_t sw_n sum_k xq[t, k] Wq[n, k]. The activation quantization is separate
elementwise kernels, as written (abs, amax, float, clamp, div; float, div, cast to e4m3 = 8
kernels), then one scaled matmul. 448 is the largest finite e4m3 value (OCP FP8 spec).
torch is imported inside the functions.
"""
from __future__ import annotations

E4M3_MAX = 448.0               # largest finite float8_e4m3fn value
SCALE_FLOOR = 1e-12            # an all-zero row would otherwise divide by zero
QUANTIZE_KERNELS = 8           # launches of quantize_rowwise (see the module docstring)


def quantize_rowwise(x):
    """(xq [T, K] e4m3, sx [T, 1] fp32): per-row dynamic scales, sx = max(amax|x_t|, eps) / 448."""
    import torch

    sx = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=SCALE_FLOOR) / E4M3_MAX
    return (x.float() / sx).to(torch.float8_e4m3fn), sx


def quantize_weight(w):
    """(Wq [N, K] e4m3, sw [1, N] fp32) of a bf16 weight [N, K]: one scale per output row."""
    import torch

    sw = w.abs().amax(dim=1, keepdim=True).float().clamp(min=SCALE_FLOOR) / E4M3_MAX
    wq = (w.float() / sw).to(torch.float8_e4m3fn)
    return wq, sw.t().contiguous()


def fp8_linear(x, wq, sw):
    """x [T, K] bf16 -> x W^T [T, N] bf16 through e4m3 with rowwise scales (the module docstring)."""
    import torch

    xq, sx = quantize_rowwise(x)
    return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)


def fp8_weight(n: int, k: int):
    """(Wq [n, k] e4m3, sw [1, n] fp32) of a random bf16 weight (fp8.quantize_weight)."""
    import torch

    return quantize_weight(torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * k ** -0.5)
