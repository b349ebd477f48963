"""Hardware spec: datasheet facts of one device (or one chip of a multi-chip system).

Only facts live here (dense peaks per dtype, memory levels, power, links, price,
provenance). How close software gets to them is a stack profile (stack.py).
Each device class (cpu, gpu, tpu, fpga, asic, pim) is its own model, selected by
``kind``; classes whose peak is usually derived from their units (cpu, tpu, fpga)
may give the units instead of, or beside, a ``peak`` table.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, PrivateAttr, model_validator

from simulator.specs.base import (Bandwidth, Bytes, Dtype, EnergyPerByte, EnergyPerOp, Flops,
                                  Frequency, Power, PowerOrZero, Provenance, Seconds, Strict,
                                  TransferRate, Usd, UsdPerHour, problem)

PimOp = Literal["gemv", "attention"]
MAX_COUNT = 2**31 - 1                  # cores, channels, arrays, DSPs... of one device
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]
CountOrZero = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Rate = Annotated[float, Field(gt=0)]   # operations per cycle per unit, a dtype's multiplier


class PimUnit(Strict):
    """Compute placed inside a memory level (processing in memory)."""

    peak: dict[Dtype, Flops]
    internal_bandwidth_bytes_per_s: Bandwidth = Field(alias="internal_bandwidth")
    ops: list[PimOp] = Field(min_length=1)


class MemoryLevel(Strict):
    """One level of the memory hierarchy. Levels are listed innermost (fastest) first."""

    name: str
    capacity_bytes: Bytes = Field(alias="capacity")
    bandwidth_bytes_per_s: Bandwidth = Field(alias="bandwidth")
    energy_per_byte_j: EnergyPerByte | None = Field(None, alias="energy_per_byte")
    on_chip: bool = False
    pim: PimUnit | None = None


class PowerSpec(Strict):
    """Board power. ``idle`` is the draw with nothing running; TDP the sustained limit."""

    tdp_w: Power = Field(alias="tdp")
    idle_w: PowerOrZero | None = Field(None, alias="idle")
    energy_per_flop_j: dict[Dtype, EnergyPerOp] | None = Field(None, alias="energy_per_flop")


class Link(Strict):
    """A chip-to-chip or host link. Bandwidth is per direction, summed over the device's links."""

    name: str
    bandwidth_per_direction_bytes_per_s: Bandwidth = Field(alias="bandwidth_per_direction")
    latency_s: Seconds = Field(alias="latency")
    topology: Literal["switch", "ring", "torus-2d", "torus-3d", "mesh", "point-to-point"] = "switch"
    max_devices: Count | None = None


class Price(Strict):
    purchase_usd: Usd | None = Field(None, alias="purchase")
    hourly_usd_per_h: UsdPerHour | None = Field(None, alias="hourly")
    source: str


class MemoryChannels(Strict):
    """DRAM channels of a CPU or FPGA: bandwidth = channels x transfer rate x bus width."""

    channels: Count
    transfer_rate_per_s: TransferRate = Field(alias="transfer_rate")
    bus_width_bits: Count = 64

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.channels * self.transfer_rate_per_s * self.bus_width_bits / 8.0


class CpuCores(Strict):
    """CPU compute units: peak = sockets x cores x clock x ops per cycle per core.

    Vector ops per cycle per core for a dtype = 2 (FMA) x fma_units x vector_width_bits / dtype
    bits, for the dtypes in ``vector_dtypes`` (bf16/int8 via dot-product instructions);
    matrix extensions (AMX) give their own ops per cycle per core.
    """

    sockets: Count = 1
    cores: Count
    clock_hz: Frequency = Field(alias="clock")
    vector_width_bits: Count
    fma_units_per_core: Count
    vector_dtypes: list[Dtype]
    matrix_ops_per_cycle_per_core: dict[Dtype, Rate] = {}
    matrix_clock_hz: Frequency | None = Field(None, alias="matrix_clock")

    def derived_peak(self) -> dict[Dtype, float]:
        cores = self.sockets * self.cores
        peak = {d: cores * self.clock_hz * 2 * self.fma_units_per_core * self.vector_width_bits / d.bits
                for d in self.vector_dtypes}
        matrix_clock = self.matrix_clock_hz or self.clock_hz
        for d, ops in self.matrix_ops_per_cycle_per_core.items():
            peak[d] = max(peak.get(d, 0.0), cores * matrix_clock * ops)
        return peak


class FpgaFabric(Strict):
    """FPGA compute: peak = DSP count x ops per DSP per cycle x clock (+ AI Engines likewise)."""

    dsp_count: CountOrZero = 0
    clock_hz: Frequency = Field(alias="clock")
    ops_per_dsp_per_cycle: dict[Dtype, Rate] = {}
    ai_engine_count: CountOrZero = 0
    ai_engine_clock_hz: Frequency | None = Field(None, alias="ai_engine_clock")
    ops_per_ai_engine_per_cycle: dict[Dtype, Rate] = {}

    def derived_peak(self) -> dict[Dtype, float]:
        peak = {d: self.dsp_count * ops * self.clock_hz for d, ops in self.ops_per_dsp_per_cycle.items()}
        aie_clock = self.ai_engine_clock_hz or self.clock_hz
        for d, ops in self.ops_per_ai_engine_per_cycle.items():
            peak[d] = peak.get(d, 0.0) + self.ai_engine_count * ops * aie_clock
        return peak


