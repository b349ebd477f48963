"""Fit a stack from end-to-end runs: a few bounded knobs (calibration/knobs.py) on top of a
base stack, by least squares on log(predicted / measured) through the predict path itself
(simulator.api.predict_many on a provisional StackSpec), with 1-sigma uncertainties from
the Jacobian and a cross-validated error: each fold refitted from the base without its
runs, then predicting them.

  residual r_i = ln(pred_i(x) / meas_i)          one per (run, measured metric)
  cov(x) = s^2 (J^T J)^+,  s^2 = sum r^2 / (m - p)
  CV error e_i = (pred_i(x_-fold) - meas_i) / meas_i, x_-fold fitted without run i's fold

Folds: ``model`` (leave one model out), ``hardware`` (one device out), ``run`` (leave one
run out) or ``kfold:K`` (K folds, runs dealt in order).
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
from scipy.optimize import least_squares

from simulator.api import predict_many, resolve_hardware, resolve_model
from simulator.calibration.importers.runs import Run
from simulator.calibration.knobs import Knob, adjusted, device_factor, lower_bound
from simulator.errors import SimulatorError, SpecError, UnknownNameError
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.stack import DeviceProfile, StackSpec

TYPICAL = {"scale": 1.0, "shift": 1e-5}     # the optimizer's step scale per knob kind (x_scale)
SCHEMES = ("model", "hardware", "run")
NUDGE = 0.01                                 # a start on a bound moves this x the typical step inside
TOL = 1e-6                                   # least_squares' x, f and gradient tolerances


def addresses(stack: StackSpec) -> dict[str, DeviceProfile]:
    """Every profile of a stack by its YAML address: default, classes.KIND, devices.NAME."""
    return {"default": stack.default, **{f"classes.{k}": p for k, p in stack.classes.items()},
            **{f"devices.{n}": p for n, p in stack.devices.items()}}


def address_of(stack: StackSpec, hardware) -> str:
    """The address of the profile profile_for gives ``hardware``."""
    if hardware.name in stack.devices:
        return f"devices.{hardware.name}"
    return f"classes.{hardware.kind}" if hardware.kind in stack.classes else "default"


@dataclasses.dataclass(frozen=True)
class Slot:
    """One entry of the parameter vector: a knob on a group of profile addresses (None: all)."""

    knob: Knob
    group: tuple[str, ...] | None
    prefix: str | None = None        # as --params named it (NAME@PREFIX)
    per_profile: bool = False        # one of a set of slots, one per distinct profile

    @property
    def label(self) -> str:
        name = self.knob.name if self.prefix is None else f"{self.knob.name}@{self.prefix}"
        return f"{name}[{self.group[0]}]" if self.per_profile or (self.group and self.prefix is None) else name


def parse_use(text: str) -> tuple[Knob, str | None]:
    """``NAME`` (every profile) or ``NAME@PREFIX`` (the profiles whose address starts with
    PREFIX, e.g. memory_scale@classes.gpu, gemm_compute_scale@devices.apple)."""
    from simulator.calibration.knobs import knob

    name, _, prefix = text.partition("@")
    return knob(name), prefix or None


def _matches(address: str, prefix: str | None) -> bool:
    return prefix is None or address.startswith(prefix)


def expanded(base: StackSpec, uses: list[tuple[Knob, str | None]]) -> tuple[StackSpec, dict[str, str]]:
    """For a per-device knob (rate, stream): every registered device with the spec facts it
    needs (compute units and a clock; compute units) whose profile it would change gets its
    own entry (a copy of that profile), so each can take its own fraction; for a knob on
    ``devices.NAME...``, every registered device of such a name that has no entry of its own
    gets one likewise. Returns the stack and {new address: the address copied}."""
    rates = [(k, prefix) for k, prefix in uses if k.per_device]
    named = [prefix for _, prefix in uses if prefix and prefix.startswith("devices.")]
    if not rates and not named:
        return base, {}
    added, origin = {}, {}
    for name in registry.hardware_index():
        try:
            hw = registry.hardware(name)
        except SimulatorError:           # a broken spec elsewhere is not this fit's problem
            continue
        address = address_of(base, hw)
        if address.startswith("devices."):
            continue
        rate = any(_matches(address, p) and _has_facts(k, hw) for k, p in rates)
        if rate or any(_matches(f"devices.{hw.name}", p) for p in named):
            added[hw.name] = addresses(base)[address]
            origin[f"devices.{hw.name}"] = address
    return base.model_copy(update={"devices": {**base.devices, **added}}), origin


def _has_facts(k: Knob, hw) -> bool:
    """Whether ``hw``'s spec gives what the per-device knob ``k`` needs: compute units, and a
    clock for a rate."""
    return bool(getattr(hw, "compute_units", None)) and (k.kind != "rate" or bool(getattr(hw, "clock_hz", None)))


def _resolved(run: Run):
    """(model, device) objects of a run; an unknown or malformed name names the run's row."""
    try:
        return resolve_model(run.model), resolve_hardware(run.hardware)
    except UnknownNameError as err:
        what = "model" if err.what == "model" else "hardware"
        raise SpecError(run.source.rsplit(":", 1)[0], f"{run.source.rsplit(':', 1)[-1]}: {what}", str(err)) from None


