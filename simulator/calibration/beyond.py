"""Profile fields from the microbenchmarks beyond the bf16 envelope
(validation/harness/micro_beyond.py: a supplement file with its own sections, and no matmul or
launch section):

  fp8 GEMM     torch._scaled_mm rowwise fitted as a GEMM of 1-byte elements on the fp8 peak,
               small-M GEMV path allowed (fits.fit_gemm): the profile's ``dtypes.fp8.gemm``
  quantize     the per-token e4m3 quantization chain, a streaming kernel: t = n t_k + bytes /
               (bw f), bytes = elements x 3 (bf16 in, e4m3 out) x the stack's quantize traffic
  expert GEMM  torch._grouped_mm, groups = experts holding tokens, rows = tokens per expert
  MoE routing  router to index_add_ without the expert GEMMs: t = n t_k + bytes / (bw f), n and
               bytes the engine's moe_route and moe_combine operators' plus the router GEMV's
  routed tiles the grouped GEMM's M tile range [min, max] (grouped.routed_tile_scale) that best
               gives the measured routed / uniform time of each layer's expert GEMMs in a
               pass profile (validation/harness/pass_profile.py: the same GEMMs on the offsets
               the router made and on the same rows spread evenly), at each layer's measured
               spread; the bounds are searched over powers of two
  expert J/B   a grouped expert GEMM's J per byte = the base fit's J/B x (its loops' dynamic J/B /
               a bf16 GEMV's, measured side by side: the gemv_energy section): decode-sized
               grouped GEMMs stream at ~0.6 of the GEMV's rate while drawing its power
  FP8 energy   J/FLOP of FP8 = the base fit's bf16 J/FLOP x (FP8 / bf16) of two 8192^3 GEMM loops
               measured side by side (dynamic energy: minus (idle + busy) x time): ``dtypes.fp8``
Each fit goes through the engine's kernel (fits.py); the fields are merged over the base
file's (calibrate.py).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from simulator.calibration import fits as F
from simulator.calibration.profile import merge_fields, quantity, ratio
from simulator.engine.bind import peak_for
from simulator.specs.base import Dtype
from simulator.specs.measurement import MicroFile

STREAM_BYTES = 2.0        # bf16 activations


SECTIONS = ("fp8_matmul", "grouped_mm", "moe_routing", "fp8_energy", "eager_chains", "gemv_energy")
PASS_PROFILE_SCHEMA = "llmsim-harness-pass-profile/1"
TILE_CHOICES = (16, 32, 64, 128, 256, 512, 1024)      # candidate M tile bounds (rows), powers of two


def is_supplement(micro: MicroFile) -> bool:
    """A micro_beyond file: its sections, and no GEMM or launch section of its own."""
    return not micro.matmul and micro.launch is None and any(k in (micro.model_extra or {}) for k in SECTIONS)


def _rows(micro: MicroFile, section: str, **rename) -> list[SimpleNamespace]:
    rows = (micro.model_extra or {}).get(section) or []
    out = []
    for r in rows:
        r = dict(r)
        for new, old in rename.items():
            r[new] = r[old]
        out.append(SimpleNamespace(**r))
    return out


def _stack_kernels_and_traffic(kind: str) -> tuple[int, float]:
    from simulator.specs import registry

    stack = registry.stack("pytorch-ref")       # the stack the harness measures
    return stack.kernels(kind), stack.traffic(kind)


def fp8_gemm_fields(supplements: list[MicroFile], hardware, units: float) -> tuple[dict, list[F.Fit]]:
    rows = [r for s in supplements for r in _rows(s, "fp8_matmul")]
    if not rows or Dtype.fp8 not in hardware.peak_flops():
        return {}, []
    peak = peak_for(hardware.peak_flops(), Dtype.fp8, hardware.name)
    fit = F.fit_gemm(rows, peak, hardware.main_memory.bandwidth_bytes_per_s, units, 1.0, name="fp8 gemm",
                     gemv_grid=F.GPU_GEMV_MAX_M, latency="scaled_mm_s")
    return {"dtypes": {"fp8": {"gemm": _gemm_fields(fit.params)}}}, [fit]


def _stream_fit(name: str, bytes_, kernels: int, t, bandwidth) -> F.Fit:
    """t = kernels x t_k + bytes / (bw f) through the engine's streaming kernel."""
    res = F._log_fit(lambda x: F.streaming_time_s((x[0], kernels * x[1]), bytes_, bandwidth), t, [0.5, 2e-6],
                     [0.01, 0.0], [1.5, F.MAX_FIXED_S])
    return F.Fit(name, dict(memory_fraction=res.x[0], overhead_s=res.x[1]), np.expm1(res.fun))


