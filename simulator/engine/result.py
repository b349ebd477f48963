"""The Prediction returned by ``simulator.predict`` (all times in seconds, energy in joules)."""
from __future__ import annotations

import functools
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, computed_field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class MemoryReport(_Frozen):
    """Per device (all devices of a parallel configuration hold the same share)."""

    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool


BoundName = Literal["compute", "memory", "overhead"]      # what bounds an operator


class OperatorShare(_Frozen):
    """One operator (all its layers) in the request: time per phase, share and bound."""

    name: str
    kind: str
    prefill_time_s: float
    decode_step_time_s: float        # mean over decode steps
    share: float                     # fraction of e2e time
    prefill_bound: BoundName
    decode_bound: BoundName
    prefill_unit: Literal["host", "memory"] = "host"   # "memory": ran inside memory (PIM)
    decode_unit: Literal["host", "memory"] = "host"


class SpeculativeReport(_Frozen):
    """What speculative decoding did: tpot_s of the Prediction is per accepted token."""

    draft_model: str
    draft_tokens: int
    acceptance: float
    tokens_per_iteration: float
    draft_step_s: float
    verify_pass_s: float
    plain_tpot_s: float           # the target alone
    speedup: float                # plain_tpot_s / speculative tpot_s


class Band(_Frozen):
    """Where the measured value is likely to lie, as ratios to the prediction: measured in
    [predicted x low, predicted x high] (low <= 1 <= high unless the residuals lean)."""

    low: float
    high: float

    @property
    def half_width(self) -> float:
        """The "±x" a table prints: max(high - 1, 1 - low)."""
        return max(self.high - 1.0, 1.0 - self.low)


class ErrorBand(_Frozen):
    """TTFT and TPOT bands from validation residuals (simulator/accuracy/confidence.py has the rule)."""

    ttft: Band | None
    tpot: Band | None
    coverage: float                  # fraction of the source's residuals inside the band
    source: str                      # the residuals it comes from (device, phase, region, n points)
    assumption: str = ""             # non-empty: the band is an assumption, and why


class Confidence(_Frozen):
    """How far to trust a prediction: the stack profile used, whether it was fitted on this
    device, where the scenario leaves what was measured, and the error band."""

    profile: str                     # the stack entry used and why it was chosen
    calibrated: bool                 # that entry was fitted from microbenchmarks of this very spec
    extrapolated: list[str]          # plain reasons the scenario lies outside the measured ranges
    error_band: ErrorBand | None     # None: no band applies (the ideal stack is a bound)


class Prediction(_Frozen):
    model: str
    hardware: str
    stack: str
    batch: int
    prompt: int
    output: int
    weight_dtype: str
    activation_dtype: str
    kv_dtype: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    microbatches: int = 1
    devices: int = 1
    ttft_s: float | None             # prefill of B x S tokens, which yields the first token
    tpot_s: float | None             # mean decode step over output tokens 2..N (None when N = 1)
    e2e_s: float | None              # ttft + (N - 1) tpot
    output_tokens_per_s: float | None  # B N / e2e
    prefill_energy_j: float | None
    decode_step_energy_j: float | None  # mean energy of one decode step of the whole batch
    energy_j: float | None
    tokens_per_j: float | None       # B N / energy
    memory: MemoryReport
    speculative: SpeculativeReport | None = None
    note: str = ""
    confidence: Confidence | None = None
    _breakdown_of: Callable[[], list[OperatorShare]] = PrivateAttr(list)

    @computed_field
    @functools.cached_property
    def breakdown(self) -> list[OperatorShare]:
        """Per operator (time per phase, share, bound): computed when first read."""
        return self._breakdown_of()


@functools.cache
def _template(cls) -> tuple[dict, set, tuple]:
    """(every field of ``cls`` in declared order, what JSON follows, with its default (None
    when required); the set of their names, shared: a frozen model never changes it; the
    names in order)."""
    fields = {name: None if f.is_required() else f.get_default(call_default_factory=True)
              for name, f in cls.model_fields.items()}
    return fields, set(fields), tuple(fields)


_set, _new = object.__setattr__, object.__new__     # BaseModel defines neither: these are its own


def trusted(cls, values: dict, private: dict | None = None):
    """An instance of result model ``cls`` from field values the engine built (valid by
    construction: no validation, ~4x faster than the validating constructor); fields left
    out take their defaults; ``private`` gives its private attributes (a Prediction's
    ``_breakdown_of``, called when the breakdown is first read). ``values`` holding every
    field in declared order is taken as the instance's own dict."""
    template, names, order = _template(cls)
    if len(values) != len(order) or tuple(values) != order:
        fields = dict(template)
        fields.update(values)
        values = fields
    return built(cls, values, private)


def field_names(cls) -> tuple[str, ...]:
    """The fields of result model ``cls`` in declared order (what ``built`` takes)."""
    return _template(cls)[2]


def fields_set(cls) -> set:
    """The set of ``cls``'s field names that its instances built here share (``built``)."""
    return _template(cls)[1]


def built(cls, fields: dict, private: dict | None = None, names: set | None = None):
    """trusted() of ``fields`` that hold every field of ``cls`` in declared order (the
    caller's promise: field_names(cls)); the dict becomes the instance's own. ``names``:
    fields_set(cls), when the caller keeps it."""
    model = _new(cls)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", names if names is not None else _template(cls)[1])
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", private)
    return model
