"""Capacity planning: ``llmsim plan --model M --prompt S --output N [--batch B | --rate R]
--ttft-max X --tpot-max Y --throughput-min Z``.

Candidates are configurations (device, count, precision) over the chosen devices (default:
every GPU, TPU and ASIC spec with a price, or with a price the caller assumes; the result names
the ones skipped for want of one):
  count       tp = 1, 2, 4, 8 tensor-parallel devices (up to --max-devices; more than one
              needs a link, and tp must divide the model's heads)
  precision   bf16 (W16A16); fp8 and int8 (W8A8: only on devices whose datasheet lists a
              dense peak for that dtype); int4 (weight-only int4-g128, dequantized to bf16,
              runs anywhere)
Each is evaluated over batches 1..--max-batch (or the given --batch) with the sweep kernel.
A batch meets the targets when it fits and TTFT <= X, TPOT <= Y, output tokens/s >= Z and,
with --rate R (requests/s) the serving simulation of R requests/s under continuous batching
decides instead, at a percentile of TTFT and TPOT (plan_rate.py; the static rows only say
whether the weights fit). The operating point is the feasible batch with the highest
throughput (lowest cost per token), or with --rate the simulated run at R (its goodput, the
requests/s meeting both SLOs, beside it).

Cost per million output tokens = devices x usd_per_hour / 3600 / tokens per s x 1e6, with
tokens/s the operating point's own (a device busy all the time), or R x N with --rate
(devices dedicated to that load, paid while idle). usd_per_hour: see simulator.explore.cost (hourly
price, else purchase over 3 years of 24/7 use). Options are ranked by cost, then tokens/J;
the Pareto front marks options no other beats on both cost and e2e latency ("latency") or
on both cost and tokens/J ("energy"). When nothing meets the targets, the closest misses
say which target each configuration misses and by how much.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulator.engine.batch import Layout
from simulator.errors import WorkloadError
from simulator.specs import registry
from simulator.specs.base import DeviceKind, Dtype
from simulator.explore.cost import usd_per_million
from simulator.explore.front import pareto_front
from simulator.explore.sweep import Skipped, configured, rows_of
from simulator.explore.grid import Group
from simulator.explore.writers import SCENARIO_COLUMNS
from simulator.explore.whatif import Factors

# name -> (weight format, activation dtype, dtype the device's peak table must list)
PRECISIONS = {"bf16": ("bf16", Dtype.bf16, None), "fp8": ("fp8", Dtype.fp8, Dtype.fp8),
              "int8": ("int8", Dtype.int8, Dtype.int8), "int4": ("int4-g128", Dtype.bf16, None)}
TP_DEGREES = (1, 2, 4, 8)
DEFAULT_KINDS: tuple[DeviceKind, ...] = ("gpu", "tpu", "asic")      # of specs.base.DEVICE_KINDS
MAX_BATCH = 65_536                  # every batch 1..max_batch of every configuration is evaluated
_COL = {name: i for i, name in enumerate(SCENARIO_COLUMNS)}


@dataclasses.dataclass(frozen=True)
class Targets:
    """Limits a configuration must meet; inf (or 0 for the throughput, None for the rate) is no limit."""

    ttft_max_s: float = math.inf
    tpot_max_s: float = math.inf
    throughput_min_tokens_per_s: float = 0.0
    rate_requests_per_s: float | None = None
    slo_percentile: int = 90            # with a rate: the TTFT and TPOT percentile the limits bound

    def __post_init__(self):
        for name in ("ttft_max_s", "tpot_max_s"):
            value = getattr(self, name)
            if not value > 0:                                    # NaN fails too
                raise WorkloadError(name, f"expected a time > 0, got {value}")
        t = self.throughput_min_tokens_per_s
        if not (math.isfinite(t) and t >= 0):
            raise WorkloadError("throughput_min_tokens_per_s", f"expected a finite number >= 0, got {t}")
        r = self.rate_requests_per_s
        if r is not None and not (math.isfinite(r) and r > 0):
            raise WorkloadError("rate_requests_per_s", f"expected a finite number > 0, got {r}")
        if self.slo_percentile not in (50, 90, 99):
            raise WorkloadError("slo_percentile", f"expected 50, 90 or 99, got {self.slo_percentile!r}")


@dataclasses.dataclass
class Option:
    """One configuration at its operating point."""

    hardware: str
    devices: int
    precision: str
    weight_dtype: str
    activation_dtype: str
    batch: int
    ttft_s: float
    tpot_s: float | None
    e2e_s: float
    output_tokens_per_s: float
    tokens_per_j: float | None
    usd_per_million_tokens: float | None
    rank_by_cost: int = 0
    rank_by_tokens_per_j: int = 0
    pareto: str = ""                    # "latency", "energy", "latency+energy" or ""
    goodput_requests_per_s: float | None = None     # with --rate: requests/s meeting both SLOs (plan_rate.py)


@dataclasses.dataclass
class Miss:
    hardware: str
    devices: int
    precision: str
    batch: int | None
    score: float                        # worst ratio of value to target (inf: never fits)
    reasons: list[str]


@dataclasses.dataclass
class PlanResult:
    model: str
    prompt: int
    output: int
    targets: Targets
    options: list[Option]
    misses: list[Miss]
    unpriced: list[str] = dataclasses.field(default_factory=list)   # left out of the default search: no price


def check_search(prompt: int, output: int, batch: int | None, max_batch: int, max_devices: int) -> None:
    """Raise WorkloadError naming the first argument out of range (the largest batch searched
    is checked as a Workload too: batch x (prompt + output) within int64)."""
    from simulator.specs.workload import workload

    for name, value, top in (("prompt", prompt, None), ("output", output, None), ("batch", batch, MAX_BATCH),
                             ("max_batch", max_batch, MAX_BATCH), ("max_devices", max_devices, None)):
        if value is None and name == "batch":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or (top and value > top):
            limit = f" up to {top:,}" if top else ""
            raise WorkloadError(name, f"expected a whole number from 1{limit}, got {value!r}")
    workload(batch=batch or max_batch, prompt=prompt, output=output)      # the workload's own bounds


def _accelerators() -> list:
    """Every GPU, TPU and ASIC spec in the registry."""
    specs = (registry.hardware(name) for name in registry.hardware_index())
    return [hw for hw in specs if hw.kind in DEFAULT_KINDS]


def default_hardware(assumed_prices: dict[str, float] | None = None) -> list[str]:
    """Every GPU, TPU and ASIC in the registry with a price: its spec's, or one in
    ``assumed_prices`` (device name -> USD/h; the key "*" prices every device)."""
    assumed = assumed_prices or {}
    return [hw.name for hw in _accelerators() if hw.price is not None or hw.name in assumed or "*" in assumed]


def unpriced_hardware(assumed_prices: dict[str, float] | None = None) -> list[str]:
    """The GPUs, TPUs and ASICs the default search leaves out for want of a price."""
    chosen = set(default_hardware(assumed_prices))
    return [hw.name for hw in _accelerators() if hw.name not in chosen]


def hourly_price(assumed_prices: dict[str, float] | None, name: str, spec_usd_per_hour: float) -> float:
    """USD/h of a device: an assumed price for it by name, else its spec's (NaN without one),
    else an assumed price for every device ("*")."""
    assumed = assumed_prices or {}
    if name in assumed:
        return assumed[name]
    if math.isnan(spec_usd_per_hour) and "*" in assumed:
        return assumed["*"]
    return spec_usd_per_hour


def precisions_for(hw) -> list[str]:
    peaks = hw.peak_flops()
    return [p for p, (_, _, needs) in PRECISIONS.items() if needs is None or needs in peaks]


def _configurations(model: str, hardware: list[str], stack: str, kv_dtype: Dtype, max_devices: int):
    """(precision, Group) of every configuration that can run."""
    for name in hardware:
        hw = registry.hardware(name)
        for precision in precisions_for(hw):
            weight, activation, _ = PRECISIONS[precision]
            for tp in (t for t in TP_DEGREES if t <= max_devices):
                group = Group(model, name, Factors(), stack, weight, activation, kv_dtype, Layout(tp=tp))
                if not isinstance(configured(group), Skipped):
                    yield precision, group


def _violations(values: np.ndarray, batches: np.ndarray, prompt: int, output: int, t: Targets) -> np.ndarray:
    """[targets, batches] ratio of each value to its target (> 1: missed)."""
    ttft, tpot, e2e, tps = (values[_COL[c]] for c in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s"))
    ratios = [ttft / t.ttft_max_s, np.nan_to_num(tpot / t.tpot_max_s, nan=0.0),
              t.throughput_min_tokens_per_s / tps]
    if t.rate_requests_per_s:
        with np.errstate(over="ignore"):          # a rate no batch serves: an infinite ratio, a miss
            ratios.append(t.rate_requests_per_s * (e2e / batches))
    return np.array(ratios)


_TARGET_TEXT = ("TTFT {value} > {limit}", "TPOT {value} > {limit}", "{value} tokens/s < {limit}",
                "serves {value} requests/s < {limit}")


def _reasons(values, k, batch, t: Targets, ratios) -> list[str]:
    from simulator.units import format_si

    shown = [(format_si(values[_COL["ttft_s"], k], "s"), format_si(t.ttft_max_s, "s")),
             (format_si(values[_COL["tpot_s"], k], "s"), format_si(t.tpot_max_s, "s")),
             (f"{values[_COL['output_tokens_per_s'], k]:,.0f}", f"{t.throughput_min_tokens_per_s:,.0f}"),
             (f"{batch / values[_COL['e2e_s'], k]:.3g}", f"{t.rate_requests_per_s or 0:.3g}")]
    return [f"{_TARGET_TEXT[i].format(value=v, limit=lim)} (x{ratios[i, k]:.3g})"
            for i, (v, lim) in enumerate(shown[:len(ratios)]) if ratios[i, k] > 1.0]


def _evaluate(precision: str, group: Group, batches: np.ndarray, prompt: int, output: int, t: Targets,
              observe=None, assumed_prices: dict[str, float] | None = None):
    """(Option or None, Miss or None) of one configuration; ``observe(values, label, meets)``
    sees every batch evaluated (values [SCENARIO_COLUMNS, batches]); an assumed price
    replaces the spec's (hourly_price)."""
    packed, constants = configured(group)
    hourly = hourly_price(assumed_prices, constants["hardware"], constants["usd_per_hour"])
    if hourly != constants["usd_per_hour"]:
        constants = {**constants, "usd_per_hour": hourly}
    if t.rate_requests_per_s and not observe:     # the serving simulation decides: batch 1 says fit and bounds
        batches = batches[:1]
    n = len(batches)
    values = rows_of(packed, constants, batches, np.full(n, prompt), np.full(n, output), parallel=False).values
    head = dict(hardware=constants["hardware"], devices=constants["devices"], precision=precision)
    fits = values[_COL["fits"]] > 0
    ratios = _violations(values, batches, prompt, output, t)
    worst = np.where(fits, ratios.max(axis=0), np.inf)
    if observe:
        observe(values, f"{head['hardware']} x{head['devices']} {precision}", worst <= 1.0)
    if not fits.any():
        total, capacity = values[_COL["memory_total_bytes"], 0], constants["memory_capacity_bytes"]
        return None, Miss(**head, batch=None, score=math.inf,
                          reasons=[f"does not fit: needs {total / 1e9:.1f} GB per device of {capacity / 1e9:.1f} GB"])
    if t.rate_requests_per_s:                   # the serving simulation decides (plan_rate.py)
        from simulator.explore.plan_rate import alone_misses, evaluate_rate
        alone = alone_misses(values[_COL["ttft_s"], 0], values[_COL["tpot_s"], 0], output, t)
        if alone:
            return None, Miss(**head, batch=1, score=max(r for r, _ in alone), reasons=[w for _, w in alone])
        return evaluate_rate(precision, group, prompt, output, t, constants["usd_per_hour"], t.slo_percentile)
    ok = np.flatnonzero(worst <= 1.0)
    if not len(ok):
        k = int(np.argmin(worst))
        return None, Miss(**head, batch=int(batches[k]), score=float(worst[k]),
                          reasons=_reasons(values, k, int(batches[k]), t, ratios))
    k = int(ok[0]) if t.rate_requests_per_s else int(ok[np.argmax(values[_COL["output_tokens_per_s"], ok])])
    col = lambda name: float(values[_COL[name], k])                                    # noqa: E731
    served = (t.rate_requests_per_s * output) if t.rate_requests_per_s else col("output_tokens_per_s")
    cost = usd_per_million(constants["usd_per_hour"], constants["devices"], served)
    option = Option(**head, weight_dtype=group.weight_dtype, activation_dtype=group.activation_dtype.value,
                    batch=int(batches[k]), ttft_s=col("ttft_s"), tpot_s=None if output == 1 else col("tpot_s"),
                    e2e_s=col("e2e_s"), output_tokens_per_s=col("output_tokens_per_s"),
                    tokens_per_j=None if math.isnan(col("tokens_per_j")) else col("tokens_per_j"),
                    usd_per_million_tokens=None if math.isnan(cost) else cost)
    return option, None


