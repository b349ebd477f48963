"""The API edge: names, paths and Hugging Face configs become spec objects here, once; the
engine below takes spec objects only.

A model is a registry name, a spec or config.json path, or a (name, Architecture) pair; a
device a name, a path or a hardware spec object (a what-if copy); a stack a name, a path or
a StackSpec (a provisional profile while calibrating). Prepared configurations are kept
per resolved spec object, so a spec file that changes (the registry re-reads it) is
prepared afresh: nothing here needs invalidating by hand.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulator import freshness
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


def profile_choice(hw, st, profile_from: str | None = None):
    """The stack entry ``hw`` is predicted with: StackSpec.choose against the registry's spec
    of the device's name (None where the registry has no such device)."""
    return st.choose(hw, registry.hardware(hw.name) if hw.name in registry.hardware_index() else None, profile_from)


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
    choice = profile_choice(hw, st, profile_from)
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


def _notes(model, hw, w: Workload) -> list[str]:
    """check_workload of w against the model (and the draft model) and the device."""
    name, arch = resolve_model(model)
    notes = check_workload(w, arch, hw, name)
    if w.draft_model is not None:
        draft_name, draft_arch = resolve_model(w.draft_model)
        plain = w.model_copy(update={"ep": 1, "draft_model": None})
        notes += [n for n in check_workload(plain, draft_arch, hw, draft_name) if n not in notes]
    return notes


def _prepared(model, hardware, stack, w: Workload):
    """(Prepared, draft's Prepared or None, notes) of a workload, checked against the model,
    the draft model and the device (specs.consistency.check_workload)."""
    model, hw = resolve_model(model), resolve_hardware(hardware)
    notes = _notes(model, hw, w)
    prep = prepare(model, hw, stack, w.weight_format, w.activation_dtype, w.kv_dtype, w.tp, ep=w.ep)
    draft = None
    if w.draft_model is not None:
        draft = prepare(resolve_model(w.draft_model), hw, stack, w.weight_format, w.activation_dtype, w.kv_dtype,
                        w.tp)
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


OPTIONS = ("weight_dtype", "activation_dtype", "kv_dtype", "tp", "pp", "dp", "ep", "microbatches", "draft_model",
           "draft_tokens", "acceptance")      # a workload's fields other than batch, prompt and output
_MAX_CHECKED = 4096


class Configured:
    """A model, device, stack and workload options resolved, checked, prepared and packed
    once (``simulator.configure``): ``predict(batch, prompt, output)`` is then one kernel call
    and the result object. A scenario's workload is validated (specs/workload.py,
    specs/consistency.py) the first time it is seen and its notes kept. It holds the spec
    objects resolved when it was made: ``fresh()`` says whether their files still give
    them (simulator.predict asks on every call)."""

    def __init__(self, model, hardware, stack, w: Workload):
        self.given = (model, hardware, stack, w.draft_model)
        self.options = {key: getattr(w, key) for key in OPTIONS if key in w.model_fields_set or key != "weight_dtype"}
        self.model, self.hardware = resolve_model(model), resolve_hardware(hardware)
        w = checkpoint_weights(self.model, w)
        prep, draft, notes = _prepared(self.model, self.hardware, stack, w)
        self.stack = prep.stack if not isinstance(stack, str) else resolve_stack(stack)
        self.draft_model = resolve_model(w.draft_model) if w.draft_model is not None else None
        self._parts = (prep, draft, w)
        self.evaluator = engine.evaluator(prep, w, draft)
        self._checked = {(w.batch, w.prompt, w.output): tuple(notes)}
        self._located = self._locate()
        self._epoch = None              # freshness.epoch() when fresh() last stat'ed the files; None: stat next

    def _locate(self) -> tuple:
        """registry.located() of each spec given by name or path (fresh()'s fast check)."""
        model, hardware, stack, draft = self.given
        return tuple(registry.located(what, name) for what, name in (
            ("model", model), ("hardware", hardware), ("stack", stack), ("model", draft)) if type(name) is str)

    def __getstate__(self) -> dict:
        """What pickles (simulator/cache.py): the prepared models without their evaluators
        and packs (a lock each; rebuilt from the tables in ~1 ms)."""
        prep, draft, w = self._parts
        bare = [None if p is None else dataclasses.replace(p, packs={}, evaluators={}) for p in (prep, draft)]
        state = {k: v for k, v in self.__dict__.items() if k != "evaluator"}
        state["_parts"] = (*bare, w)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._epoch = None                                  # another process: its own watches
        prep, draft, w = self._parts
        self.evaluator = engine.evaluator(prep, w, draft)

    def fresh(self) -> bool:
        """Whether each spec given by name or path still resolves to the object held: one
        ioctl while the watched files raised no event (simulator/freshness.py) and no index
        was listed again; else one stat each (registry.unchanged), watching them first;
        else resolved again (the registry re-reads a changed file). A relative path (its
        meaning moves with the working directory) is stat'ed on every call."""
        if self._epoch is not None and self._epoch == freshness.epoch() and self._located[0][3] == registry._listings[0]:
            return True
        watched = self._epoch is not None or (
            bool(self._located) and all(place[2] is None for place in self._located)
            and freshness.watch([place[0] for place in self._located]))
        now = freshness.epoch() if watched else None        # before the stats: a later event moves it
        if all(map(registry.unchanged, self._located)):
            self._epoch = now
            return True
        self._epoch = None
        model, hardware, stack, draft = self.given
        same = ((type(model) is not str or resolve_model(model)[1] is self.model[1])
                and (type(hardware) is not str or resolve_hardware(hardware) is self.hardware)
                and (type(stack) is not str or resolve_stack(stack) is self.stack)
                and (draft is None or resolve_model(draft)[1] is self.draft_model[1]))
        if same:
            self._located = self._locate()
        return same

    def predict(self, batch: int = 8, prompt: int = 1024, output: int = 128) -> Prediction:
        """One scenario of this configuration (``simulator.predict``'s result)."""
        key = (batch, prompt, output)
        notes = self._checked.get(key) if type(batch) is int is type(prompt) is type(output) else None
        if notes is None:
            w = scenario_workload(self._parts[2], batch, prompt, output, self.options)
            if w is None:                     # not plain ints, or a bad one: workload() says why
                w = checkpoint_weights(self.model, workload(**self.options, batch=batch, prompt=prompt,
                                                            output=output))
            notes = tuple(_notes(self.model, self.hardware, w))
            if type(batch) is int is type(prompt) is type(output):
                if len(self._checked) >= _MAX_CHECKED:
                    self._checked.clear()
                self._checked[key] = notes
        return self.evaluator(batch, prompt, output, notes)


