"""Energy coefficients from a micro file's idle reading and power loops (no fit where the
device has no power counter: the class default applies)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from simulator.calibration.fits import Fit
from simulator.calibration.profile import quantity
from simulator.specs.measurement import MicroFile, PowerLoop


def _loop(entry: PowerLoop, moved: bool = False) -> tuple:
    """(J, s, FLOPs, bytes) per call of one loop; a copy loop counts the bytes it moves."""
    return (entry.energy_per_call_j, entry.time_per_call_s, entry.flops_per_call,
            entry.bytes_moved_per_call if moved else entry.bytes_per_call)


def fit_energy(micro: MicroFile) -> tuple[dict | None, Fit | None]:
    """Energy coefficients from the idle reading and the power loops:
    busy power    a CUDA graph of tiny kernels (the device awake, next to no work) - idle
    J per FLOP    least squares over the 8192^3 GEMM, copy and GEMV loops, after
    J per byte    (idle + busy) x time
    attention     its own J per FLOP and per byte, solved from the prefill and decode
                  attention loops (a flash kernel spends more than a GEMM or a copy: the
                  decode loop's blocks outnumber the SMs and keep them busy on padded tiles)
    The M = 256 GEMM loop is left out of every fit and reported as a check. Files from
    harness runs without these loops give idle, J per FLOP and J per byte from (f) alone."""
    idle_power = micro.environment.idle_power
    if micro.power is None or not micro.power.complete or idle_power is None or idle_power.idle_power_w is None:
        return None, None
    idle = idle_power.idle_power_w
    loops, power = micro.energy, micro.power
    general = [_loop(power.matmul), _loop(power.copy_loop, moved=True)]
    if loops is None or not loops.complete:
        (e_mm, t_mm, f_mm, _), (e_cp, t_cp, _, b_cp) = general
        return {"idle": idle, "busy": 0.0, "flop": (e_mm - idle * t_mm) / f_mm, "byte": (e_cp - idle * t_cp) / b_cp}, None
    busy = max(loops.tiny_kernels.power_mean_w - idle, 0.0)
    base = idle + busy
    general.append(_loop(loops.gemv))
    e, t, f, b = (np.array(column, float) for column in zip(*general))
    res = least_squares(lambda x: np.log((base * t + x[0] * 1e-12 * f + x[1] * 1e-12 * b) / e), [0.8, 100.0],
                        bounds=([0.0, 0.0], [100.0, 1e4]))
    per_flop, per_byte = res.x * 1e-12
    (e_p, t_p, f_p, b_p), (e_d, t_d, f_d, b_d) = _loop(loops.attention_prefill), _loop(loops.attention_decode)
    attention = np.linalg.solve([[f_p, b_p], [f_d, b_d]], [e_p - base * t_p, e_d - base * t_d])
    attn_flop, attn_byte = (max(float(v), 0.0) for v in attention)
    coefficients = {"idle": idle, "busy": busy, "flop": per_flop, "byte": per_byte,
                    "attention_flop": attn_flop, "attention_byte": attn_byte}
    e256, t256, f256, b256 = _loop(loops.gemm_m256)
    check_errors = np.array([*np.expm1(res.fun), (base * t256 + per_flop * f256 + per_byte * b256) / e256 - 1.0])
    return coefficients, Fit("energy: GEMM/copy/GEMV fit, M=256 check", {}, check_errors)


def energy_fields(energy: dict | None) -> dict:
    """The profile's energy fields (none without a power counter: a CPU in a VM)."""
    if energy is None:
        return {}
    return {"idle_power": quantity(energy["idle"], "W"), "busy_power": quantity(energy["busy"], "W"),
            "energy_per_flop": quantity(energy["flop"], "J/FLOP"), "energy_per_byte": quantity(energy["byte"], "J/B"),
            **({"attention_energy_per_flop": quantity(energy["attention_flop"], "J/FLOP"),
                "attention_energy_per_byte": quantity(energy["attention_byte"], "J/B")} if "attention_flop" in energy
               else {})}
