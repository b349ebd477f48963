"""Prediction.confidence: the stack entry used (StackSpec.choose), whether it was fitted on
this very spec, why the scenario leaves the measured ranges, and the TTFT/TPOT error band.

Bands come from validation residuals r = (predicted - measured) / measured, kept as the 5th
and 95th percentiles of each group (accuracy/bands.py, validation/measurements/bands.json).
A band is stated on the measured value as ratios to a prediction p: measured in
[p x low, p x high], low = 1 / (1 + r95), high = 1 / (1 + r5). Which residuals:
  1. the ideal stack (no losses): none; it is a speed-of-light bound, not an estimate;
  2. an entry fitted on this spec: its device's residuals in the scenario's phase, variant
     (dtype, and MoE where MoE runs were validated) and region (bands.region); the phase's
     when the region has fewer than MIN_POINTS; bf16's (else the first validated dtype's)
     when the dtype was never validated;
  3. an entry used on another spec (--profile-from, a what-if copy): the envelope of 2 for
     the device it was fitted on and the class's transfer residuals (each measured device
     predicted with another's profile);
  4. a class or default entry: the residuals of the measured stack's class profile on the
     class's measured devices; a class with none measured: the envelope over the measured
     classes (an assumption, said so; so is 4 for another stack);
  5. another stack: the held-out residuals of its calibration record (a stack fitted from
     end-to-end runs: calibrate --from-runs), else its published runs' residuals per phase,
     else 4's;
  6. an entry fitted on this spec without validated runs: the envelope of the stack's own-
     profile phase bands on the measured devices (an assumption).
Wider: a phase with an extrapolation reason, or a group of fewer than MIN_POINTS residuals,
takes the envelope of its band and 4's made symmetric in ratio (measured between p / (1 + H)
and p (1 + H), H the half-width of 4's band): outside what was fitted and validated the
fitted numbers are known no better than an unfitted profile's, in either direction.
The Scope (everything that depends on the configuration) is built once per prepared
configuration, dtypes and layout; per call the scenario's numbers are compared with its
limits and the Confidence of an equal key is reused.
"""
from __future__ import annotations

import dataclasses
from bisect import bisect_left

from simulator.accuracy import bands as B
from simulator.accuracy.coverage import FitRange, fit_range
from simulator.engine.kernels.phases import mean_decode_position
from simulator.engine.result import Band, Confidence, ErrorBand, trusted
from simulator.specs.stack import DeviceProfile

COVERAGE = (B.QUANTILES[1] - B.QUANTILES[0]) / 100.0
PHASES = ("prefill", "decode")
_MAX_KEPT = 256                   # Confidence objects kept per scope
_NO_FIT = FitRange(0, 0, 0, 0, frozenset(), False)


@dataclasses.dataclass(frozen=True)
class Residuals:
    """A group's residual quantiles (r5, r95), its size and where it comes from."""

    low: float
    high: float
    n: int
    source: str
    assumption: str = ""

    @classmethod
    def of(cls, q: dict, source: str, assumption: str = "") -> Residuals:
        return cls(q["low"], q["high"], q["n"], f"{source} (n={q['n']})", assumption)

    def envelope(self, other: Residuals | None, source: str | None = None) -> Residuals:
        if other is None:
            return self
        if source is None:     # widening a group by its own symmetric form names it once
            same = other.source.startswith(self.source)
            source = other.source if same else f"{self.source}, widened to {other.source}"
        return Residuals(min(self.low, other.low), max(self.high, other.high), self.n + other.n,
                         source, self.assumption or other.assumption)

    def symmetric(self) -> Residuals:
        """The same half-width H either way in ratio: measured / predicted in [1 / (1 + H), 1 + H]."""
        h = self.band().half_width
        return dataclasses.replace(self, low=1.0 / (1.0 + h) - 1.0, high=h, source=f"{self.source} either way")

    def band(self) -> Band:
        """measured / predicted = 1 / (1 + r): the high residual gives the low ratio."""
        return trusted(Band, {"low": 1.0 / (1.0 + self.high), "high": 1.0 / (1.0 + self.low)})


