"""plan and prices (issue 18): the devices the default search skips for want of a price are
named, --assume-price prices them (or replaces a spec's price), and its value is parsed with
its unit (USD/h, or a purchase amortised over 3 years)."""
import argparse

import pytest

from simulator.cli.main import main
from simulator.cli.plan import assumed_price
from simulator.explore.cost import AMORTISATION_HOURS
from simulator.explore.plan import PlanResult, Targets, default_hardware, plan, plan_table, unpriced_hardware
from simulator.specs import registry


def test_unpriced_accelerators_are_named_and_assumed_prices_bring_them_in():
    unpriced = unpriced_hardware()
    assert "mi355x" in unpriced and "h100-sxm" not in unpriced
    for name in unpriced:
        hw = registry.hardware(name)
        assert hw.price is None and hw.kind in ("gpu", "tpu", "asic")
    assert set(unpriced).isdisjoint(default_hardware())
    assert "mi355x" in default_hardware({"mi355x": 1.5}) and "mi355x" not in unpriced_hardware({"mi355x": 1.5})
    assert unpriced_hardware({"*": 1.0}) == []


def test_the_table_says_which_devices_it_skipped():
    result = PlanResult("m", 128, 16, Targets(), [], [], unpriced=["h20", "tpu-v7"])
    text = plan_table(result)
    assert "skipped 2 device(s) without a price: h20, tpu-v7" in text and "--assume-price" in text
    assert "skipped" not in plan_table(PlanResult("m", 128, 16, Targets(), [], []))


def test_an_assumed_price_costs_like_a_spec_price():
    """usd per million = devices x USD/h / 3600 / tokens/s x 1e6, at the assumed 1.5 USD/h."""
    r = plan("llama-3.2-1b", 256, 32, Targets(), hardware=["mi355x"], batch=8, assumed_prices={"mi355x": 1.5})
    assert r.unpriced == [] and r.options
    for o in r.options:
        assert o.usd_per_million_tokens == pytest.approx(o.devices * 1.5 / 3600 / o.output_tokens_per_s * 1e6)
    bare = plan("llama-3.2-1b", 256, 32, Targets(), hardware=["mi355x"], batch=8)
    assert all(o.usd_per_million_tokens is None for o in bare.options)


def test_a_price_for_every_device_leaves_spec_prices_alone_a_named_one_replaces_them():
    spec = plan("llama-3.2-1b", 256, 32, Targets(), hardware=["h100-sxm"], batch=8, max_devices=1)
    star = plan("llama-3.2-1b", 256, 32, Targets(), hardware=["h100-sxm"], batch=8, max_devices=1,
                assumed_prices={"*": 100.0})
    named = plan("llama-3.2-1b", 256, 32, Targets(), hardware=["h100-sxm"], batch=8, max_devices=1,
                 assumed_prices={"h100-sxm": 7.56})
    cost = {o.precision: o.usd_per_million_tokens for o in spec.options}
    assert {o.precision: o.usd_per_million_tokens for o in star.options} == cost
    for o in named.options:           # 7.56 USD/h is twice the spec's 3.78
        assert o.usd_per_million_tokens == pytest.approx(2 * cost[o.precision])


@pytest.mark.parametrize("text,expected", [("h20=1.8/h", ("h20", 1.8)), ("h20 = $2/h", ("h20", 2.0)),
                                           ("2.5/h", ("*", 2.5)), ("h20=26280", ("h20", 26280 / AMORTISATION_HOURS))])
def test_assumed_price_values(text, expected):
    name, value = assumed_price(text)
    assert name == expected[0] and value == pytest.approx(expected[1])


@pytest.mark.parametrize("text", ["h20=abc", "h20=-1/h", "h20=0", "h20=nan/h", "h20=inf"])
def test_bad_assumed_prices_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        assumed_price(text)


def test_cli_assume_price_for_an_unknown_device_is_one_line(capsys):
    assert main(["plan", "--model", "llama-3.2-1b", "--prompt", "64", "--output", "8", "--hardware", "h20",
                 "--assume-price", "h2=1.5/h"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown hardware 'h2'" in err and "h20" in err
