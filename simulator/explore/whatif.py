"""What-if hardware: a copy of a hardware spec with some datasheet facts scaled, to explore
devices that do not exist. Factors (dimensionless, > 0; 1 leaves the fact alone):

  bandwidth   bandwidth of the main memory levels (the off-chip ones: HBM, GDDR, DRAM; on a
              device with only on-chip memory, such as Groq or Cerebras, its SRAM)
  capacity    capacity of those same main memory levels
  sram        capacity of the other on-chip levels (on_chip: true: GPU caches, FPGA BRAM);
              a device without such a level is unchanged
  peak        every dense peak (the datasheet table, or the one derived from compute units)
  power       TDP, idle power and every energy-per-FLOP and energy-per-byte figure of the
              spec (a stack profile's measured power figures for the device still apply:
              on a calibrated device this mostly moves the TDP cap)

The copy keeps the base device's name and price, and is marked as a what-if of it
(HardwareSpec.whatif_factors), so the stack's profile fitted for that device still applies
and predictions name it so. ``facts`` gives the values a sweep row records next to the factors.
"""
from __future__ import annotations

import dataclasses
import math

from simulator.engine.bind import peak_for

FACTORS = ("bandwidth", "capacity", "sram", "peak", "power")


@dataclasses.dataclass(frozen=True)
class Factors:
    bandwidth: float = 1.0
    capacity: float = 1.0
    sram: float = 1.0
    peak: float = 1.0
    power: float = 1.0

    @property
    def identity(self) -> bool:
        return all(getattr(self, f) == 1.0 for f in FACTORS)


def scaled_levels(levels) -> list[int]:
    """Indices of the levels the bandwidth and capacity factors scale: the off-chip ones, else
    all (on-chip-only devices). Not HardwareSpec.main_memory, which is the outermost level."""
    off_chip = [i for i, level in enumerate(levels) if not level.on_chip]
    return off_chip or list(range(len(levels)))


def _scaled_power(power, f: float):
    if power is None or f == 1.0:
        return power
    per_flop = {d: v * f for d, v in power.energy_per_flop_j.items()} if power.energy_per_flop_j else None
    return power.model_copy(update={"tdp_w": power.tdp_w * f,
                                    "idle_w": None if power.idle_w is None else power.idle_w * f,
                                    "energy_per_flop_j": per_flop})


def _scaled_levels(levels, f: Factors):
    main = set(scaled_levels(levels))
    out = []
    for i, level in enumerate(levels):
        update = {}
        if i in main:
            update["bandwidth_bytes_per_s"] = level.bandwidth_bytes_per_s * f.bandwidth
            update["capacity_bytes"] = level.capacity_bytes * f.capacity
        elif level.on_chip:
            update["capacity_bytes"] = level.capacity_bytes * f.sram
        if level.energy_per_byte_j is not None:
            update["energy_per_byte_j"] = level.energy_per_byte_j * f.power
        out.append(level.model_copy(update=update))
    return out


def scale(spec, factors: Factors):
    """A copy of ``spec`` with its facts scaled (the spec itself when all factors are 1)."""
    if factors.identity:
        return spec
    update = {"memory": _scaled_levels(spec.memory, factors), "power": _scaled_power(spec.power, factors.power)}
    if factors.peak != 1.0:
        update["peak"] = {d: v * factors.peak for d, v in spec.peak_flops().items()}
    return spec.whatif_copy(update, {f: getattr(factors, f) for f in FACTORS if getattr(factors, f) != 1.0})


def facts(spec, compute_dtype) -> dict[str, float]:
    """The facts the factors act on, in SI units (NaN where the spec has none):
    main-memory bandwidth (the outermost main level), total capacity, other on-chip
    capacity, the dense peak at ``compute_dtype`` and the TDP."""
    main = scaled_levels(spec.memory)
    return {
        "memory_bandwidth_bytes_per_s": spec.memory[main[-1]].bandwidth_bytes_per_s,
        "memory_capacity_bytes": spec.capacity_bytes,
        "sram_bytes": sum(level.capacity_bytes for i, level in enumerate(spec.memory)
                          if level.on_chip and i not in main),
        "peak_flops": peak_for(spec.peak_flops(), compute_dtype, spec.name),
        "tdp_w": spec.power.tdp_w if spec.power else math.nan,
    }
