"""The collective model fitted from collective microbenchmarks only (``collectives-*.json``,
validation/harness/parallel_collectives.py; never from end-to-end runs).

The engine costs a collective of P bytes over n devices (engine/collectives.py, bind.py) as

    t = factor(op, n) x P / W  +  hops(op, n, algorithm) x L  +  kernel overhead

with W and L the device's first link (its spec) and the overhead the stack profile's
``kernel_overhead_by_kind.collective``. Per (op, graphed or eager, world size) this fits

    t = a + factor x P / W_bus                 (least squares on log time over the sizes)

a >= 0 the fixed seconds of one call, W_bus the achieved bus bandwidth (nccl-tests' busbw at
large sizes), and reports ``latency_per_hop = a / hops``, the achieved fraction of the link's
datasheet bandwidth ``W_bus / W`` and each size's error. World size 1 moves nothing over a
link (factor 0): its rows are not fitted. The profile receives what its fields can hold:
``kernel_overhead_by_kind.collective`` = the median over world sizes of the graphed
all-reduce's a - hops x L (what a call costs beyond the link latency the engine already adds;
decode steps are graphed and all-reduce is tensor parallelism's collective), and
``prefill_launch_overhead_by_kind.collective`` = the median eager call of at most
HOST_BOUND_BYTES (back-to-back eager calls that small are bound by the host's launch), and
``collective_bandwidth_fraction`` = the median over world sizes of the graphed all-reduce's
W_bus / W (at most 1), which the engine divides W by (bind._bind_collectives).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from simulator.calibration import fits as F
from simulator.calibration.profile import merge_fields, quantity
from simulator.engine.collectives import cost_terms
from simulator.graph.ops import OpKind
from simulator.specs.measurement import CollectivesFile, load_collectives, measurement_root

OPS = {"all_reduce": OpKind.ALL_REDUCE, "all_gather": OpKind.ALL_GATHER, "all_to_all": OpKind.ALL_TO_ALL,
       "send_recv": OpKind.SEND_RECV}
HOST_BOUND_BYTES = 64 << 10        # eager calls this small measure the host's launch cost
MAX_FIXED_S = 1e-3                 # a collective's fixed cost is microseconds, not milliseconds


@dataclasses.dataclass
class CollectiveFit:
    """One (op, graphed, world size) group: fixed seconds, achieved bus bandwidth, errors."""

    op: str
    graphed: bool
    world_size: int
    fixed_s: float                 # a
    bus_bandwidth_bytes_per_s: float
    hops: float
    link_fraction: float           # W_bus / the link's per-direction bandwidth
    fit: F.Fit

    @property
    def latency_per_hop_s(self) -> float:
        return self.fixed_s / self.hops

    def seconds(self, nbytes) -> np.ndarray:
        factor, _ = cost_terms(OPS[self.op], self.world_size)
        return self.fixed_s + factor * np.asarray(nbytes, float) / self.bus_bandwidth_bytes_per_s


def link_algorithm(hardware, stack_algorithm: str = "auto") -> str:
    """The algorithm the engine prices a collective with ("auto": ring over a switch or a ring
    of links, tree otherwise; the rule engine/bind.py applies)."""
    if stack_algorithm != "auto":
        return stack_algorithm
    return "ring" if hardware.interconnect[0].topology in ("switch", "ring") else "tree"


def fit_group(op: str, graphed: bool, world: int, nbytes: np.ndarray, t: np.ndarray, hardware,
              algorithm: str) -> CollectiveFit:
    """t = a + factor x P / W_bus through the sizes of one group (module docstring)."""
    factor, hops = cost_terms(OPS[op], world, algorithm)
    work = factor * nbytes
    a0 = float(max(0.0, t.min() * 0.5))
    w0 = float(np.max(work / t))
    model = lambda x: x[0] + work / x[1]  # noqa: E731
    res = F._log_fit(model, t, [a0, w0], [0.0, w0 * 1e-3], [MAX_FIXED_S, w0 * 1e3])
    a, w = float(res.x[0]), float(res.x[1])
    name = f"{op} n={world} {'graphed' if graphed else 'eager'}"
    link = hardware.interconnect[0].bandwidth_per_direction_bytes_per_s
    return CollectiveFit(op, graphed, world, a, w, hops, w / link, F.Fit(name, {"fixed_s": a, "bus_bandwidth": w},
                                                                         model(res.x) / t - 1.0))


def fit_collectives(files: list[CollectivesFile], hardware, algorithm: str = "auto") -> list[CollectiveFit]:
    """Every (op, graphed, world size > 1) group of the files' rows, fitted; a size measured in
    several files counts with each."""
    if not hardware.interconnect:
        from simulator.errors import SpecError

        raise SpecError(hardware.name, "interconnect", "collective microbenchmarks need a link to fit against")
    algorithm = link_algorithm(hardware, algorithm)
    groups: dict[tuple, list] = {}
    for f in files:
        for r in f.collectives:
            if r.world_size > 1:
                groups.setdefault((r.op, r.graphed, r.world_size), []).append((r.bytes, r.latency_median_s))
    fits = []
    for (op, graphed, world), rows in sorted(groups.items()):
        if len({b for b, _ in rows}) < 2:
            continue                        # one size cannot separate a from W_bus
        nbytes, t = (np.array(c, float) for c in zip(*rows))
        fits.append(fit_group(op, graphed, world, nbytes, t, hardware, algorithm))
    return fits


def profile_fields(fits: list[CollectiveFit], files: list[CollectivesFile], hardware) -> dict:
    """The stack profile's collective fields (module docstring); {} when nothing fits them."""
    latency = hardware.interconnect[0].latency_s
    graphed = [f.fixed_s - f.hops * latency for f in fits if f.op == "all_reduce" and f.graphed]
    eager = [r.latency_median_s for f in files for r in f.collectives
             if not r.graphed and r.world_size > 1 and r.bytes <= HOST_BOUND_BYTES]
    fields = {}
    if graphed:
        fields["kernel_overhead_by_kind"] = {"collective": quantity(max(0.0, float(np.median(graphed))), "s")}
    if eager:
        fields["prefill_launch_overhead_by_kind"] = {"collective": quantity(float(np.median(eager)), "s")}
    shares = [f.link_fraction for f in fits if f.op == "all_reduce" and f.graphed]
    if shares:
        fields["collective_bandwidth_fraction"] = round(min(1.0, float(np.median(shares))), 4)
    return fields


