"""The devices users bring (issue 18): the new parts validate with dense peaks, every GPU has
its SM/CU count, every price has a source with a date, and the share of priced GPU/TPU/ASIC
specs."""
import re

import pytest

from simulator.specs import registry
from simulator.specs.base import Dtype

NEW = ["mi355x", "gb200", "b300", "gb300", "h20", "h800-sxm", "rtx-pro-6000", "tpu-v7", "trainium2", "trainium3"]
ACCELERATORS = ("gpu", "tpu", "asic")


def _specs(*kinds):
    return [registry.hardware(n) for n in sorted(registry.hardware_index()) if registry.hardware(n).kind in kinds]


@pytest.mark.parametrize("name", NEW)
def test_new_devices_validate_with_provenance(name):
    hw = registry.hardware(name)
    assert hw.provenance.sources and re.match(r"20\d\d-\d\d", hw.provenance.date)
    assert "dense" in (hw.provenance.notes + " ".join(hw.provenance.sources)).lower()
    assert hw.peak and hw.memory and hw.interconnect


def test_dense_peaks_keep_the_tensor_ratios():
    """Dense tensor peaks double from 16 to 8 bits on these parts (a sparse figure mixed in would break it)."""
    for name in ["mi355x", "gb200", "b300", "gb300", "h20", "h800-sxm", "rtx-pro-6000", "tpu-v7"]:
        peak = registry.hardware(name).peak_flops()
        assert peak[Dtype.fp8] == pytest.approx(2 * peak[Dtype.bf16], rel=0.01), name


def test_rack_scale_parts_share_one_nvlink_domain():
    for name in ("gb200", "gb300"):
        link = registry.hardware(name).interconnect[0]
        assert link.max_devices == 72 and link.bandwidth_per_direction_bytes_per_s == pytest.approx(900e9)
    assert registry.hardware("h800-sxm").interconnect[0].bandwidth_per_direction_bytes_per_s == pytest.approx(200e9)


def test_mi355x_peak_follows_its_compute_units():
    """256 CUs x 2.4 GHz x 8,192 dense FP8 FLOPs per CU per clock (CDNA 4)."""
    hw = registry.hardware("mi355x")
    assert hw.compute_units == 256
    assert hw.peak_flops()[Dtype.fp8] == pytest.approx(256 * 2.4e9 * 8192, rel=1e-3)


def test_every_gpu_has_its_sm_or_cu_count():
    for hw in _specs("gpu"):
        assert hw.compute_units, hw.name


def test_every_price_names_its_source_and_date():
    for hw in _specs(*ACCELERATORS, "cpu", "fpga", "pim"):
        if hw.price is not None:
            assert hw.price.hourly_usd_per_h or hw.price.purchase_usd, hw.name
            assert re.search(r"20\d\d", hw.price.source), (hw.name, hw.price.source)


def test_priced_share_of_accelerators():
    """34 of the 41 GPU/TPU/ASIC specs carry a price; the rest have no public list or on-demand
    price (README, Hardware)."""
    specs = _specs(*ACCELERATORS)
    priced = [hw for hw in specs if hw.price is not None]
    assert len(priced) / len(specs) >= 0.8