_SCENARIO = ("batch", "prompt", "output")
_scenario_check = []          # [TypeAdapter of (B, S, N) with the Workload fields' own rules], built on first use


def scenario_workload(base: Workload, batch, prompt, output, given=()) -> Workload | None:
    """``base`` (a checked workload) with another batch, prompt and output (and ``given``
    among the fields set, as workload(**given, batch=...) would have them), checked by the
    Workload's own rules (each field's validators, then its cross-field _consistent) without
    validating the other fields again (~8 us instead of ~25 here); None when B, S, N are not
    plain ints or break a rule (the full workload() then raises its error)."""
    if not type(batch) is int is type(prompt) is type(output):
        return None
    if not _scenario_check:
        from typing import Annotated

        from pydantic import TypeAdapter
        fields = [Workload.model_fields[name] for name in _SCENARIO]
        _scenario_check.append(TypeAdapter(tuple[tuple(Annotated[(f.annotation, *f.metadata)] for f in fields)]))
    try:
        values = _scenario_check[0].validate_python((batch, prompt, output))
    except ValueError:                        # pydantic's ValidationError
        return None
    w = Workload.__new__(Workload)
    object.__setattr__(w, "__dict__", {**base.__dict__, **dict(zip(_SCENARIO, values))})
    object.__setattr__(w, "__pydantic_fields_set__", base.model_fields_set | set(given) | set(_SCENARIO))
    object.__setattr__(w, "__pydantic_extra__", None)
    object.__setattr__(w, "__pydantic_private__", None)
    try:
        Workload._consistent(w)
    except WorkloadError:
        return None
    return w


def configure(model, hardware, stack, **options) -> Configured:
    """A Configured of predict's options (OPTIONS; a SimulatorError for bad ones; weight_dtype
    None or left out: the checkpoint's own format, else bf16)."""
    if options.get("weight_dtype", "") is None:
        del options["weight_dtype"]
    return Configured(model, hardware, stack, workload(**options))


_configured: dict[tuple, Configured] = {}


def predict(model, hardware, stack, batch, prompt, output, options: tuple) -> Prediction:
    """simulator.predict: ``options`` are the values of OPTIONS in order."""
    if type(model) is str is type(hardware) is type(stack):         # configured_for's key, its kept path inlined
        try:
            kept = _configured.get((model, hardware, stack, options, tuple(map(type, options))))
        except TypeError:
            kept = None
        if kept is not None and kept.fresh():
            return kept.predict(batch, prompt, output)
    return configured_for(model, hardware, stack, batch, prompt, output, options).predict(batch, prompt, output)


def configured_for(model, hardware, stack, batch, prompt, output, options: tuple) -> Configured:
    """The Configured of (model, hardware, stack, options), checked with a first scenario
    (batch, prompt, output), kept (keyed by value and type; a spec object by identity, which
    the Configured keeps alive) while its spec files are unchanged."""
    key = (model if type(model) is str else id(model), hardware if type(hardware) is str else id(hardware),
           stack if type(stack) is str else id(stack), options, tuple(map(type, options)))
    try:
        kept = _configured.get(key)
    except TypeError:                         # an unhashable option: workload() says why
        kept = key = None
    if kept is None or not kept.fresh():
        given = {key: value for key, value in zip(OPTIONS, options) if key != "weight_dtype" or value is not None}
        w = workload(batch=batch, prompt=prompt, output=output, **given)
        kept = Configured(model, hardware, stack, w)
        if key is not None:
            if len(_configured) >= _MAX_KEPT:
                _configured.clear()
            _configured[key] = kept
    return kept


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
    out = evaluate_many(prep.packed(engine.layout_of(w), draft), b, s, n, rows=True)
    return dict(zip(OUTPUTS, out))              # each a contiguous row of one C-order array: no copies