def _envelope_all(rs: list[Residuals], source: str) -> Residuals | None:
    out = None
    for r in rs:
        out = r if out is None else out.envelope(r)
    return None if out is None else dataclasses.replace(out, source=f"{source} (n={out.n})")


def _class_band(data: dict, stack: str, kind: str, phase: str) -> Residuals | None:
    """Rule 4: the measured stack's class profile on the class's measured devices, else the
    envelope over the measured classes."""
    classes = data["uncalibrated"].get(B.MEASURED_STACK, {})
    q = classes.get(kind, {}).get(phase)
    other = "" if stack == B.MEASURED_STACK else f"no measured runs of the {stack} stack: "
    if q is not None:
        where = f"{B.MEASURED_STACK}'s unfitted {kind} profile on {', '.join(q['devices'])}"
        return Residuals.of(q, where, f"{other}the band is that of {where}" if other else "")
    measured = sorted(k for k, phases in classes.items() if phase in phases)
    out = _envelope_all([Residuals.of(classes[k][phase], k) for k in measured],
                        f"unfitted profiles on the measured classes ({', '.join(measured)})")
    if out is None:
        return None
    return dataclasses.replace(out, assumption=f"{other}no measured {kind} device: the band is the widest unfitted "
                                               f"profiles showed on the measured classes ({', '.join(measured)})")


def _device_regions(dev: dict, device: str, group: str, phase: str) -> tuple[dict[str, Residuals], Residuals | None]:
    """Rule 2: {region: residuals} of one device, variant and phase, and the phase's residuals."""
    phase_q = dev["phases"].get(f"{phase}/{group}")
    if phase_q is None:
        return {}, None
    own = "its own fitted profile"
    regions = {key.split("/")[0]: Residuals.of(q, f"{device} {B.region_text(key.split('/')[0])} ({group}), {own}")
               for key, q in dev["regions"].items()
               if key.endswith(f"/{group}") and key.startswith(phase) and q["n"] >= B.MIN_POINTS}
    return regions, Residuals.of(phase_q, f"{device} {phase} ({group}), {own}")


def _own_bands(data: dict, data_stack: str, group: str, fitted_on: str, calibrated: bool, kind: str,
               wide: dict) -> tuple[dict, dict]:
    """Rules 2 and 3: (regions, phases) of the device the entry was fitted on."""
    dev = data["devices"][fitted_on]
    borrowed = data["borrowed"].get(data_stack, {}).get(kind, {})
    regions, phases = {}, {}
    for ph in PHASES:
        r, whole = _device_regions(dev, fitted_on, group, ph)
        if not calibrated:
            q = borrowed.get(ph)
            extra = Residuals.of(q, f"{kind} devices predicted with another's profile") if q else wide[ph]
            r = {k: v.envelope(extra) for k, v in r.items()}
            whole = whole.envelope(extra) if whole is not None else extra
        regions.update(r)
        phases[ph] = whole
    return regions, phases


def _cross_validated(stack, phase: str) -> Residuals | None:
    """Rule 5a: the held-out residuals of a stack fitted from end-to-end runs (its
    ``calibration`` record, calibrate --from-runs) for the phase's metric."""
    record = stack.calibration.get("cross_validation") or {}
    metric = {"prefill": "ttft_s", "decode": "tpot_s"}[phase]
    errors = [h["error"] for h in record.get("held_out") or []
              if isinstance(h, dict) and h.get("metric") == metric and isinstance(h.get("error"), (int, float))]
    if not errors:
        return None
    return Residuals.of(B.quantiles(errors), f"{stack.name}'s cross-validated runs (leave one "
                                             f"{record.get('scheme', 'fold')} out)")


def _small(r: Residuals | None, wide: Residuals | None) -> Residuals | None:
    return r.envelope(wide) if r is not None and r.n < B.MIN_POINTS else r


