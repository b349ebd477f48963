"""llmsim plan: configurations meeting targets, ranked by cost, the Pareto front, the
closest misses, and the CLI."""
import json
import math

import pytest

import simulator
from simulator.cli.main import main
from simulator.explore.plan import PRECISIONS, Targets, default_hardware, plan, plan_table, precisions_for
from simulator.specs import registry

TARGETS = Targets(ttft_max_s=0.5, tpot_max_s=0.05, throughput_min_tokens_per_s=500)


@pytest.fixture(scope="module")
def result():
    return plan("llama-3.1-8b", 1024, 256, TARGETS, hardware=["rtx-4090", "rtx-5090", "tpu-v5e", "h100-sxm"],
                max_batch=256)


def test_default_hardware_is_priced_accelerators():
    names = default_hardware()
    assert {"rtx-4090", "tpu-v5e"} <= set(names)
    for name in names:
        hw = registry.hardware(name)
        assert hw.price is not None and hw.kind in ("gpu", "tpu", "asic")


def test_precisions_follow_the_datasheet_peaks():
    assert precisions_for(registry.hardware("h100-sxm")) == ["bf16", "fp8", "int8", "int4"]
    assert precisions_for(registry.hardware("tpu-v4")) == ["bf16", "int8", "int4"]
    assert set(PRECISIONS) == {"bf16", "fp8", "int8", "int4"}


def test_every_option_meets_the_targets_and_matches_predict(result):
    assert result.options
    for o in result.options:
        assert o.ttft_s <= 0.5 and o.tpot_s <= 0.05 and o.output_tokens_per_s >= 500
    o = result.options[0]
    weight, activation, _ = PRECISIONS[o.precision]
    p = simulator.predict(model="llama-3.1-8b", hardware=o.hardware, batch=o.batch, prompt=1024, output=256,
                          weight_dtype=weight, activation_dtype=activation.value, tp=o.devices)
    assert p.ttft_s == pytest.approx(o.ttft_s, rel=1e-9) and p.e2e_s == pytest.approx(o.e2e_s, rel=1e-9)


def test_operating_point_is_the_largest_feasible_throughput(result):
    o = next(o for o in result.options if o.hardware == "h100-sxm" and o.devices == 1)
    weight, activation, _ = PRECISIONS[o.precision]
    bigger = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=o.batch + 1, prompt=1024, output=256,
                               weight_dtype=weight, activation_dtype=activation.value)
    assert not bigger.memory.fits or bigger.ttft_s > 0.5 or bigger.tpot_s > 0.05 or \
        bigger.output_tokens_per_s <= o.output_tokens_per_s


def test_ranked_by_cost_unpriced_last_and_pareto_front(result):
    costs = [o.usd_per_million_tokens for o in result.options]
    priced = [c for c in costs if c is not None]
    assert priced == sorted(priced) and costs[:len(priced)] == priced
    assert [o.rank_by_cost for o in result.options] == list(range(1, len(costs) + 1))
    assert sorted(o.rank_by_tokens_per_j for o in result.options) == list(range(1, len(costs) + 1))
    front = [o for o in result.options if "latency" in o.pareto]
    assert result.options[0] in front and all(o.usd_per_million_tokens is not None for o in front)
    for o in front:      # nothing cheaper is also faster
        assert not any(p.usd_per_million_tokens < o.usd_per_million_tokens and p.e2e_s < o.e2e_s
                       for p in result.options if p.usd_per_million_tokens is not None)


def test_cost_formula(result):
    o = next(o for o in result.options if o.hardware == "rtx-5090")
    hourly = 1999 / (3 * 365 * 24)
    assert o.usd_per_million_tokens == pytest.approx(o.devices * hourly / 3600 / o.output_tokens_per_s * 1e6)


def test_rate_is_checked_by_the_serving_simulation_and_prices_the_load():
    """--rate: each configuration's SLOs at the chosen percentile come from the serving
    simulation of 500 requests at that rate (explore/plan_rate.py), the cost from the
    devices dedicated to R x output tokens/s; a rate past the device's capacity is a miss."""
    from simulator.explore.plan_rate import requests_for
    from simulator.serving.policy import Policy
    from simulator.serving.simulate import engine, serve

    t = Targets(ttft_max_s=0.5, tpot_max_s=0.05, rate_requests_per_s=4, slo_percentile=90)
    r = plan("llama-3.1-8b", 512, 128, t, hardware=["rtx-4090"], max_devices=1)
    o = next(o for o in r.options if o.precision == "bf16")
    run = serve(engine("llama-3.1-8b", "rtx-4090", "pytorch-ref", Policy()), requests_for(4, 512, 128), 4,
                ttft_slo_s=0.5, tpot_slo_s=0.05).metrics
    assert (o.ttft_s, o.tpot_s, o.e2e_s) == (run["ttft_s"]["p90"], run["tpot_s"]["p90"], run["e2e_s"]["p90"])
    assert o.goodput_requests_per_s == run["goodput_requests_per_s"] and not run["saturated"]
    assert o.usd_per_million_tokens == pytest.approx(1599 / (3 * 365 * 24) / 3600 / (4 * 128) * 1e6)
    over = plan("llama-3.1-8b", 512, 128, Targets(rate_requests_per_s=400), hardware=["rtx-4090"], max_devices=1)
    assert not over.options and all("saturated" in m.reasons[0] for m in over.misses if m.batch is not None)


def test_nothing_meets_the_targets_lists_closest_misses():
    r = plan("llama-3.1-70b", 1024, 256, Targets(ttft_max_s=0.001, tpot_max_s=0.001), hardware=["rtx-4090", "l4"],
             max_batch=8, max_devices=2)
    assert not r.options and r.misses
    assert r.misses == sorted(r.misses, key=lambda m: m.score)
    assert any("does not fit" in m.reasons[0] for m in r.misses)
    fitting = [m for m in r.misses if math.isfinite(m.score)]
    assert fitting and "TPOT" in " ".join(fitting[0].reasons)
    text = plan_table(r)
    assert "No configuration meets the targets. Closest misses:" in text and "(x" in text


def test_cli_plan_table_and_json(capsys):
    argv = ["plan", "--model", "llama-3.2-1b", "--prompt", "256", "--output", "64", "--ttft-max", "100 ms",
            "--tpot-max", "0.02", "--hardware", "rtx-4090,l4", "--max-batch", "32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "$/M tokens" in out and "rtx-4090" in out
    assert main(argv + ["--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["targets"]["ttft_max_s"] == pytest.approx(0.1) and data["options"][0]["rank_by_cost"] == 1


@pytest.mark.parametrize("extra,fragment", [
    (["--ttft-max", "fast"], "ttft-max"),
    (["--rate", "-1"], "rate"),
    (["--batch", "2", "--rate", "1"], "not allowed"),
    (["--hardware", "h900"], "unknown hardware"),
    (["--max-batch", "0"], "max_batch"),
])
def test_cli_plan_errors_are_one_line_exit_2(capsys, extra, fragment):
    argv = ["plan", "--model", "llama-3.2-1b", "--prompt", "256", "--output", "64", *extra]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
