"""The API edge: names, paths and Hugging Face configs become spec objects here, once; the
engine below takes spec objects only.

A model is a registry name, a spec or config.json path, or a (name, Architecture) pair; a
device a name, a path or a hardware spec object (a what-if copy); a stack a name, a path or
a StackSpec (a provisional profile while calibrating). Prepared configurations are kept
per resolved spec object, so a spec file that changes (the registry re-reads it) is
prepared afresh: nothing here needs invalidating by hand.
"""
from __future__ import annotations

from simulator.engine import predict as engine
from simulator.engine.result import Prediction
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.consistency import check_workload
from simulator.specs.workload import Workload

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
    """engine.prepare after resolving names. ``profile_from`` names another device whose
    stack profile to use (estimating a device from one you measured)."""
    name, arch = resolve_model(model)
    hw, st = resolve_hardware(hardware), resolve_stack(stack)
    key = (id(arch), id(hw), id(st), weight_dtype, activation_dtype, kv_dtype, tp, profile_from, ep)
    kept = _kept.get(key)
    if kept is not None and kept[0][0] is arch and kept[0][1] is hw and kept[0][2] is st and kept[1].model_name == name:
        return kept[1]
    if profile_from is not None:
        st_used = st.model_copy(update={"devices": {**st.devices, hw.name: st.profile_for(profile_from, hw.kind)}})
    else:
        st_used = st
    prep = engine.prepare(name, arch, hw, st_used, weight_dtype, activation_dtype, kv_dtype, tp, ep)
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


def predict_workload(model, hardware, stack, w: Workload) -> Prediction:
    """One scenario (speculative when the workload names a draft model)."""
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
    return engine.evaluate(prep, w, draft=draft, notes=tuple(notes))
prepare.cache_clear = _kept.clear     # nothing needs it (see the module docstring); kept for old callers