class Observations:
    """The runs as predict_many calls: one per configuration (model, device, tp, pp, dtypes),
    and the measured values, one per (run, metric)."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.configs: dict[tuple, tuple] = {}     # key -> (model, device, options, run indices)
        keyed: dict[tuple, list[int]] = {}
        objects = {}
        for i, run in enumerate(runs):
            options = {k: getattr(run, k) for k in ("weight_dtype", "activation_dtype", "kv_dtype", "tp", "pp")
                       if getattr(run, k) is not None}
            key = (run.model, run.hardware, tuple(sorted(options.items())))
            if key not in objects:
                objects[key] = (*_resolved(run), options)
            keyed.setdefault(key, []).append(i)
        self.configs = {key: (*objects[key], np.array(idx)) for key, idx in keyed.items()}
        self.run_of = np.array([i for i, run in enumerate(runs) for _ in run.measured()])
        self.metric = [m for run in runs for m in run.measured()]
        self.value = np.array([v for run in runs for v in run.measured().values()])

    def predicted(self, stack: StackSpec, runs: np.ndarray | None = None) -> np.ndarray:
        """Each observation's prediction under ``stack`` (NaN for runs outside ``runs``)."""
        wanted = np.ones(len(self.runs), bool) if runs is None else np.isin(np.arange(len(self.runs)), runs)
        per_run: dict[str, np.ndarray] = {}
        for model, hw, options, idx in self.configs.values():
            idx = idx[wanted[idx]]
            if idx.size == 0:
                continue
            b, s, n = (np.array([getattr(self.runs[i], f) for i in idx]) for f in ("batch", "prompt", "output"))
            try:
                out = predict_many(model, hw, stack, b, s, n, **options)
            except SimulatorError as err:
                run = self.runs[idx[0]]
                raise SpecError(run.source, "", f"cannot predict this run: {err}") from None
            for metric in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s"):
                per_run.setdefault(metric, np.full(len(self.runs), np.nan))[idx] = out[metric]
        return np.array([per_run[m][i] if m in per_run else np.nan for i, m in zip(self.run_of, self.metric)])


def _factors(address: str, knobs: list[Knob], dtype: Dtype) -> dict:
    """{knob kind: device_factor} of a devices.NAME address's device for the per-device knobs
    (empty for a class or an unknown name; None for a device without the facts)."""
    if not address.startswith("devices."):
        return {}
    out = {}
    for k in knobs:
        try:
            out[k.kind] = device_factor(k, registry.hardware(address[len("devices."):]), dtype)
        except SimulatorError:
            out[k.kind] = None
    return out


