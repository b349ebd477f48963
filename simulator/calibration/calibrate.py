"""Fit a stack's device profile from microbenchmarks only (never from end-to-end runs).

Input: one ``micro-*.json`` written by validation/harness (see its README). Each fit uses
the same formula the engine applies to that operator kind, so a fitted profile
reproduces the microbenchmarks it came from:
  GEMM        t = ||(2MNK / (peak f_c eff(M, N)), bytes / (bw f_m))||_p + t_0
              eff = tile and wave quantization (tile sizes chosen from a grid), p the
              overlap exponent; least squares on log time over every (M, N, K)
  elementwise t = t_0 + bytes / (bw f) per kind: rms_norm -> norm, add -> residual adds,
              silu and mul -> activation, mul/add -> rotary, copy -> KV write
  attention   prefill t = FLOPs / (peak f_c L / (L + L0)) + t_0, L the mean attended length;
              decode t = KV bytes / (bw f_m) + B x KV heads x t_block / units + t_0
  launches    graph per-kernel gap, eager launch rate per op kind, one graph replay's fixed cost
  in context  a synthetic model's whole decode steps and prefills (none of the validated
              shapes): the per-kernel gap beyond the isolated fits, and the host's eager
              launch cost at realistic tensor sizes
  energy      idle power; busy power (a loop of tiny kernels); (E - (idle + busy) t) / FLOPs of
              a GEMM loop and / bytes of a copy loop; other loops check the result
Output: a DeviceProfile and a fit report (median and p90 |error| of each fit).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from simulator.units import parse as parse_quantity
from simulator.errors import SpecError
from simulator.graph.ops import OpKind
from simulator.engine.bind import peak_for
from simulator.specs.base import Dtype
from simulator.specs.stack import DeviceProfile

# the most a kernel's fixed cost may be fitted to: an eager CPU op (a composite rms_norm,
# flash attention's setup) pays up to ~0.1-0.3 ms; a GPU kernel a few microseconds
MAX_FIXED_S = 1e-3
# a CPU's tiled GEMMs block rows per core far smaller than a GPU's thread blocks
CPU_TILE_GRID = ((16, 64), (32, 64), (32, 128))
CPU_GEMV_MAX_M = (1, 2, 4, 8, 16)
TILE_GRID = ((1, 1), (64, 64), (64, 128), (128, 64), (128, 128), (128, 256))
CONTEXT_STACK = "pytorch-ref"      # the stack whose kernel structure the harness runs


@dataclasses.dataclass
class Fit:
    """One fitted group: parameters and the relative errors on the points it used."""

    name: str
    params: dict
    errors: np.ndarray

    def summary(self) -> dict:
        e = np.abs(self.errors)
        return {"fit": self.name, "n": int(e.size), "median_abs_error": float(np.median(e)),
                "p90_abs_error": float(np.percentile(e, 90)), "max_abs_error": float(e.max())}


def _from_cpu(micro: dict) -> bool:
    """A file of the harness's CPU path: ops are synchronous, one dispatch cost each."""
    return "dispatch_per_op_s" in micro["launch"]


def micro_dtype(micro: dict) -> Dtype:
    """The dtype a micro file measured (GPU files predate the field: bf16)."""
    return Dtype(micro["environment"].get("dtype") or "bf16")