def quantize_fields(supplements: list[MicroFile], bandwidth) -> tuple[dict, list[F.Fit]]:
    rows = [r for s in supplements for r in _rows(s, "fp8_matmul") if getattr(r, "quantize_s", None)]
    if not rows:
        return {}, []
    kernels, traffic = _stack_kernels_and_traffic("quantize")
    elements = np.array([r.quantize_elements for r in rows], float)
    fit = _stream_fit("quantize", elements * (STREAM_BYTES + 1.0) * traffic, kernels,
                      np.array([r.quantize_s for r in rows]), bandwidth)
    return {"memory_fraction_by_kind": {"quantize": ratio(fit.params["memory_fraction"])},
            "kernel_overhead_by_kind": {"quantize": quantity(fit.params["overhead_s"], "s")}}, [fit]


def expert_gemm_fields(supplements: list[MicroFile], hardware, dtype: Dtype, units: float) -> tuple[dict, list[F.Fit]]:
    rows = [r for s in supplements for r in _rows(s, "grouped_mm", m="tokens_per_expert")]
    if not rows:
        return {}, []
    peak = peak_for(hardware.peak_flops(), dtype, hardware.name)
    fit = F.fit_gemm(rows, peak, hardware.main_memory.bandwidth_bytes_per_s, units, dtype.bits / 8,
                     name="expert gemm", groups="active_experts", gemv_grid=F.GPU_GEMV_MAX_M)
    return {"expert_gemm": _gemm_fields(fit.params)}, [fit]


def _gemm_fields(g: dict) -> dict:
    """A GemmEfficiency's YAML fields from a fit_gemm result."""
    fields = {"peak_fraction": ratio(g["peak_fraction"]), "memory_fraction": ratio(g["memory_fraction"]),
              "tile_m": g["tile_m"], "tile_n": g["tile_n"], "overlap_exponent": ratio(g["overlap_exponent"])}
    if g.get("gemv_max_m"):
        fields.update(gemv_max_m=g["gemv_max_m"], gemv_memory_fraction=ratio(g["gemv_memory_fraction"]))
    return fields


def routing_fields(supplements: list[MicroFile], bandwidth) -> tuple[dict, list[F.Fit]]:
    rows = [r for s in supplements for r in _rows(s, "moe_routing")]
    if not rows:
        return {}, []
    route_k, _ = _stack_kernels_and_traffic("moe_route")
    combine_k, _ = _stack_kernels_and_traffic("moe_combine")
    experts, top_k, hidden, tokens = (np.array([getattr(r, key) for r in rows], float)
                                      for key in ("experts", "top_k", "hidden", "tokens"))
    a = STREAM_BYTES        # the bytes rows of graph/lower.py's MOE_ROUTE and MOE_COMBINE, plus the router GEMV
    bytes_ = tokens * (experts * a + 2.0 * top_k * hidden * a + (top_k + 1.0) * hidden * a + hidden * a) \
        + experts * hidden * a
    fit = _stream_fit("moe routing", bytes_, route_k + combine_k + 1, np.array([r.latency_s for r in rows]), bandwidth)
    f, t_k = ratio(fit.params["memory_fraction"]), quantity(fit.params["overhead_s"], "s")
    return {"memory_fraction_by_kind": {"moe_route": f, "moe_combine": f},
            "kernel_overhead_by_kind": {"moe_route": t_k, "moe_combine": t_k}}, [fit]


def fp8_energy_ratio(supplements: list[MicroFile]) -> float | None:
    """(FP8 / bf16) dynamic J per FLOP of the side-by-side GEMM loops (the newest file's)."""
    for micro in reversed(supplements):
        loops = (micro.model_extra or {}).get("fp8_energy")
        idle = micro.environment.idle_power
        if not loops or idle is None or idle.idle_power_w is None or any(
                (loops.get(k) or {}).get("energy_per_call_j") is None for k in ("tiny_kernels", "matmul_bf16", "matmul_fp8")):
            continue
        base = loops["tiny_kernels"]["power_mean_w"]          # idle + busy: the device awake
        dyn = {k: (loops[k]["energy_per_call_j"] - base * loops[k]["time_per_call_s"]) / loops[k]["flops_per_call"]
               for k in ("matmul_bf16", "matmul_fp8")}
        return dyn["matmul_fp8"] / dyn["matmul_bf16"]
    return None