class Problem:
    """Runs, a base stack and the slots to fit; ``stack(x)`` is the provisional stack.
    ``uses``: (knob, address prefix or None). ``per_profile``: one slot per knob and distinct
    profile the runs use (identical profiles share one), else one slot per knob."""

    def __init__(self, runs: list[Run], base: StackSpec, uses: list[tuple[Knob, str | None]],
                 per_profile: bool = False):
        self.obs = Observations(runs)
        self.base, self.origin = expanded(base, uses)
        profiles = addresses(self.base)
        per_device = [k for k, _ in uses if k.per_device]
        dtype = Dtype(Counter(r.activation_dtype or "bf16" for r in runs).most_common(1)[0][0])
        self.factors = {a: _factors(a, per_device, dtype) for a in profiles}
        used = sorted({address_of(self.base, hw) for _, hw, _, _ in self.obs.configs.values()})
        groups: list[list[str]] = []
        for a in (used if per_profile else []):
            same = next((g for g in groups if profiles[g[0]] == profiles[a]), None)
            (same.append(a) if same is not None else groups.append([a]))
        self.slots = []
        for k, prefix in uses:
            if not per_profile:
                chosen = [a for a in profiles if self.reaches(a, prefix)]
                self.slots.append(Slot(k, None if prefix is None else tuple(chosen), prefix))
                continue
            for g in groups:
                if any(self.reaches(a, prefix) for a in g):
                    # a group's slot reaches every profile equal to it (unused devices alike)
                    self.slots.append(Slot(k, tuple(a for a in profiles if profiles[a] == profiles[g[0]]
                                                    and self.reaches(a, prefix)), prefix, True))
        if not self.slots:
            raise SpecError("<arguments>", "--params", "no parameter applies to the profiles these runs use")
        self.targets = {a: [s for s in self.slots if s.group is None or a in s.group] for a in profiles}
        self.lower = np.array([lower_bound(s.knob, [profiles[a] for a in (s.group or profiles)]) for s in self.slots])
        self.upper = np.array([s.knob.upper for s in self.slots])
        self.typical = np.array([self._start(s, profiles) if s.knob.per_device else TYPICAL[s.knob.kind]
                                 for s in self.slots])
        # a start on a bound (a shift of a cost the base has at 0) is nudged inside by 1% of its
        # typical step: least_squares' trf freezes a variable that starts on its bound
        inside = np.minimum(NUDGE * self.typical, (self.upper - self.lower) / 2)
        self.start = np.clip([self._start(s, profiles) for s in self.slots], self.lower + inside, self.upper - inside)
        # a per-device cap or rate makes the objective piecewise (which devices it binds on), so
        # one start can stop in a local minimum: also start from the other side of the kinks,
        # caps and rates at half (binding on more devices), shifted costs at their floor
        self.starts = [self.start]
        if any(s.knob.per_device for s in self.slots):
            other = np.where([s.knob.per_device for s in self.slots], 0.5 * self.start, self.start)
            other = np.where([s.knob.kind == "shift" for s in self.slots], self.lower + inside, other)
            self.starts.append(np.clip(other, self.lower + inside, self.upper - inside))
        pred = self.obs.predicted(base)
        if not np.isfinite(pred).all():
            i = int(np.flatnonzero(~np.isfinite(pred))[0])
            run = runs[self.obs.run_of[i]]
            raise SpecError(run.source, self.obs.metric[i], f"{run.model} does not fit on {run.hardware} at batch "
                                                            f"{run.batch} (no time to fit)")

    def reaches(self, address: str, prefix: str | None) -> bool:
        """Whether a knob on ``prefix`` applies to the profile at ``address``: its own address or
        that of the base profile it copies starts with the prefix."""
        return _matches(address, prefix) or _matches(self.home(address), prefix)

    def home(self, address: str) -> str:
        """The base's own address of a profile (the one a device entry the fit added copies)."""
        return self.origin.get(address, address)

    def _start(self, slot: Slot, profiles) -> float:
        """x0: the knob's neutral value; for a rate or stream, the median value the base's
        fractions imply (peak_fraction, gemv_memory_fraction over the device factor)."""
        k = slot.knob
        if not k.per_device:
            return k.start
        field = k.fields[0][len("gemm."):]
        implied = [getattr(profiles[a].gemm, field) / self.factors[a][k.kind] for a in (slot.group or profiles)
                   if self.factors[a].get(k.kind)]
        return float(np.median(implied)) if implied else 1.0

    def stack(self, x) -> StackSpec:
        """The base with each profile's knobs set to x."""
        values = {a: {s.knob: x[self.slots.index(s)] for s in slots} for a, slots in self.targets.items()}
        new = {a: adjusted(p, values[a], self.factors[a]) if values[a] else p for a, p in addresses(self.base).items()}
        return self.base.model_copy(update={
            "default": new["default"],
            "classes": {k: new[f"classes.{k}"] for k in self.base.classes},
            "devices": {n: new[f"devices.{n}"] for n in self.base.devices}})

    def residuals(self, x, mask: np.ndarray) -> np.ndarray:
        runs = np.unique(self.obs.run_of[mask])
        return np.log(self.obs.predicted(self.stack(x), runs)[mask] / self.obs.value[mask])


@dataclasses.dataclass
class Fit:
    x: np.ndarray
    sigma: np.ndarray            # 1-sigma; NaN where the runs cannot tell it (or no residual dof)
    at_bound: np.ndarray         # bool: the fit pushed it to a bound
    rms_log: float