class SystolicArrays(Strict):
    """TPU matrix units: peak = arrays x dim^2 x 2 (multiply-add) x clock, per dtype multiplier."""

    arrays: Count
    dim: Count
    clock_hz: Frequency = Field(alias="clock")
    ops_multiplier: dict[Dtype, Rate] = {Dtype.bf16: 1.0}

    def derived_peak(self) -> dict[Dtype, float]:
        base = self.arrays * self.dim * self.dim * 2 * self.clock_hz
        return {d: base * m for d, m in self.ops_multiplier.items()}


class _Device(Strict):
    name: str
    vendor: str
    product: str
    status: Literal["product", "design", "announced", "measured"] = "product"
    peak: dict[Dtype, Flops] = {}
    memory: list[MemoryLevel] = Field(min_length=1)
    power: PowerSpec | None = None
    interconnect: list[Link] = []
    compute_units: Count | None = None
    clock_hz: Frequency | None = Field(None, alias="clock")
    price: Price | None = None
    provenance: Provenance
    # what-if factors this spec's facts were scaled by from the device of its name (set by
    # whatif_copy, never read from a file): that device's fitted stack profile still applies
    _whatif: dict[str, float] = PrivateAttr(default_factory=dict)

    @property
    def whatif_factors(self) -> dict[str, float]:
        return self._whatif

    def whatif_copy(self, update: dict, factors: dict[str, float]):
        """A copy with ``update`` applied, marked as this device scaled by ``factors`` (the
        factors of a copy of a copy multiply)."""
        copy = self.model_copy(update=update)
        copy._whatif = {f: self._whatif.get(f, 1.0) * factors.get(f, 1.0) for f in {*self._whatif, *factors}}
        return copy

    def derived_peak(self) -> dict[Dtype, float]:
        return {}

    def peak_flops(self) -> dict[Dtype, float]:
        """Dense peak per dtype in FLOP/s (or OP/s): the datasheet table, else the derivation."""
        derived = self.derived_peak()
        return {**derived, **self.peak}

    @model_validator(mode="after")
    def _physical(self):
        """A dense peak (given or derived) that is positive and finite; idle power at most TDP."""
        if not self.peak and not self.derived_peak():
            raise problem("peak", "expected a dense peak per dtype (e.g. 'bf16: 989 TFLOP/s') "
                                  "or the compute units to derive it from")
        for dtype, flops in self.peak_flops().items():
            if not 0 < flops < float("inf"):
                raise problem(f"peak.{dtype.value}", f"the peak derived from the compute units is {flops:g} "
                                                     f"FLOP/s; expected a positive finite peak")
        if self.power and self.power.idle_w is not None and self.power.idle_w > self.power.tdp_w:
            raise problem("power.idle", f"expected at most the TDP ({self.power.tdp_w:g} W), "
                                        f"got {self.power.idle_w:g} W")
        return self

    @property
    def main_memory(self) -> MemoryLevel:
        """The outermost level: where the model lives when nothing closer holds it."""
        return self.memory[-1]

    @property
    def capacity_bytes(self) -> float:
        """Bytes one device holds: every memory level's capacity."""
        return sum(level.capacity_bytes for level in self.memory)


class Gpu(_Device):
    kind: Literal["gpu"]


class Asic(_Device):
    kind: Literal["asic"]


class Cpu(_Device):
    kind: Literal["cpu"]
    cpu: CpuCores | None = None
    memory_channels: MemoryChannels | None = None

    def derived_peak(self) -> dict[Dtype, float]:
        return self.cpu.derived_peak() if self.cpu else {}


class Tpu(_Device):
    kind: Literal["tpu"]
    systolic: SystolicArrays | None = None

    def derived_peak(self) -> dict[Dtype, float]:
        return self.systolic.derived_peak() if self.systolic else {}


class Fpga(_Device):
    kind: Literal["fpga"]
    fabric: FpgaFabric | None = None

    def derived_peak(self) -> dict[Dtype, float]:
        return self.fabric.derived_peak() if self.fabric else {}


class Pim(_Device):
    """A host processor whose memory has compute inside it (at least one level with ``pim``)."""

    kind: Literal["pim"]

    @model_validator(mode="after")
    def _has_pim_level(self):
        if not any(level.pim for level in self.memory):
            raise problem("memory", "a pim device needs at least one memory level with a 'pim' block")
        return self


HardwareSpec = Annotated[Union[Gpu, Cpu, Tpu, Fpga, Asic, Pim], Field(discriminator="kind")]