@dataclasses.dataclass(frozen=True)
class Scope:
    """Everything confidence needs that depends on the configuration only."""

    profile: str
    calibrated: bool
    fixed: tuple[str, ...]                  # reasons from the configuration (dtypes, MoE, tp, ep)
    fit: FitRange                           # what the entry's microbenchmarks reach (zeros: none)
    validated: dict                         # what the validated runs behind the band reach
    limits: tuple[int, int, int, int]       # rows, prompt, context, decode batch: the first passed
    regions: dict[str, Residuals]           # region key -> residuals (rules 2-3)
    phases: dict[str, Residuals | None]     # phase -> residuals when no region applies
    wide: dict[str, Residuals | None]       # phase -> rule 4's residuals, symmetric (the widening)
    lossless: bool                          # the ideal stack: no band
    split: int                              # B / split = one microbatch's sequences (dp x ep x microbatches)
    kept: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def measured_basis(self) -> bool:
        return self.fit != _NO_FIT or bool(self.validated)

    def __call__(self, batch: int, prompt: int, output: int) -> Confidence:
        """The Confidence of one scenario: its numbers against the limits, and the Confidence
        of an equal key reused."""
        mb = batch // self.split
        rows, ctx = mb * prompt, prompt + output - 2          # the last step's cached positions
        rows_max, prompt_max, ctx_max, batch_max = self.limits
        decode = output > 1
        key = (rows if rows_max and rows > rows_max else 0, prompt if prompt_max and prompt > prompt_max else 0,
               ctx if decode and ctx_max and ctx > ctx_max else 0, mb if decode and batch_max and mb > batch_max else 0,
               bisect_left(B.PREFILL_TOKENS_EDGES, rows),                       # bands.bin_index, inlined
               (bisect_left(B.DECODE_BATCH_EDGES, mb),
                bisect_left(B.DECODE_CONTEXT_EDGES, mean_decode_position(prompt, output))) if decode else None)
        out = self.kept.get(key)
        if out is None:
            if len(self.kept) >= _MAX_KEPT:
                self.kept.clear()
            out = self.kept[key] = _assemble(self, mb, prompt, output)
        return out


def _dtype_reasons(w, basis: str, validated: dict, fit: FitRange) -> list[str]:
    compute = w.activation_dtype.value
    out = []
    if fit.dtypes and compute not in fit.dtypes:
        out.append(f"{compute} compute on a profile fitted on {', '.join(sorted(fit.dtypes))} microbenchmarks")
    seen = validated.get("dtypes", [])
    unseen = [f"{value} {what}" for what, value in (("weights", w.weight_dtype), ("compute", compute),
                                                     ("KV cache", w.kv_dtype.value))
              if seen and value not in seen and not (what == "compute" and out)]
    if unseen:
        out.append(f"{', '.join(unseen)}: the validated runs of {basis} are {', '.join(seen)}")
    return out


def _config_reasons(prep, w, basis: str, validated: dict, fit: FitRange) -> tuple[str, ...]:
    if fit == _NO_FIT and not validated:
        return ()
    out = _dtype_reasons(w, basis, validated, fit)
    if prep.table.moe is not None:
        checks = (("no expert GEMMs among the profile's microbenchmarks", fit.moe or not fit.dtypes),
                  (f"no MoE model among the validated runs of {basis}", validated.get("moe", True)))
        missing = [what for what, ok in checks if not ok]
        if missing:
            out.append("mixture of experts: " + "; ".join(missing))
    for name, degree in (("tensor", w.tp), ("expert", w.ep), ("pipeline", w.pp)):
        if degree > 1:
            out.append(f"{name} parallelism ({name[0]}p {degree}): the validated runs are single-device")
    if w.draft_model is not None:
        out.append("speculative decoding: no validated run drafts tokens")
    return tuple(out)


def _class_validated(data: dict, stack: str, kind: str) -> tuple[str, dict]:
    """What the validated runs of a class's measured devices reach together (rule 4's basis)."""
    names = data["uncalibrated"].get(stack, {}).get(kind, {}).get("decode", {}).get("devices", [])
    devs = [data["devices"][n]["validated"] for n in names if n in data["devices"]]
    if not devs:
        return "", {}
    out: dict = {"dtypes": sorted({t for v in devs for t in v["dtypes"]}), "moe": any(v["moe"] for v in devs)}
    for ph in PHASES:
        have = [v[ph] for v in devs if ph in v]
        if have:
            out[ph] = {k: max(h[k] for h in have) for k in have[0]}
    return f"the measured {kind} devices", out


