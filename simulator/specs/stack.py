"""Stack profile: how efficiently one software stack drives a device.

Hardware specs hold datasheet facts; everything empirical lives here: achieved
fractions of peak (by operator shape), per-kernel launch overhead, how many kernels
unfused work costs, and measured power. ``ideal`` is the stack with no losses (the
speed-of-light answer). A device gets the entry of its name when its spec is the device
that entry was fitted on (StackSpec.choose), else its class's entry, else ``default``.
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from simulator.specs.base import DeviceKind, Dtype, EnergyPerByte, EnergyPerOp, PowerOrZero, Provenance, SecondsOrZero, Strict
from simulator.specs.fit_facts import differences, digest

Fraction = float  # dimensionless, in (0, 1]


OpKindName = Literal["embedding", "norm", "matmul", "rotary", "kv_write", "attention",
                     "residual_add", "activation", "lm_head", "sampling", "collective", "moe_route",
                     "moe_combine", "quantize", "expert_matmul"]  # operator kinds as stacks name them (graph/ops.py stack_name)


class GemmEfficiency(Strict):
    """Achieved fraction of dense peak for a matmul of M rows (tokens) by N outputs.

    eff(M, N) = peak_fraction x (M / padded M) x (tiles / (waves x units)), where
    tiles = ceil(M / tile_m) x ceil(N / tile_n) and waves = ceil(tiles / units): tile and
    wave quantization of a tiled GEMM on ``units`` parallel units (the spec's compute_units).
    tile_m = tile_n = 1 switches quantization off.
    """

    peak_fraction: float = Field(1.0, gt=0, le=1)
    tile_m: int = Field(1, gt=0, le=2**31 - 1)
    tile_n: int = Field(1, gt=0, le=2**31 - 1)
    memory_fraction: float = Field(1.0, gt=0, le=1.5)   # of the level's bandwidth, while streaming weights
    overlap_exponent: float = Field(0.0, ge=0)           # p of the p-norm of compute and memory time; 0: max
    # a GEMM of at most gemv_max_m rows runs as a GEMV kernel (a CPU BLAS's, for one): no tile
    # quantization, weights streamed at gemv_memory_fraction of bandwidth; 0: no GEMV path
    gemv_max_m: int = Field(0, ge=0, le=2**62)
    gemv_memory_fraction: float = Field(1.0, gt=0, le=1.5)
    # grouped GEMMs over routed experts: M tiles of the power of two >= the mean rows per group
    # within [group_tile_min, group_tile_max]; groups the router filled past a tile run another
    # (grouped.routed_tile_scale); 0: no routing-imbalance term
    group_tile_min: int = Field(0, ge=0, le=2**20)
    group_tile_max: int = Field(0, ge=0, le=2**20)

    @model_validator(mode="after")
    def _group_tiles_are_a_range(self):
        if self.group_tile_max and not 1 <= self.group_tile_min <= self.group_tile_max:
            raise ValueError(f"group_tile_min: expected 1 to group_tile_max ({self.group_tile_max}) rows, "
                             f"got {self.group_tile_min}")
        return self


class DeviceProfile(Strict):
    """Efficiency of one stack on one device (or class of devices).

    Per kernel: kernel_overhead (or kernel_overhead_by_kind for that operator kind) is added
    to its roofline time: the launch gap inside a CUDA graph plus the kernel's fixed
    latency. In an eager prefill the host's launch rate bounds each operator from below
    (prefill_launch_overhead per kernel). A decode step (one CUDA-graph replay) adds
    decode_step_overhead; a prefill pass adds prefill_step_overhead."""

    gemm: GemmEfficiency = GemmEfficiency()
    expert_gemm: GemmEfficiency | None = None    # grouped GEMMs over experts (None: as gemm)
    attention_compute_fraction: float = Field(1.0, gt=0, le=1)   # of the dense peak, attention FLOPs
    attention_memory_fraction: float = Field(1.0, gt=0, le=1.5)  # of bandwidth, KV-cache reads
    attention_half_length: float = Field(0.0, ge=0)               # tokens: prefill efficiency L/(L+L0)
    attention_block_overhead_s: SecondsOrZero = Field(0.0, alias="attention_block_overhead")  # per seq x KV head
    # decode attention's occupancy regimes (engine/kernels/roofline.occupancy_scale): B x KV heads thread
    # blocks; fewer than attention_split_below x units and the kernel splits the sequence (flash
    # attention's split-KV heuristic: 0.8 of the SMs), more than the units and blocks share them
    attention_split_below: float = Field(0.8, ge=0)
    attention_split_memory_fraction: float | None = Field(None, gt=0, le=1.5)          # None: attention_memory_fraction
    attention_oversubscribed_memory_fraction: float | None = Field(None, gt=0, le=1.5)  # None: likewise
    elementwise_memory_fraction: float = Field(1.0, gt=0, le=1.5)  # of bandwidth, norms/rotary/adds
    memory_fraction_by_kind: dict[OpKindName, Annotated[float, Field(gt=0, le=1.5)]] = {}  # elementwise kinds that differ
    kernel_overhead_s: SecondsOrZero = Field(0.0, alias="kernel_overhead")
    kernel_overhead_by_kind_s: dict[OpKindName, SecondsOrZero] = Field({}, alias="kernel_overhead_by_kind")
    prefill_launch_overhead_s: SecondsOrZero = Field(0.0, alias="prefill_launch_overhead")
    prefill_launch_overhead_by_kind_s: dict[OpKindName, SecondsOrZero] = Field({},
                                                                         alias="prefill_launch_overhead_by_kind")
    decode_step_overhead_s: SecondsOrZero = Field(0.0, alias="decode_step_overhead")
    prefill_step_overhead_s: SecondsOrZero = Field(0.0, alias="prefill_step_overhead")
    idle_power_w: PowerOrZero | None = Field(None, alias="idle_power")
    busy_power_w: PowerOrZero = Field(0.0, alias="busy_power")    # above idle whenever a kernel runs
    energy_per_flop_j: EnergyPerOp | None = Field(None, alias="energy_per_flop")
    energy_per_byte_j: EnergyPerByte | None = Field(None, alias="energy_per_byte")
    attention_energy_per_flop_j: EnergyPerOp | None = Field(None, alias="attention_energy_per_flop")
    attention_energy_per_byte_j: EnergyPerByte | None = Field(None, alias="attention_energy_per_byte")
    expert_energy_per_byte_j: EnergyPerByte | None = Field(None, alias="expert_energy_per_byte")  # grouped expert GEMMs
    weight_energy_per_byte_j: EnergyPerByte | None = Field(None, alias="weight_energy_per_byte")  # a GEMM's weights (per dtype)
    # achieved bus bandwidth of a collective / the link's per-direction datasheet figure (calibration/collectives.py)
    collective_bandwidth_fraction: Annotated[float, Field(gt=0, le=1.0)] = 1.0
    fitted_from: str = ""                                          # files/fit the numbers come from
    fitted_for: str = ""     # fit_facts.digest of the spec it was fitted on ("": compare with the registry's)
    host_fitted_from: list[str] = []                               # sessions the host launch costs are the median of
    mixed_host_s: dict[str, SecondsOrZero] = Field({}, alias="mixed_host")  # eager mixed pass: calibration/serving_host.py
    mixed_overlap_exponent: float = Field(0.0, ge=0.0)   # its host launches and device work as a p-norm (0: max)
    # fields that differ when the stack computes in another dtype (a CPU's fp32 GEMMs run on
    # AVX-512, its bf16 ones on AMX): {dtype: {field: value}}, applied by for_dtype
    dtypes: dict[Dtype, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _overrides_are_fields(self):
        for dtype in self.dtypes:
            try:
                self.for_dtype(dtype)
            except ValidationError as err:
                e = err.errors(include_url=False)[0]
                where = ".".join(str(part) for part in e["loc"])
                raise ValueError(f"dtypes.{dtype.value}.{where}: {e['msg']}") from None
        return self

    def for_dtype(self, dtype: Dtype) -> "DeviceProfile":
        """This profile as it applies when computing in ``dtype``: each field the override
        names replaces the base's field whole."""
        override = self.dtypes.get(dtype)
        if not override:
            return self
        if "dtypes" in override:
            raise ValueError(f"dtypes.{dtype.value}: an override cannot hold dtypes itself")
        parsed = DeviceProfile.model_validate(override)
        return self.model_copy(update={name: getattr(parsed, name) for name in parsed.model_fields_set})



@dataclasses.dataclass(frozen=True)
class ProfileChoice:
    """The stack entry a device is predicted with, and why (StackSpec.choose)."""

    profile: DeviceProfile
    entry: str          # "devices.h100-sxm", "classes.cpu" or "default"
    fitted_on: str      # the device whose microbenchmarks fitted the entry ("": an assumption)
    calibrated: bool    # fitted on this very spec
    why: str            # the entry and the reason it was chosen, in plain words


class StackSpec(Strict):
    name: str
    description: str
    attention: Literal["flash", "unfused"] = "flash"
    # "auto": ring over a switch or a ring of links; recursive doubling (tree-like, log2 N
    # hops) where chips link directly to many others (point-to-point, mesh, torus)
    collective_algorithm: Literal["auto", "ring", "tree"] = "auto"
    # a weight format under 16 bits quantizes the decoder layers only; the embedding and LM head
    # stay 16-bit (FP8 recipes, AWQ/GPTQ checkpoints). GGUF (llama.cpp) quantizes them too: false
    outer_weights_16bit: bool = True
    # true: decode steps replay a CUDA graph (decode_step_overhead each); false: the host launches
    # every kernel of a step eagerly, and a step takes at least that launch time (the prefill
    # pass's host bound, eager.eager_range_s), as in Hugging Face generate()
    decode_graphs: bool = True
    kernels_per_op: dict[OpKindName, Annotated[int, Field(ge=0, le=2**31 - 1)]] = {}  # launches per operator instance (default 1)
    traffic_per_op: dict[OpKindName, Annotated[float, Field(gt=0)]] = {}    # bytes moved / fewest bytes (default 1)
    default: DeviceProfile = DeviceProfile()
    classes: dict[DeviceKind, DeviceProfile] = {}
    devices: dict[str, DeviceProfile] = {}
    provenance: Provenance
    # a stack fitted by `llmsim calibrate --from-runs`: its parameters, fitted ranges and
    # cross-validated error (calibration/from_runs.py writes it; nothing reads it for physics)
    calibration: dict[str, Any] = {}

    def lowering(self) -> dict:
        """What this stack changes in a model's operator table: graph.lower.lower's keywords."""
        return {"unfused_attention": self.attention == "unfused", "outer_16bit": self.outer_weights_16bit}

    def profile_for(self, hardware_name: str, hardware_kind: str) -> DeviceProfile:
        """The entry of that name, else of that class, else the default (no checks: choose)."""
        if hardware_name in self.devices:
            return self.devices[hardware_name]
        return self.classes.get(hardware_kind, self.default)

    def choose(self, hardware, reference=None, borrow: str | None = None) -> ProfileChoice:
        """The entry ``hardware`` is predicted with (``reference``: the registry's spec of its
        name, None when there is none):
        1. ``borrow`` (another device's name, --profile-from): that device's entry;
        2. devices[hardware.name] when the spec is the device it was fitted on: its fit facts
           (specs/fit_facts.py) match the entry's ``fitted_for`` digest, or, for an entry
           without one, the reference's facts (or there is no reference); or the spec is a
           what-if copy of that device (whatif_factors);
        3. else its class's entry, else the default, saying which device entry was passed over."""
        if borrow is not None and borrow != hardware.name:
            if borrow in self.devices:
                return self._device_choice(borrow, False, f"borrowed from {borrow} (--profile-from)")
            return self._class_choice(hardware.kind, f"no entry for {borrow} to borrow")
        name = hardware.name
        if name not in self.devices:
            return self._class_choice(hardware.kind, f"no entry for {name}")
        if hardware.whatif_factors:
            factors = ", ".join(f"{f} x{v:g}" for f, v in hardware.whatif_factors.items())
            return self._device_choice(name, False, f"applied to a what-if copy of {name} ({factors})")
        same, why = self._same_device(name, hardware, reference)
        if same:
            return self._device_choice(name, True, why)
        return self._class_choice(hardware.kind, why)

    def _same_device(self, name: str, hardware, reference) -> tuple[bool, str]:
        """Whether ``hardware`` is the spec devices[name] was fitted on, and why."""
        recorded = self.devices[name].fitted_for
        if recorded and digest(hardware) == recorded:
            return True, "this spec is the one it was fitted on"
        if not recorded and reference is None:
            return True, f"no registry spec named {name} to compare with"
        diffs = differences(hardware, reference) if reference is not None else []
        if not recorded and not diffs:
            return True, f"this spec is the registry's {name}"
        shown = f" ({'; '.join(diffs[:3])})" if diffs else ""
        return False, (f"this spec's datasheet facts are not those {name}'s entry was fitted on{shown}, "
                       f"so it does not apply")

    def _device_choice(self, name: str, own: bool, why: str) -> ProfileChoice:
        profile = self.devices[name]
        fitted = bool(profile.fitted_from)
        what = f"fitted on {name}" if fitted else "an assumption"
        return ProfileChoice(profile, f"devices.{name}", name if fitted else "", own and fitted,
                             f"{self.name} {name} entry ({what}): {why}")

    def _class_choice(self, kind: str, why: str) -> ProfileChoice:
        entry = f"classes.{kind}" if kind in self.classes else "default"
        return ProfileChoice(self.classes.get(kind, self.default), entry, "", False,
                             f"{self.name} {entry} profile (an assumption, not fitted on this device): {why}")

    def kernels(self, kind: str) -> int:
        return self.kernels_per_op.get(kind, 1)

    def traffic(self, kind: str) -> float:
        return self.traffic_per_op.get(kind, 1.0)
