"""Kernels in the company of others: corrections from a synthetic model's whole passes (a
shape none of the validated models has), predicted under a provisional profile."""
from __future__ import annotations

import numpy as np

from simulator.calibration.fits import Fit
from simulator.calibration.profile import profile_from_fields, shift_times
from simulator.graph.ops import OpKind
from simulator.specs.base import Dtype
from simulator.specs.measurement import MicroFile, PassPoint

CONTEXT_STACK = "pytorch-ref"      # the stack whose kernel structure the harness runs


def synthetic_times(fields: dict, arch, hardware, points: list[PassPoint], dtype=Dtype.bf16
                    ) -> tuple[np.ndarray, object]:
    """Predicted seconds of the synthetic model's measured passes under a provisional profile,
    and the prepared configuration (for its kernel counts)."""
    from simulator.api import prepare
    from simulator.engine.predict import evaluate
    from simulator.specs import registry
    from simulator.specs.workload import workload

    base = registry.stack(CONTEXT_STACK)
    stack = base.model_copy(update={"devices": {**base.devices, hardware.name: profile_from_fields(fields)}})
    prep = prepare(("synthetic", arch), hardware, stack, dtype, dtype, dtype)
    times = []
    for pt in points:
        if pt.phase == "decode":
            p = evaluate(prep, workload(batch=pt.batch, prompt=pt.context_len, output=2), require_fit=False)
            times.append(p.tpot_s)
        else:
            p = evaluate(prep, workload(batch=pt.batch, prompt=pt.prompt_len, output=1), require_fit=False)
            times.append(p.ttft_s)
    return np.array(times), prep


def in_context(fields: dict, micro: MicroFile, hardware, dtype=Dtype.bf16) -> tuple[dict, list[Fit], float]:
    """A decode step's measured time beyond the isolated fits, spread over its kernels, is
    added to every kernel's overhead (launch gaps between different kernels). The smallest
    (host-bound) prefill's time over the host launch time the same file's eager
    microbenchmarks predict is returned as a host scale (a model of real size costs the host
    more per kernel than the tiny one host_layer uses). Files without the section change
    nothing (scale 1)."""
    from simulator.engine.bind import phase_repeat
    from simulator.specs.hf_config import normalise

    synthetic = micro.synthetic
    if not synthetic:
        return fields, [], 1.0
    arch = normalise(synthetic.config)
    decode = [pt for pt in synthetic.points if pt.phase == "decode"]
    prefill = sorted((pt for pt in synthetic.points if pt.phase == "prefill"), key=lambda pt: pt.batch * pt.prompt_len)
    predicted, prep = synthetic_times(fields, arch, hardware, decode, dtype)
    table, stack = prep.table, prep.stack
    kernels = sum(r * stack.kernels(OpKind(int(k)).stack_name) for r, k in zip(phase_repeat(table, "decode"), table.kind))
    measured = np.array([pt.latency_s for pt in decode])
    gap_s = max(float(np.median((measured - predicted) / kernels)), 0.0)
    fields = {**fields, "kernel_overhead": shift_times({"k": fields["kernel_overhead"]}, gap_s)["k"],
              "kernel_overhead_by_kind": shift_times(fields["kernel_overhead_by_kind"], gap_s)}
    after, _ = synthetic_times(fields, arch, hardware, decode, dtype)
    fits = [Fit(f"in context: synthetic decode steps (+{gap_s * 1e6:.2f} us a kernel)", {"gap_s": gap_s},
                after / measured - 1.0)]
    smallest = prefill[0]
    _, prep = synthetic_times(fields, arch, hardware, [smallest], dtype)
    host_s = prep.rates.host_launch_s
    scale = max(smallest.latency_s / host_s, 1.0) if host_s > 0 else 1.0   # no launch floor on a CPU
    floors = fields.get("prefill_launch_overhead_by_kind")
    scaled = {**fields, **({"prefill_launch_overhead_by_kind": shift_times(floors, scale=scale)} if floors else {})}
    after, _ = synthetic_times(scaled, arch, hardware, prefill, dtype)
    fits.append(Fit(f"in context: synthetic prefills (host x{scale:.2f})", {"host_scale": scale},
                    after / np.array([pt.latency_s for pt in prefill]) - 1.0))
    return fields, fits, scale