def pass_profile_paths(hardware_name: str) -> list:
    """A device's pass-profile files (harness pass_profile.py), oldest first."""
    from simulator.specs.measurement import measurement_root

    return sorted((measurement_root() / hardware_name).glob("**/pass-profile-*.json"))


def pass_profiles(hardware_name: str) -> list[dict]:
    """The pass-profile documents of pass_profile_paths (their schema's)."""
    import json

    docs = [json.loads(path.read_text()) for path in pass_profile_paths(hardware_name)]
    return [doc for doc in docs if doc.get("schema") == PASS_PROFILE_SCHEMA]


def routed_tile_fields(profiles: list[dict]) -> tuple[dict, list[F.Fit]]:
    """expert_gemm's group_tile_min/max: the pair (min <= max, powers of two) whose
    routed_tile_scale is nearest (median |log ratio|) the measured routed / uniform times."""
    from simulator.engine.kernels.grouped import routed_tile_scale

    rows = [x for doc in profiles for r in doc.get("results", []) for x in r.get("routing", [])]
    if not rows:
        return {}, []
    measured = np.array([np.sqrt(x["gate_up_routed_s"] / x["gate_up_uniform_s"] * x["down_routed_s"] / x["down_uniform_s"])
                         for x in rows])

    def misfit(lo, hi):
        pred = np.array([routed_tile_scale(x["mean"], x["sd"], lo, hi) for x in rows])
        return float(np.median(np.abs(np.log(pred / measured)))), pred

    best = min(((lo, hi) for lo in TILE_CHOICES for hi in TILE_CHOICES if lo <= hi), key=lambda b: misfit(*b)[0])
    pred = misfit(*best)[1]
    fit = F.Fit("routed tiles", dict(group_tile_min=best[0], group_tile_max=best[1]), pred / measured - 1.0)
    return {"expert_gemm": {"group_tile_min": best[0], "group_tile_max": best[1]}}, [fit]


def gemv_loop_j_per_byte(supplements: list[MicroFile]) -> dict[str, float]:
    """Dynamic J per byte of each gemv_energy loop of the newest file that has them:
    (energy per call - awake power x time per call) / bytes per call, the awake power being
    the tiny-kernel loop's mean ({} when no file has the loops)."""
    for micro in reversed(supplements):
        loops = (micro.model_extra or {}).get("gemv_energy") or {}
        base = (loops.get("tiny_kernels") or {}).get("power_mean_w")
        if base is None:
            continue
        return {k: (v["energy_per_call_j"] - base * v["time_per_call_s"]) / v["bytes_per_call"]
                for k, v in loops.items()
                if k != "tiny_kernels" and v.get("energy_per_call_j") is not None and v.get("bytes_per_call")}
    return {}


def expert_energy_ratio(supplements: list[MicroFile]) -> float | None:
    """(grouped expert GEMM / bf16 GEMV) dynamic J per byte of the gemv_energy loops (the
    newest file's; median over its grouped loops)."""
    jb = gemv_loop_j_per_byte(supplements)
    grouped = [v for k, v in jb.items() if k.startswith("grouped_")]
    if not grouped or "gemv_bf16" not in jb:
        return None
    return float(np.median(grouped)) / jb["gemv_bf16"]


def fp8_weight_energy_ratio(supplements: list[MicroFile]) -> float | None:
    """(FP8 / bf16) dynamic J per weight byte of the side-by-side GEMV loops (the newest
    file's): an e4m3 weight is one byte, but its path through the scaled matmul moves and
    converts it element by element, so a byte costs more than a bf16 byte (1.6x on an H200)."""
    jb = gemv_loop_j_per_byte(supplements)
    if "gemv_fp8" not in jb or "gemv_bf16" not in jb:
        return None
    return jb["gemv_fp8"] / jb["gemv_bf16"]


def supplement_fields(supplements: list[MicroFile], hardware, dtype: Dtype) -> tuple[dict, list[F.Fit]]:
    """The fields every beyond-envelope fit gives (dicts merged one level deep)."""
    units = float(hardware.compute_units or 1)
    bandwidth = hardware.main_memory.bandwidth_bytes_per_s
    fields, fits = {}, []
    for part, part_fits in (fp8_gemm_fields(supplements, hardware, units), quantize_fields(supplements, bandwidth),
                            expert_gemm_fields(supplements, hardware, dtype, units),
                            routing_fields(supplements, bandwidth), routed_tile_fields(pass_profiles(hardware.name))):
        merge_fields(fields, part)
        fits += part_fits
    return fields, fits