def fit(problem: Problem, mask: np.ndarray | None = None) -> Fit:
    """Least squares on the observations in ``mask`` (all by default), from each of the
    problem's starts (the base x0 first); the lowest cost wins."""
    mask = np.ones(len(problem.obs.value), bool) if mask is None else mask
    res = min((least_squares(problem.residuals, x0, bounds=(problem.lower, problem.upper), x_scale=problem.typical,
                             args=(mask,), method="trf", xtol=TOL, ftol=TOL, gtol=TOL) for x0 in problem.starts),
              key=lambda r: r.cost)
    m, p = int(mask.sum()), len(res.x)
    sigma = np.full(p, np.nan)
    if m > p:
        # in units of each knob's typical step: a B/s knob's column is ~1e-11 per unit, a
        # fraction's ~1 (unscaled, the small one would read as unidentified)
        jac = res.jac * problem.typical
        jtj = jac.T @ jac
        s2 = float(res.fun @ res.fun) / (m - p)
        cov = np.linalg.pinv(jtj) * s2
        identified = np.abs(np.diag(jtj)) > 1e-12 * max(float(np.abs(np.diag(jtj)).max()), 1e-300)
        sigma = np.where(identified, problem.typical * np.sqrt(np.clip(np.diag(cov), 0, None)), np.nan)
    return Fit(res.x, sigma, res.active_mask != 0, float(np.sqrt(np.mean(res.fun ** 2))))


def folds(runs: list[Run], scheme: str) -> list[np.ndarray]:
    """Run indices of each held-out fold."""
    if scheme.startswith("kfold:"):
        try:
            k = int(scheme.split(":", 1)[1])
        except ValueError:
            k = 0
        if not 2 <= k <= len(runs):
            raise SpecError("<arguments>", "--cv", f"kfold:K needs 2 <= K <= {len(runs)} runs, got {scheme!r}")
        return [np.arange(i, len(runs), k) for i in range(k)]
    if scheme not in SCHEMES:
        raise SpecError("<arguments>", "--cv", f"expected one of {', '.join(SCHEMES)} or kfold:K, got {scheme!r}")
    key = [getattr(r, scheme) if scheme != "run" else i for i, r in enumerate(runs)]
    values = list(dict.fromkeys(key))
    if len(values) < 2:
        raise SpecError("<arguments>", "--cv", f"leave-one-{scheme}-out needs runs of 2 or more {scheme}s")
    return [np.array([i for i, v in enumerate(key) if v == value]) for value in values]


def default_scheme(runs: list[Run]) -> str:
    """Leave one model out when there are 3 or more models, else one device out, else one run."""
    for scheme in ("model", "hardware"):
        if len({getattr(r, scheme) for r in runs}) >= 3:
            return scheme
    return "run"


def cross_validated(problem: Problem, scheme: str) -> np.ndarray:
    """Each observation's relative error predicted by the fit without its fold."""
    errors = np.full(len(problem.obs.value), np.nan)
    for held in folds(problem.obs.runs, scheme):
        test = np.isin(problem.obs.run_of, held)
        if test.all():
            continue
        f = fit(problem, ~test)
        pred = problem.obs.predicted(problem.stack(f.x), held)
        errors[test] = pred[test] / problem.obs.value[test] - 1.0
    return errors


def summary(problem: Problem, errors: np.ndarray) -> list[dict]:
    """Per metric: n, median, p90 and max |error|, mean bias (errors NaN are left out)."""
    metric = np.array(problem.obs.metric)
    out = []
    for m in dict.fromkeys(problem.obs.metric):
        e = errors[(metric == m) & np.isfinite(errors)]
        if e.size:
            a = np.abs(e)
            out.append({"metric": m, "n": int(e.size), "median_abs_error": float(np.median(a)),
                        "p90_abs_error": float(np.percentile(a, 90)), "max_abs_error": float(a.max()),
                        "mean_bias": float(e.mean())})
    return out


@dataclasses.dataclass
class Calibration:
    """A whole calibration: the fit on every run, its in-sample and cross-validated errors."""

    problem: Problem
    fit: Fit
    scheme: str
    in_sample: np.ndarray
    cv: np.ndarray

    @property
    def stack(self) -> StackSpec:
        return self.problem.stack(self.fit.x)


def calibrate_from_runs(runs: list[Run], base: StackSpec, uses: list, scheme: str | None = None,
                        per_profile: bool = False) -> Calibration:
    """Fit the knobs ``uses`` names (Knob, or (Knob, address prefix)) on every run, and
    cross-validate by ``scheme`` (default_scheme when None)."""
    if not runs:
        raise SpecError("<arguments>", "RUNS", "no runs to fit")
    uses = [u if isinstance(u, tuple) else (u, None) for u in uses]
    problem = Problem(runs, base, uses, per_profile)
    scheme = scheme or default_scheme(runs)
    folds(runs, scheme)                          # a bad scheme is refused before any fitting
    full = fit(problem)
    in_sample = problem.obs.predicted(problem.stack(full.x)) / problem.obs.value - 1.0
    return Calibration(problem, full, scheme, in_sample, cross_validated(problem, scheme))