def _limit(fit_max: int, validated: dict, phase: str, key: str) -> int:
    """The first limit a value passes: the smaller of the microbenchmarks' and the validated runs'."""
    known = [x for x in (fit_max, validated.get(phase, {}).get(key, 0)) if x]
    return min(known) if known else 0


def build_scope(prep, w) -> Scope:
    """The Scope of a prepared configuration at the workload's dtypes and degrees."""
    data = B.load()
    choice, kind, stack = prep.choice, prep.hardware.kind, prep.stack.name
    profile = choice.profile if choice is not None else prep.rates.profile
    fitted_on = choice.fitted_on if choice is not None else ""
    calibrated = bool(choice is not None and choice.calibrated)
    fit = (fit_range(profile.fitted_from) if fitted_on else None) or _NO_FIT
    wide = {ph: _class_band(data, stack, kind, ph) for ph in PHASES}
    dev = data["devices"].get(fitted_on, {}) if fitted_on else {}
    regions, phases, basis, validated = {}, {}, "", {}
    held_out = {ph: _cross_validated(prep.stack, ph) for ph in PHASES}
    if dev.get("stack") == stack:                                               # rules 2-3
        seen = dev["validated"]["dtypes"]
        compute = w.activation_dtype.value
        dtype = compute if compute in seen else ("bf16" if "bf16" in seen else seen[0])
        moe = B.variant(dtype, True)
        group = moe if prep.table.moe is not None and any(k.endswith(f"/{moe}") for k in dev["phases"]) else dtype
        regions, phases = _own_bands(data, stack, group, fitted_on, calibrated, kind, wide)
        basis, validated = fitted_on, dev["validated"]
    elif any(held_out.values()):                                                # rule 5a
        phases = {ph: _small(held_out[ph], wide[ph]) if held_out[ph] else wide[ph] for ph in PHASES}
    elif calibrated:                                                            # rule 6
        for ph in PHASES:
            own = [Residuals.of(q, name) for name, d in data["devices"].items() if d["stack"] == stack
                   for key, q in d["phases"].items() if key.startswith(ph)]
            env = _envelope_all(own, f"{stack}'s own fitted profiles on the measured devices")
            phases[ph] = env and dataclasses.replace(
                env, assumption=f"no validated runs of {prep.hardware.name}: the band of fitted profiles on the "
                                f"measured devices")
    else:                                                                       # rules 4-5
        published = data["published"].get(stack, {}) if stack != B.MEASURED_STACK else {}
        for ph in PHASES:
            q = published.get(ph)
            own = q and Residuals.of(q, f"published {stack} runs ({', '.join(published['sources'])})")
            phases[ph] = _small(own, wide[ph]) if own else wide[ph]
        if stack == B.MEASURED_STACK:
            basis, validated = _class_validated(data, stack, kind)
    limits = (_limit(fit.gemm_rows_max, validated, "prefill", "tokens_max"),
              _limit(fit.prefill_length_max, validated, "prefill", "length_max"),
              _limit(fit.decode_context_max, validated, "decode", "length_max"),
              _limit(fit.decode_batch_max, validated, "decode", "batch_max"))
    lossless = profile == DeviceProfile() and not prep.stack.kernels_per_op
    named = (f"{stack}: no losses (a speed-of-light bound, not an estimate)" if lossless else
             choice.why if choice is not None else f"{stack} entry for {prep.hardware.name}")
    return Scope(named, calibrated,
                 _config_reasons(prep, w, basis, validated, fit), fit, validated, limits, regions, phases,
                 {ph: r and r.symmetric() for ph, r in wide.items()}, lossless, w.dp * w.ep * w.microbatches)


