"""Fit a stack's device profile from microbenchmarks only (never from end-to-end runs).

Input: ``micro-*.json`` files written by validation/harness (schema in
simulator/specs/measurement.py). The pieces, one module each:
  fits        GEMM, streaming kinds (rms_norm -> norm, add -> residual adds, silu and mul ->
              activation, mul/add -> rotary, copy -> KV write) and attention, each by least
              squares through the engine's own roofline kernel (each measured call one
              operator row of roofline.evaluate_each)
  launch      graph per-kernel gap, eager launch rate per op kind, one graph replay's fixed
              cost; the host's launch floors as the median over the device's sessions
  in_context  a synthetic model's whole decode steps and prefills (none of the validated
              shapes): the per-kernel gap beyond the isolated fits, and the host's eager
              launch cost at realistic tensor sizes
  energy      idle power, busy power, J per FLOP and per byte from the power loops
  profile     the fitted numbers as the profile's YAML fields, merged over dtypes
Output: a DeviceProfile's fields and a fit report (median and p90 |error| of each fit).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from simulator.calibration import fits as F
from simulator.calibration.beyond import (expert_energy_ratio, fp8_energy_ratio, fp8_weight_energy_ratio, is_supplement,
                                         pass_profile_paths, supplement_fields)
from simulator.calibration.energy import energy_fields, fit_energy
from simulator.calibration.files import device_sessions, relative_source, supplements
from simulator.calibration.in_context import in_context
from simulator.calibration.launch import host_floors, launch_fields
from simulator.calibration.profile import merge_dtype_fields, merge_fields, profile_from_fields, quantity, ratio
from simulator.calibration.serving_host import with_serving_host
from simulator.engine.bind import peak_for
from simulator.specs.base import Dtype
from simulator.specs.fit_facts import digest
from simulator.specs.measurement import MicroFile, load_micro

# profile kind -> the harness's elementwise ops whose (DRAM-resident) timings fit it
STREAMING = {"norm": ("rms_norm",), "residual_add": ("add",), "activation": ("silu", "mul"),
             "rotary": ("mul", "add"), "kv_write": ("add",), "embedding": ("add",), "sampling": ("add",)}


def _isolated_fields(micro: MicroFile, hardware, dtype: Dtype, extra: list[MicroFile] = ()) -> tuple[dict, list[F.Fit]]:
    """The profile's fields from the isolated microbenchmarks (operators one at a time);
    ``extra``: micro_beyond supplements, whose attention rows join the attention fits and whose
    other sections give the beyond-envelope fields (calibration/beyond.py)."""
    peak = peak_for(hardware.peak_flops(), dtype, hardware.name)
    bandwidth = hardware.main_memory.bandwidth_bytes_per_s
    units = float(hardware.compute_units or 1)
    gemm = F.fit_gemm(micro.matmul, peak, bandwidth, units, dtype.bits / 8, cpu=micro.from_cpu)
    streams = {kind: F.fit_streaming(kind, [r for r in micro.elementwise if r.op in ops and not r.inputs_l2_resident],
                                     bandwidth) for kind, ops in STREAMING.items()}
    attention = list(micro.attention) + [r for e in extra for r in e.attention]
    prefill = F.fit_prefill_attention([r for r in attention if r.phase == "prefill"], peak)
    decode = F.fit_decode_attention([r for r in attention if r.phase == "decode"], bandwidth, units,
                                    regimes=not micro.from_cpu)
    d = decode.params
    energy, energy_check = fit_energy(micro)
    g = gemm.params
    overheads = {kind: f.params["overhead_s"] for kind, f in streams.items()}
    overheads.update(matmul=g["overhead_s"], lm_head=g["overhead_s"], expert_matmul=g["overhead_s"],
                     attention=decode.params["overhead_s"])
    fields = {
        "gemm": {"peak_fraction": ratio(g["peak_fraction"]), "memory_fraction": ratio(g["memory_fraction"]),
                 "tile_m": g["tile_m"], "tile_n": g["tile_n"], "overlap_exponent": ratio(g["overlap_exponent"]),
                 **({"gemv_max_m": g["gemv_max_m"], "gemv_memory_fraction": ratio(g["gemv_memory_fraction"])}
                    if "gemv_max_m" in g else {})},
        "attention_compute_fraction": ratio(prefill.params["compute_fraction"]),
        "attention_memory_fraction": ratio(decode.params["memory_fraction"]),
        "attention_half_length": ratio(prefill.params["half_length"]),
        "attention_block_overhead": quantity(decode.params["block_overhead_s"], "s"),
        **({"attention_split_below": F.SPLIT_BELOW,
            "attention_split_memory_fraction": ratio(d["split_memory_fraction"]),
            "attention_oversubscribed_memory_fraction": ratio(d["oversubscribed_memory_fraction"])}
           if "split_memory_fraction" in d else {}),
        "elementwise_memory_fraction": ratio(streams["residual_add"].params["memory_fraction"]),
        "memory_fraction_by_kind": {k: ratio(f.params["memory_fraction"]) for k, f in streams.items()},
        "kernel_overhead_by_kind": {k: quantity(v, "s") for k, v in overheads.items()},
        **launch_fields(micro),
        **energy_fields(energy),
    }
    fits = [gemm, *(streams[k] for k in ("norm", "residual_add", "activation")), prefill, decode]
    if extra:
        more, more_fits = supplement_fields(list(extra), hardware, dtype)
        merge_fields(fields, more)
        fits += more_fits
        ratio_fp8 = fp8_energy_ratio(list(extra))
        if ratio_fp8 is not None and energy is not None and "fp8" in fields.get("dtypes", {}):
            fields["dtypes"]["fp8"]["energy_per_flop"] = quantity(energy["flop"] * ratio_fp8, "J/FLOP")
        ratio_fp8_byte = fp8_weight_energy_ratio(list(extra))
        if ratio_fp8_byte is not None and energy is not None and "fp8" in fields.get("dtypes", {}):
            fields["dtypes"]["fp8"]["weight_energy_per_byte"] = quantity(energy["byte"] * ratio_fp8_byte, "J/B")
        ratio_expert = expert_energy_ratio(list(extra))
        if ratio_expert is not None and energy is not None:
            fields["expert_energy_per_byte"] = quantity(energy["byte"] * ratio_expert, "J/B")
    return fields, fits + ([energy_check] if energy_check is not None else [])


def calibrate(micro: MicroFile, hardware, source: str, host_micros: dict[str, MicroFile] | None = None,
              extra: dict[str, MicroFile] | None = None) -> tuple[dict, list[F.Fit]]:
    """Fit the device profile of ``hardware`` (a spec) from one microbenchmark file: the
    profile's YAML fields (quantities as unit strings) and the fit report. ``host_micros``
    ({path: micro}, every session of the device) makes the prefill launch costs the median
    over the sessions that measured them, so no one machine's host decides them."""
    dtype = Dtype(micro.dtype)
    extra = {k: m for k, m in (extra or {}).items() if m.dtype == micro.dtype}
    fields, fits = _isolated_fields(micro, hardware, dtype, list(extra.values()))
    source = "; ".join([source, *extra, *(relative_source(p) for p in pass_profile_paths(hardware.name))])
    fields, context_fits, host_scale = in_context({**fields, "fitted_from": source, "fitted_for": digest(hardware)},
                                                  micro, hardware, dtype)
    return host_floors(fields, host_micros, host_scale), fits + context_fits