def _mark(options: list[Option]) -> None:
    """Ranks and Pareto flags, in place; options sorted by cost, then tokens/J."""
    big = math.inf
    options.sort(key=lambda o: (o.usd_per_million_tokens if o.usd_per_million_tokens is not None else big,
                                -(o.tokens_per_j or 0.0)))
    for rank, o in enumerate(options, 1):
        o.rank_by_cost = rank
    for rank, o in enumerate(sorted(options, key=lambda o: -(o.tokens_per_j or 0.0)), 1):
        o.rank_by_tokens_per_j = rank
    priced = [o for o in options if o.usd_per_million_tokens is not None]
    cost = np.array([o.usd_per_million_tokens for o in priced])
    gains = {"latency": np.array([-o.e2e_s for o in priced]),                 # lower cost, higher gain
             "energy": np.array([o.tokens_per_j or 0.0 for o in priced])}
    for name, gain in gains.items():
        for k in pareto_front(cost, gain):
            o = priced[k]
            o.pareto = f"{o.pareto}+{name}" if o.pareto else name


def plan(model: str, prompt: int, output: int, targets: Targets = Targets(), hardware: list[str] | None = None,
         batch: int | None = None, stack: str = "pytorch-ref", kv_dtype: Dtype = Dtype.bf16,
         max_batch: int = 1024, max_devices: int = 8, observe=None,
         assumed_prices: dict[str, float] | None = None) -> PlanResult:
    """Configurations meeting ``targets``, ranked by cost (see the module docstring).
    ``observe(values, label, meets)`` sees each configuration's batches (_evaluate);
    ``assumed_prices`` (device name, or "*" for every device without one -> USD/h) price
    devices the search would otherwise skip, or replace a spec's price."""
    check_search(prompt, output, batch, max_batch, max_devices)
    model_name = registry.model(model)[0]
    unpriced = [] if hardware else unpriced_hardware(assumed_prices)
    hardware = hardware or default_hardware(assumed_prices)
    batches = np.array([batch] if batch else range(1, max_batch + 1), dtype=np.int64)
    options, misses = [], []
    for precision, group in _configurations(model, hardware, stack, kv_dtype, max_devices):
        option, miss = _evaluate(precision, group, batches, prompt, output, targets, observe, assumed_prices)
        (options if option else misses).append(option or miss)
    _mark(options)
    misses.sort(key=lambda m: m.score)
    return PlanResult(model_name, prompt, output, targets, options, misses, unpriced)