def device_files(hardware_name: str) -> list[Path]:
    """A device's collective microbenchmark files under validation/measurements/<device>/."""
    return sorted((measurement_root() / hardware_name).rglob("collectives-*.json"))


def with_collectives(fields: dict, fits: list, hardware, paths: list[Path] | None = None,
                     algorithm: str = "auto") -> tuple[dict, list]:
    """``fields`` and ``fits`` with the collective fits added (``paths``, else the device's
    files); unchanged where there are none, so a device never measured on several devices
    keeps its entry as it was."""
    paths = list(paths) if paths else device_files(hardware.name)
    if not paths:
        return fields, fits
    files = [load_collectives(p) for p in paths]
    cfits = fit_collectives(files, hardware, algorithm)
    merged = merge_fields(dict(fields), profile_fields(cfits, files, hardware))
    if cfits:
        from simulator.calibration.files import relative_source
        from simulator.calibration.profile import profile_from_fields

        sources = "; ".join(relative_source(Path(p).resolve()) for p in paths)
        merged["fitted_from"] = "; ".join(s for s in (fields.get("fitted_from", ""), sources) if s)
        profile_from_fields(merged)                # what is written must read back as a profile
    return merged, list(fits) + [f.fit for f in cfits]


def report_rows(fits: list[CollectiveFit]) -> list[list[str]]:
    """(fit, fixed us, latency per hop us, bus GB/s, of link) rows of the calibrate report."""
    return [[f.fit.name, f"{f.fixed_s * 1e6:.2f}", f"{f.latency_per_hop_s * 1e6:.2f}",
             f"{f.bus_bandwidth_bytes_per_s / 1e9:.1f}", f"{100 * f.link_fraction:.0f}%"] for f in fits]