def calibrate_dtypes(micros: dict[Dtype, tuple[str, MicroFile]], hardware,
                     host_micros: dict[str, MicroFile] | None = None,
                     extra: dict[str, MicroFile] | None = None) -> tuple[dict, list[F.Fit]]:
    """calibrate() for each dtype's file ({dtype: (source, micro)}), merged into one entry;
    fit names carry the dtype when there is more than one."""
    per_dtype, fits = {}, []
    for dtype, (source, micro) in micros.items():
        fields, dtype_fits = calibrate(micro, hardware, source, host_micros=host_micros, extra=extra)
        per_dtype[dtype] = fields
        for f in dtype_fits:
            fits.append(dataclasses.replace(f, name=f"{dtype.value} {f.name}") if len(micros) > 1 else f)
    return merge_dtype_fields(per_dtype), fits


def fit_device(hardware, micro_paths: list[Path]) -> tuple[dict, list[F.Fit]]:
    """The device entry fitted from micro files (one per dtype), with the host launch costs
    from every micro session of the device, and the fit report; it must read back as a profile."""
    micros = {}
    for path in micro_paths:
        if not Path(path).name.startswith("micro-"):   # pass profiles, mixed iterations: read by their own fits
            continue
        micro = load_micro(path)
        if is_supplement(micro):            # found by supplements() below whichever paths are given
            continue
        micros[Dtype(micro.dtype)] = (relative_source(path), micro)
    fields, fits = calibrate_dtypes(micros, hardware, host_micros=device_sessions(hardware.name),
                                    extra=supplements(hardware.name))
    fields, fits = with_serving_host(fields, fits, hardware)       # calibration/serving_host.py
    profile_from_fields(fields)
    return fields, fits