def load_micro(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(str(path), "", f"cannot read microbenchmark JSON ({exc})") from None
    if data.get("schema") != "llmsim-harness-micro/1":
        raise SpecError(str(path), "schema", "expected 'llmsim-harness-micro/1' (a file from validation/harness)")
    return data


def _wave_efficiency(m, n, tile_m, tile_n, units):
    """Vectorised twin of engine.roofline.gemm_efficiency."""
    if tile_m <= 1 and tile_n <= 1:
        return np.ones_like(m)
    tm, tn = np.ceil(m / tile_m), np.ceil(n / tile_n)
    tiles = tm * tn
    waves = np.ceil(tiles / units)
    return (m * n) / (tm * tile_m * tn * tile_n) * tiles / (waves * units)


def _p_norm(a, b, p):
    big = np.maximum(a, b)
    return big * ((a / big) ** p + (b / big) ** p) ** (1.0 / p)


def gemm_time_s(params, m, n, k, peak, bandwidth, units, element_bytes=2.0, gemv=(0, 1.0)):
    """The engine's GEMM time for x @ W.t() of shape (M, K) x (K, N), elements of
    ``element_bytes``; ``gemv`` = (gemv_max_m, gemv_memory_fraction): at most that many rows
    run as a GEMV (no tiles, its own bandwidth fraction)."""
    fc, fm, p, t0, tile_m, tile_n = params
    as_gemv = m <= gemv[0]
    efficiency = np.where(as_gemv, 1.0, _wave_efficiency(m, n, tile_m, tile_n, units))
    compute = 2 * m * n * k / (peak * fc * efficiency)
    memory = element_bytes * (n * k + m * (n + k)) / (bandwidth * np.where(as_gemv, gemv[1], fm))
    return _p_norm(compute, memory, p) + t0


def fit_gemm(rows, peak, bandwidth, units, element_bytes=2.0, cpu=False) -> Fit:
    """Least squares on log time over every (M, N, K), for each tile shape of the grid (and on
    a CPU each GEMV row limit: its BLAS streams small-M products through a GEMV kernel at
    another rate than its tiled GEMM); the best fit wins."""
    m, n, k = (np.array([r[key] for r in rows], float) for key in ("m", "n", "k"))
    t = np.array([r["latency_s"] for r in rows])
    best = None
    for tile_m, tile_n in TILE_GRID + (CPU_TILE_GRID if cpu else ()):
        for gemv_max_m in (CPU_GEMV_MAX_M if cpu else (0,)):
            def residual(x):
                gemv = (gemv_max_m, x[4]) if gemv_max_m else (0, 1.0)
                return np.log(gemm_time_s((*x[:4], tile_m, tile_n), m, n, k, peak, bandwidth, units, element_bytes,
                                          gemv) / t)
            x0, lo, hi = [0.8, 0.85, 4.0, 2e-6], [0.05, 0.05, 1.0, 0.0], [1.0, 1.5, 50.0, MAX_FIXED_S]
            if gemv_max_m:                  # the GEMV's bandwidth fraction
                x0, lo, hi = x0 + [0.85], lo + [0.05], hi + [1.5]
            res = least_squares(residual, x0, bounds=(lo, hi))
            if best is None or res.cost < best[0].cost:
                best = (res, tile_m, tile_n, gemv_max_m)
    res, tile_m, tile_n, gemv_max_m = best
    fc, fm, p, t0 = res.x[:4]
    gemv = dict(gemv_max_m=gemv_max_m, gemv_memory_fraction=res.x[4]) if gemv_max_m else {}
    return Fit("gemm", dict(peak_fraction=fc, memory_fraction=fm, overlap_exponent=p, overhead_s=t0,
                            tile_m=tile_m, tile_n=tile_n, **gemv), np.expm1(res.fun))


def fit_streaming(name: str, rows, bandwidth) -> Fit:
    """t = t0 + bytes / (bandwidth f): fixed cost and achieved fraction of a streaming kernel."""
    b = np.array([r["bytes"] for r in rows], float)
    t = np.array([r["latency_s"] for r in rows])

    def residual(x):
        return np.log((x[1] + b / (bandwidth * x[0])) / t)
    res = least_squares(residual, [0.8, 2e-6], bounds=([0.05, 0.0], [1.5, MAX_FIXED_S]))
    return Fit(name, dict(memory_fraction=res.x[0], overhead_s=res.x[1]), np.expm1(res.fun))


def prefill_attention_time_s(params, flops, length, peak):
    """Causal flash prefill: FLOPs at f x L / (L + L0) of peak, L = (S + 1) / 2 attended keys."""
    fc, l0, t0 = params
    return flops / (peak * fc * length / (length + l0)) + t0


def decode_attention_time_s(params, bytes_, blocks, bandwidth, units):
    """Decode attention: the KV read at f of bandwidth, plus each (sequence, KV head) block's
    fixed cost spread over the units."""
    fm, t_block, t0 = params
    return bytes_ / (bandwidth * fm) + blocks * t_block / units + t0


def fit_prefill_attention(rows, peak) -> Fit:
    f = np.array([r["flops"] for r in rows], float)
    length = np.array([(r["seq_len"] + 1) / 2.0 for r in rows])
    t = np.array([r["latency_s"] for r in rows])
    res = least_squares(lambda x: np.log(prefill_attention_time_s(x, f, length, peak) / t), [0.3, 300.0, 5e-6],
                        bounds=([0.01, 0.0, 0.0], [1.0, 1e5, MAX_FIXED_S]))
    return Fit("attention prefill", dict(compute_fraction=res.x[0], half_length=res.x[1], overhead_s=res.x[2]),
               np.expm1(res.fun))


def fit_decode_attention(rows, bandwidth, units) -> Fit:
    b = np.array([r["bytes"] for r in rows], float)
    blocks = np.array([r["batch"] * r["kv_heads"] for r in rows], float)
    t = np.array([r["latency_s"] for r in rows])
    res = least_squares(lambda x: np.log(decode_attention_time_s(x, b, blocks, bandwidth, units) / t),
                        [0.8, 1e-6, 5e-6], bounds=([0.05, 0.0, 0.0], [1.5, 1e-4, MAX_FIXED_S]))
    return Fit("attention decode", dict(memory_fraction=res.x[0], block_overhead_s=res.x[1], overhead_s=res.x[2]),
               np.expm1(res.fun))


def _streaming_rows(micro: dict, ops: tuple[str, ...]) -> list[dict]:
    return [r for r in micro["elementwise"] if r["op"] in ops and not r["inputs_l2_resident"]]


def _loop(entry: dict, flops_key: str = "flops_per_call", bytes_key: str = "bytes_per_call") -> tuple:
    return entry["energy_per_call_j"], entry["time_per_call_s"], entry.get(flops_key, 0.0), entry.get(bytes_key, 0.0)


def _energy(micro: dict) -> tuple[dict, Fit | None]:
    """Energy coefficients from the idle reading and the power loops:
    busy power    a CUDA graph of tiny kernels (the device awake, next to no work) - idle
    J per FLOP    least squares over the 8192^3 GEMM, copy and GEMV loops, after
    J per byte    (idle + busy) x time
    attention     its own J per FLOP and per byte, solved from the prefill and decode
                  attention loops (a flash kernel spends more than a GEMM or a copy)
    The M = 256 GEMM loop is left out of every fit and reported as a check. Files from
    harness runs without these loops give idle, J per FLOP and J per byte from (f) alone."""
    if "power" not in micro:
        return None, None
    idle = micro["environment"]["idle_power"]["idle_power_w"]
    loops = micro.get("energy") or {}
    power = micro["power"]
    general = [_loop(power["matmul"]), _loop(power["copy"], bytes_key="bytes_moved_per_call")]
    if "tiny_kernels" not in loops:
        (e_mm, t_mm, f_mm, _), (e_cp, t_cp, _, b_cp) = general
        return {"idle": idle, "busy": 0.0, "flop": (e_mm - idle * t_mm) / f_mm, "byte": (e_cp - idle * t_cp) / b_cp}, None
    busy = max(loops["tiny_kernels"]["power_mean_w"] - idle, 0.0)
    base = idle + busy
    general.append(_loop(loops["gemv"]))
    e, t, f, b = (np.array(column, float) for column in zip(*general))
    res = least_squares(lambda x: np.log((base * t + x[0] * 1e-12 * f + x[1] * 1e-12 * b) / e), [0.8, 100.0],
                        bounds=([0.0, 0.0], [100.0, 1e4]))
    per_flop, per_byte = res.x * 1e-12
    (e_p, t_p, f_p, b_p), (e_d, t_d, f_d, b_d) = _loop(loops["attention_prefill"]), _loop(loops["attention_decode"])
    attention = np.linalg.solve([[f_p, b_p], [f_d, b_d]], [e_p - base * t_p, e_d - base * t_d])
    attn_flop, attn_byte = (max(float(v), 0.0) for v in attention)
    coefficients = {"idle": idle, "busy": busy, "flop": per_flop, "byte": per_byte,
                    "attention_flop": attn_flop, "attention_byte": attn_byte}
    e256, t256, f256, b256 = _loop(loops["gemm_m256"])
    check_errors = np.array([*np.expm1(res.fun), (base * t256 + per_flop * f256 + per_byte * b256) / e256 - 1.0])
    return coefficients, Fit("energy: GEMM/copy/GEMV fit, M=256 check", {}, check_errors)


def calibrate(micro: dict, hardware, source: str, host_micros: dict | None = None) -> tuple[dict, list[Fit]]:
    """Fit the device profile of ``hardware`` (a spec) from one microbenchmark file: the
    profile's YAML fields (quantities as unit strings) and the fit report.

    The host's eager launch cost varies between machines far more than the GPU does (the
    same harness saw 209 to 508 us a layer). ``host_micros`` ({path: micro}, every session
    of the device) makes the prefill launch costs the median over the sessions that measured
    them, so no one machine's host decides them."""
    dtype = micro_dtype(micro)
    peak = peak_for(hardware.peak_flops(), dtype, hardware.name)
    bandwidth = hardware.main_memory.bandwidth_bytes_per_s
    units = float(hardware.compute_units or 1)
    gemm = fit_gemm(micro["matmul"], peak, bandwidth, units, dtype.bits / 8, cpu=_from_cpu(micro))
    fits = [gemm]
    streaming = {"norm": ("rms_norm",), "residual_add": ("add",), "activation": ("silu", "mul"),
                 "rotary": ("mul", "add"), "kv_write": ("add",), "embedding": ("add",), "sampling": ("add",)}
    stream_fits = {kind: fit_streaming(kind, _streaming_rows(micro, ops), bandwidth) for kind, ops in streaming.items()}
    fits += [stream_fits[k] for k in ("norm", "residual_add", "activation")]
    prefill = fit_prefill_attention([r for r in micro["attention"] if r["phase"] == "prefill"], peak)
    decode = fit_decode_attention([r for r in micro["attention"] if r["phase"] == "decode"], bandwidth, units)
    fits += [prefill, decode]
    energy, energy_check = _energy(micro)
    if energy_check is not None:
        fits.append(energy_check)
    g = gemm.params
    overheads = {kind: f.params["overhead_s"] for kind, f in stream_fits.items()}
    overheads.update(matmul=g["overhead_s"], lm_head=g["overhead_s"], attention=decode.params["overhead_s"])
    fields = {
        "gemm": {"peak_fraction": _r(g["peak_fraction"]), "memory_fraction": _r(g["memory_fraction"]),
                 "tile_m": g["tile_m"], "tile_n": g["tile_n"], "overlap_exponent": _r(g["overlap_exponent"]),
                 **({"gemv_max_m": g["gemv_max_m"], "gemv_memory_fraction": _r(g["gemv_memory_fraction"])}
                    if "gemv_max_m" in g else {})},
        "attention_compute_fraction": _r(prefill.params["compute_fraction"]),
        "attention_memory_fraction": _r(decode.params["memory_fraction"]),
        "attention_half_length": _r(prefill.params["half_length"]),
        "attention_block_overhead": _q(decode.params["block_overhead_s"], "s"),
        "elementwise_memory_fraction": _r(stream_fits["residual_add"].params["memory_fraction"]),
        "memory_fraction_by_kind": {k: _r(f.params["memory_fraction"]) for k, f in stream_fits.items()},
        "kernel_overhead_by_kind": {k: _q(v, "s") for k, v in overheads.items()},
        **_launch_fields(micro),
        **_energy_fields(energy),
        "fitted_from": source,
    }
    fields, context_fits, host_scale = _in_context(fields, micro, hardware, dtype)
    floors = fields.get("prefill_launch_overhead_by_kind")
    sessions = {path: _eager_launch(m) for path, m in sorted((host_micros or {}).items()) if _eager_launch(m)}
    if floors and sessions:
        floors = {kind: _q(float(np.median([parse_quantity(s["prefill_launch_overhead_by_kind"][kind], "time")
                                              for s in sessions.values()])), "s") for kind in floors}
        fields = {**fields, "host_fitted_from": sorted(sessions)}
    if floors:
        fields = {**fields, "prefill_launch_overhead_by_kind": _shift(floors, scale=host_scale)}
    return fields, fits + context_fits


def _synthetic_times(fields: dict, arch, hardware, points: list[dict], dtype=Dtype.bf16) -> tuple[np.ndarray, object]:
    """Predicted seconds of the synthetic model's measured passes under a provisional profile,
    and the prepared configuration (for its kernel counts)."""
    from simulator.engine.predict import evaluate, prepare
    from simulator.specs import registry
    from simulator.specs.workload import workload

    base = registry.stack(CONTEXT_STACK)
    stack = base.model_copy(update={"devices": {**base.devices, hardware.name: profile_from_fields(fields)}})
    prep = prepare(("synthetic", arch), hardware, stack, dtype, dtype, dtype)
    times = []
    for pt in points:
        if pt["phase"] == "decode":
            p = evaluate(prep, workload(batch=pt["batch"], prompt=pt["context_len"], output=2), require_fit=False)
            times.append(p.tpot_s)
        else:
            p = evaluate(prep, workload(batch=pt["batch"], prompt=pt["prompt_len"], output=1), require_fit=False)
            times.append(p.ttft_s)
    return np.array(times), prep


def _shift(quantities: dict, add_s: float = 0.0, scale: float = 1.0) -> dict:
    return {k: _q(parse_quantity(v, "time") * scale + add_s, "s") for k, v in quantities.items()}


def _launch_fields(micro: dict) -> dict:
    """Per-kernel and per-pass fixed costs. A GPU file has CUDA-graph and eager launch rates;
    a CPU file (launch.dispatch_per_op_s) has the one cost every synchronous op pays on the
    host: no separate launch floor, no graph replay."""
    launch = micro["launch"]
    if _from_cpu(micro):
        return {"kernel_overhead": _q(launch["dispatch_per_op_s"], "s"), "prefill_launch_overhead": "0 s",
                "decode_step_overhead": "0 s"}
    return {"kernel_overhead": _q(launch["graph_per_kernel_s"], "s"),
            "prefill_launch_overhead": _q(launch["eager_per_kernel_s"], "s"), **_eager_launch(micro),
            "decode_step_overhead": _q(max(launch["one_kernel_graph_replay_s"] - launch["graph_per_kernel_s"], 0.0), "s")}


def _energy_fields(energy: dict | None) -> dict:
    if energy is None:                       # no power counter (a CPU in a VM): the class default applies
        return {}
    return {"idle_power": _q(energy["idle"], "W"), "busy_power": _q(energy["busy"], "W"),
            "energy_per_flop": _q(energy["flop"], "J/FLOP"), "energy_per_byte": _q(energy["byte"], "J/B"),
            **({"attention_energy_per_flop": _q(energy["attention_flop"], "J/FLOP"),
                "attention_energy_per_byte": _q(energy["attention_byte"], "J/B")} if "attention_flop" in energy else {})}


def _in_context(fields: dict, micro: dict, hardware, dtype=Dtype.bf16) -> tuple[dict, list[Fit], float]:
    """Kernels in the company of others, from the synthetic model's passes (a shape none of
    the validated models has): a decode step's measured time beyond the isolated fits,
    spread over its kernels, is added to every kernel's overhead (launch gaps between
    different kernels). The smallest (host-bound) prefill's time over the host launch time
    the same file's eager microbenchmarks predict is returned as a host scale (a model of
    real size costs the host more per kernel than the tiny one host_layer uses). Files
    without the section change nothing (scale 1)."""
    from simulator.engine.bind import phase_repeat
    from simulator.specs.model import normalise

    synthetic = micro.get("synthetic")
    if not synthetic:
        return fields, [], 1.0
    arch = normalise(synthetic["config"])
    decode = [pt for pt in synthetic["points"] if pt["phase"] == "decode"]
    prefill = sorted((pt for pt in synthetic["points"] if pt["phase"] == "prefill"),
                     key=lambda pt: pt["batch"] * pt["prompt_len"])
    predicted, prep = _synthetic_times(fields, arch, hardware, decode, dtype)
    table, stack = prep.table, prep.stack
    kernels = sum(r * stack.kernels(OpKind(int(k)).stack_name) for r, k in zip(phase_repeat(table, "decode"), table.kind))
    measured = np.array([pt["latency_s"] for pt in decode])
    gap_s = max(float(np.median((measured - predicted) / kernels)), 0.0)
    fields = {**fields, "kernel_overhead": _shift({"k": fields["kernel_overhead"]}, gap_s)["k"],
              "kernel_overhead_by_kind": _shift(fields["kernel_overhead_by_kind"], gap_s)}
    after, _ = _synthetic_times(fields, arch, hardware, decode, dtype)
    fits = [Fit(f"in context: synthetic decode steps (+{gap_s * 1e6:.2f} us a kernel)", {"gap_s": gap_s},
                after / measured - 1.0)]
    smallest = prefill[0]
    _, prep = _synthetic_times(fields, arch, hardware, [smallest], dtype)
    host_s = prep.bound.host_launch_s
    scale = max(smallest["latency_s"] / host_s, 1.0) if host_s > 0 else 1.0   # no launch floor on a CPU
    floors = fields.get("prefill_launch_overhead_by_kind")
    scaled = {**fields, **({"prefill_launch_overhead_by_kind": _shift(floors, scale=scale)} if floors else {})}
    after, _ = _synthetic_times(scaled, arch, hardware, prefill, dtype)
    fits.append(Fit(f"in context: synthetic prefills (host x{scale:.2f})", {"host_scale": scale},
                    after / np.array([pt["latency_s"] for pt in prefill]) - 1.0))
    return fields, fits, scale


# operator kind -> the eager ops of the reference stack whose launch rates it averages
EAGER_OPS = {"matmul": ("matmul",), "lm_head": ("matmul",), "norm": ("rms_norm",), "attention": ("sdpa",),
             "rotary": ("mul", "neg", "cat", "mul", "add"), "activation": ("silu", "mul"), "residual_add": ("add",),
             "kv_write": ("copy_",), "embedding": ("index_select",), "sampling": ("argmax",)}


# kernels of one reference-stack layer by kind (the host_layer model has no q/k/v bias)
LAYER_KERNELS = {"norm": 2, "matmul": 4, "rotary": 10, "kv_write": 2, "attention": 1, "residual_add": 2,
                 "activation": 2}


def _eager_launch(micro: dict) -> dict:
    """Per-kind eager launch floors from the micro file's ``eager`` section (absent in files
    from harness runs before it existed: then the single tiny-add rate stands for all). When
    the file has ``host_layer`` (a tiny model's eager forward, per layer), the per-op rates
    are scaled so one layer's kernels add up to it: the model code's own host work between
    the calls (views, slicing) is spread over its kernels."""
    eager = micro.get("eager")
    if not eager:
        return {}
    per_kind = {kind: float(np.mean([eager[op]["eager_per_call_s"] for op in ops])) for kind, ops in EAGER_OPS.items()}
    layer = micro.get("host_layer")
    if layer and layer.get("per_layer_s", 0) > 0:
        scale = layer["per_layer_s"] / sum(n * per_kind[k] for k, n in LAYER_KERNELS.items())
        per_kind = {k: v * max(scale, 1.0) for k, v in per_kind.items()}
    return {"prefill_launch_overhead_by_kind": {kind: _q(v, "s") for kind, v in per_kind.items()}}


def newest_micro(folder: Path) -> Path:
    """The most recent microbenchmark file under a device's measurement folder (of bf16, the
    GPUs' one dtype, where there are several)."""
    return next(iter(newest_micros(folder).values()))


def newest_micros(folder: Path) -> dict[Dtype, Path]:
    """The most recent microbenchmark file of each dtype under a device's folder (a GPU's
    files are all bf16; a CPU session writes one file per dtype)."""
    files = sorted(Path(folder).rglob("micro-*.json"))
    if not files:
        raise SpecError(str(folder), "", "no micro-*.json microbenchmark file (run validation/harness first)")
    newest = {}
    for f in files:
        micro = json.loads(f.read_text())
        dtype, date = micro_dtype(micro), micro["environment"].get("date_utc", "")
        if dtype not in newest or date > newest[dtype][0]:
            newest[dtype] = (date, f)
    return {d: f for d, (_, f) in sorted(newest.items(), key=lambda kv: kv[0] != Dtype.bf16)}


# profile fields that follow the compute dtype (the rest are the machine's own)
DTYPE_FIELDS = ("gemm", "attention_compute_fraction", "attention_memory_fraction", "attention_half_length",
                "attention_block_overhead", "elementwise_memory_fraction", "memory_fraction_by_kind",
                "kernel_overhead", "kernel_overhead_by_kind")


def merge_dtype_fields(per_dtype: dict[Dtype, dict]) -> dict:
    """One device entry from per-dtype fits: bf16's (else the first) is the base; each other
    dtype keeps, under ``dtypes``, the dtype-dependent fields where it differs."""
    base_dtype = Dtype.bf16 if Dtype.bf16 in per_dtype else next(iter(per_dtype))
    base = dict(per_dtype[base_dtype])
    overrides = {}
    for dtype, fields in per_dtype.items():
        diff = {k: fields[k] for k in DTYPE_FIELDS if k in fields and fields[k] != base.get(k)}
        if dtype != base_dtype and diff:
            overrides[dtype.value] = diff
    if overrides:
        base["dtypes"] = overrides
    base["fitted_from"] = "; ".join(f["fitted_from"] for f in per_dtype.values())
    return base


def calibrate_dtypes(micros: dict[Dtype, tuple[str, dict]], hardware, host_micros: dict | None = None
                     ) -> tuple[dict, list[Fit]]:
    """calibrate() for each dtype's file ({dtype: (source, micro)}), merged into one entry;
    fit names carry the dtype when there is more than one."""
    per_dtype, fits = {}, []
    for dtype, (source, micro) in micros.items():
        fields, dtype_fits = calibrate(micro, hardware, source, host_micros=host_micros)
        per_dtype[dtype] = fields
        for f in dtype_fits:
            fits.append(dataclasses.replace(f, name=f"{dtype.value} {f.name}") if len(micros) > 1 else f)
    return merge_dtype_fields(per_dtype), fits


def relative_source(path: Path) -> str:
    """A file's path as a profile's fitted_from names it: relative to the data root when under it."""
    from simulator.specs import registry

    root = registry.data_root()
    return str(path.relative_to(root)) if path.is_absolute() and root in path.parents else str(path)


def fit_device(hardware, micro_paths: list[Path]) -> tuple[dict, list[Fit]]:
    """The device entry fitted from micro files (one per dtype), with the host launch costs
    from every micro session of the device, and the fit report; it must read back as a profile."""
    from simulator.specs import registry
    from simulator.accuracy.measured import measurement_root

    micros = {}
    for path in micro_paths:
        micro = load_micro(path)
        micros[micro_dtype(micro)] = (relative_source(path), micro)
    root = registry.data_root()
    sessions = {str(f.relative_to(root)): load_micro(f)
                for f in sorted((measurement_root() / hardware.name).rglob("micro-*.json"))}
    fields, fits = calibrate_dtypes(micros, hardware, host_micros=sessions)
    profile_from_fields(fields)
    return fields, fits


def _r(x: float) -> float:
    return float(f"{x:.4g}")


def _q(x: float, unit: str) -> str:
    """A quantity string the spec parser reads back: 4 significant digits, SI base unit."""
    return f"{x:.4g} {unit}"


def profile_from_fields(fields: dict) -> DeviceProfile:
    return DeviceProfile.model_validate(fields)
