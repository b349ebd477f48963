"""The API edge: names, paths and Hugging Face configs become spec objects here, once; the
engine below takes spec objects only.

A model is a registry name, a spec or config.json path, or a (name, Architecture) pair; a
device a name, a path or a hardware spec object (a what-if copy); a stack a name, a path or
a StackSpec (a provisional profile while calibrating). Prepared configurations are kept
per resolved spec object, so a spec file that changes (the registry re-reads it) is
prepared afresh: nothing here needs invalidating by hand.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.engine import predict as engine
from simulator.engine.batch import evaluate_many
from simulator.engine.kernels.scenario import OUTPUTS
from simulator.engine.result import Prediction
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.errors import WorkloadError
from simulator.specs.consistency import check_workload
from simulator.specs.workload import INT64_MAX, Workload, workload

_MAX_KEPT = 1024
_kept: dict[tuple, tuple] = {}      # key -> (the resolved objects, Prepared): identity-checked


def resolve_model(model):
    """(display name, Architecture)."""
    return model if isinstance(model, tuple) else registry.model(model)[:2]


def resolve_hardware(hardware):
    return registry.hardware(hardware) if isinstance(hardware, str) else hardware


def resolve_stack(stack):
    return registry.stack(stack) if isinstance(stack, str) else stack


def prepare(model, hardware, stack, weight_dtype, activation_dtype: Dtype, kv_dtype: Dtype, tp: int = 1,
            profile_from: str | None = None, ep: int = 1) -> engine.Prepared:
    """engine.prepare after resolving names, with the stack entry StackSpec.choose picks
    against the registry's spec of the device's name. ``profile_from`` names another device
    whose stack profile to use (estimating a device from one you measured)."""
    name, arch = resolve_model(model)
    hw, st = resolve_hardware(hardware), resolve_stack(stack)
    key = (id(arch), id(hw), id(st), weight_dtype, activation_dtype, kv_dtype, tp, profile_from, ep)
    kept = _kept.get(key)
    if kept is not None and kept[0][0] is arch and kept[0][1] is hw and kept[0][2] is st and kept[1].model_name == name:
        return kept[1]
    choice = st.choose(hw, registry.hardware(hw.name) if hw.name in registry.hardware_index() else None, profile_from)
    prep = engine.prepare(name, arch, hw, st, weight_dtype, activation_dtype, kv_dtype, tp, ep, choice)
    if len(_kept) >= _MAX_KEPT:
        _kept.clear()
    _kept[key] = ((arch, hw, st), prep)
    return prep


def roofline_data(model, hardware, stack, w: Workload):
    """engine.roofline_points.roofline_data of a model, device and stack by name."""
    from simulator.engine.roofline_points import roofline_data as points

    return points(prepare(model, hardware, stack, w.weight_format, w.activation_dtype, w.kv_dtype, w.tp, ep=w.ep), w)


def fewest_devices(model, hardware, stack, w: Workload, **limits):
    """engine.sizing.fewest_devices of a model, device and stack by name."""
    from simulator.engine import sizing

    return sizing.fewest_devices(resolve_model(model)[1], resolve_hardware(hardware), resolve_stack(stack), w,
                                 **limits)


def _prepared(model, hardware, stack, w: Workload):
    """(Prepared, draft's Prepared or None, notes) of a workload, checked against the model,
    the draft model and the device (specs.consistency.check_workload)."""
    name, arch = resolve_model(model)
    hw = resolve_hardware(hardware)
    notes = check_workload(w, arch, hw, name)
    prep = prepare((name, arch), hw, stack, w.weight_format, w.activation_dtype, w.kv_dtype, w.tp, ep=w.ep)
    draft = None
    if w.draft_model is not None:
        draft_name, draft_arch = resolve_model(w.draft_model)
        plain = w.model_copy(update={"ep": 1, "draft_model": None})
        notes += [n for n in check_workload(plain, draft_arch, hw, draft_name) if n not in notes]
        draft = prepare((draft_name, draft_arch), hw, stack, w.weight_format, w.activation_dtype, w.kv_dtype, w.tp)
    return prep, draft, notes


def checkpoint_weights(model, w: Workload) -> Workload:
    """The workload with the model checkpoint's weight format (its quantization_config: an AWQ
    model's int4-g128) when the caller gave no weight dtype; the workload itself otherwise."""
    quantized = resolve_model(model)[1].quantized_weights
    if quantized and "weight_dtype" not in w.model_fields_set:
        return w.model_copy(update={"weight_dtype": quantized})
    return w


def predict_workload(model, hardware, stack, w: Workload) -> Prediction:
    """One scenario (speculative when the workload names a draft model)."""
    w = checkpoint_weights(model, w)
    prep, draft, notes = _prepared(model, hardware, stack, w)
    return engine.evaluate(prep, w, draft=draft, notes=tuple(notes))


def predict_many(model, hardware, stack, batch, prompt, output, **options) -> dict[str, np.ndarray]:
    """Scenarios (B, S, N) of one configuration in one kernel call: arrays (or scalars,
    broadcast) of positive integers in, one float64 array per quantity out (the names of
    engine.kernels.scenario.OUTPUTS; fits is 1.0 or 0.0). ``options`` are predict's (dtypes,
    tp, pp, dp, ep, microbatches, draft model, tokens, acceptance), checked as predict checks
    them at the longest prompt and output. Each scenario equals ``simulator.predict`` of it;
    one that does not fit, or whose batch the replicas and microbatches do not split, has
    NaN times."""
    b, s, n = (np.asarray(a).ravel() for a in np.broadcast_arrays(batch, prompt, output))
    for field, values in (("batch", b), ("prompt", s), ("output", n)):
        if values.size and (not np.issubdtype(values.dtype, np.integer) or values.min() < 1):
            raise WorkloadError(field, "expected positive integers")
    degrees = [options.get(key, 1) for key in ("dp", "ep", "microbatches")]
    split = math.prod(degrees) if all(type(d) is int and d > 0 for d in degrees) else 1   # else workload says why
    w = workload(**{**options, **({"batch": split, "prompt": int(s.max()), "output": int(n.max())} if b.size else {})})
    if b.size and int(b.max()) * (int(s.max()) + int(n.max())) > INT64_MAX:
        raise WorkloadError("batch", "expected batch x (prompt + output) within int64")
    w = checkpoint_weights(model, w)
    prep, draft, _ = _prepared(model, hardware, stack, w)
    out = evaluate_many(prep.packed(engine.layout_of(w), draft), b, s, n)
    return {key: out[i] for i, key in enumerate(OUTPUTS)}