def targets_text(r: PlanResult) -> str:
    from simulator.units import format_si

    t = r.targets
    parts = [f"TTFT <= {format_si(t.ttft_max_s, 's')}" if math.isfinite(t.ttft_max_s) else "",
             f"TPOT <= {format_si(t.tpot_max_s, 's')}" if math.isfinite(t.tpot_max_s) else "",
             f">= {t.throughput_min_tokens_per_s:,.0f} output tokens/s" if t.throughput_min_tokens_per_s else "",
             f"{t.rate_requests_per_s:g} requests/s" if t.rate_requests_per_s else ""]
    return ", ".join(p for p in parts if p) or "none"


def unpriced_text(r: PlanResult) -> str:
    """The line naming the devices skipped for want of a price ("" when none were)."""
    if not r.unpriced:
        return ""
    return (f"\nskipped {len(r.unpriced)} device(s) without a price: {', '.join(r.unpriced)} "
            f"(--assume-price NAME=2.5/h prices one; --assume-price 2.5/h prices every one)")


def plan_table(r: PlanResult, top: int = 20) -> str:
    """The options (cheapest first) or, when none meets the targets, the closest misses."""
    from simulator.report.table import number, quantity, render

    head = (f"{r.model}: prompt {r.prompt}, output {r.output}; targets: {targets_text(r)}") + unpriced_text(r)
    if not r.options:
        rows = [[m.hardware, str(m.devices), m.precision, "-" if m.batch is None else str(m.batch), "; ".join(m.reasons)]
                for m in r.misses[:top]]
        return "\n".join([head, "", "No configuration meets the targets. Closest misses:", "",
                          render(["hardware", "devices", "precision", "batch", "misses"], rows, align_right={1, 3})])

    rate = r.targets.rate_requests_per_s
    rows = [[str(o.rank_by_cost), o.hardware, str(o.devices), o.precision, str(o.batch), quantity(o.ttft_s, "s"),
             quantity(o.tpot_s, "s"), number(o.output_tokens_per_s, ",.0f"), number(o.tokens_per_j, ".3g"),
             number(o.usd_per_million_tokens, ",.3g"), str(o.rank_by_tokens_per_j), o.pareto]
            + ([number(o.goodput_requests_per_s, ".3g")] if rate else []) for o in r.options[:top]]
    more = f"\n({len(r.options) - top} more; --format json lists all)" if len(r.options) > top else ""
    p = f" p{r.targets.slo_percentile}" if rate else ""
    table = render(["rank", "hardware", "devices", "precision", "mean batch" if rate else "batch", "TTFT" + p,
                    "TPOT" + p, "tokens/s", "tokens/J", "$/M tokens", "rank tok/J", "pareto"]
                   + (["goodput req/s"] if rate else []), rows, align_right={0, 2, 4, 5, 6, 7, 8, 9, 10, 12})
    return "\n".join([head, "", table + more, "",
                      "$/M tokens: devices x hourly price (or purchase / 26,280 h) per million output tokens; "
                      "pareto: not beaten on both cost and e2e latency (latency) or cost and tokens/J (energy)"])