def _beyond(value: int, fit_max: int, what: str, fit_text: str, phase: str, validated: dict, key: str) -> str | None:
    """A reason when ``value`` passes what the microbenchmarks, else the validated runs, reach."""
    if fit_max and value > fit_max:
        return f"{what.format(value)}; {fit_text.format(fit_max)}"
    limit = validated.get(phase, {}).get(key, 0)
    if limit and value > limit:
        return f"{what.format(value)}; validated {phase} runs reach {limit:,}"
    return None


def _call_reasons(scope: Scope, mb: int, s: int, n: int) -> list[tuple[str, str]]:
    """(phase or "both", reason): the configuration's, then the scenario's numbers past what
    the microbenchmarks or validated runs reach (microbatch ``mb``, prompt ``s``, output ``n``)."""
    out = [("both", r) for r in scope.fixed]
    if not scope.measured_basis:
        return out
    fit, val = scope.fit, scope.validated
    checks = [("prefill", mb * s, fit.gemm_rows_max, "prefill of {:,} tokens (batch x prompt)",
               "GEMM microbenchmarks reach {:,} rows", "tokens_max"),
              ("prefill", s, fit.prefill_length_max, "prefill attention over {:,} tokens",
               "attention microbenchmarks reach {:,}", "length_max")]
    if n > 1:
        checks += [("decode", s + n - 2, fit.decode_context_max, "decode attention at {:,} cached positions",
                    "microbenchmarks reach {:,}", "length_max"),
                   ("decode", mb, fit.decode_batch_max, "decode at batch {:,}",
                    "attention microbenchmarks reach batch {:,}", "batch_max")]
    return out + [(phase, r) for phase, value, fit_max, what, fit_text, key in checks
                  if (r := _beyond(value, fit_max, what, fit_text, phase, val, key))]


def _pick(scope: Scope, phase: str, region: str | None, widen: bool) -> Residuals | None:
    r = scope.regions.get(region) or scope.phases.get(phase)
    if r is not None and widen:
        r = r.envelope(scope.wide.get(phase))
    return r


def _assemble(scope: Scope, mb: int, s: int, n: int) -> Confidence:
    reasons = _call_reasons(scope, mb, s, n)
    texts = list(dict.fromkeys(text for _, text in reasons))
    if scope.lossless:
        return _confidence(scope.profile, False, texts, None)
    widen = {ph: any(p in (ph, "both") for p, _ in reasons) for ph in PHASES}
    ttft = _pick(scope, "prefill", B.region("prefill", mb, s), widen["prefill"])
    tpot = None if n == 1 else _pick(scope, "decode", B.region("decode", mb, mean_decode_position(s, n)),
                                     widen["decode"])
    if ttft is None and tpot is None:
        return _confidence(scope.profile, scope.calibrated, texts, None)
    source = "; ".join(f"{name}: {r.source}" for name, r in (("TTFT", ttft), ("TPOT", tpot)) if r is not None)
    assumption = "; ".join(dict.fromkeys(r.assumption for r in (ttft, tpot) if r is not None and r.assumption))
    band = trusted(ErrorBand, dict(ttft=ttft.band() if ttft else None, tpot=tpot.band() if tpot else None,
                                   coverage=COVERAGE, source=source, assumption=assumption))
    return _confidence(scope.profile, scope.calibrated, texts, band)


def _confidence(profile: str, calibrated: bool, extrapolated: list[str], band) -> Confidence:
    """A Confidence of values built here (result.trusted: valid by construction, no re-validation)."""
    return trusted(Confidence, dict(profile=profile, calibrated=calibrated, extrapolated=extrapolated,
                                    error_band=band))


def scope_of(prep, w) -> Scope:
    """The Scope of a prepared configuration on w's dtypes and layout, built once and kept on it."""
    key = (w.weight_dtype, w.activation_dtype, w.kv_dtype, w.tp, w.ep, w.pp, w.dp, w.microbatches,
           w.draft_model is not None)
    scope = prep.scope.get(key)
    if scope is None:
        scope = prep.scope[key] = build_scope(prep, w)
    return scope


def confidence(prep, w) -> Confidence:
    """The Confidence of workload ``w`` on a prepared configuration."""
    return scope_of(prep, w)(w.batch, w.prompt, w.output)
