"""Error bands on serving predictions (accuracy/serving_bands.py, `llmsim serving`)."""
import json

import pytest

from simulator.accuracy import serving_bands as SB


def test_the_committed_serving_bands_are_current():
    """validation/measurements/bands-serving.json is what the committed runs give now
    (python -m tools.serving_bands)."""
    assert json.loads(SB.bands_path().read_text()) == json.loads(json.dumps(SB.derive()))


def test_each_band_holds_its_residuals():
    doc = SB.derive()
    groups = [b for st in doc["measured"].values() for hw in st.values() for b in hw.values()]
    groups += [b for st in doc["published"].values() for b in st.values()]
    assert groups and all(b["low"] <= b["high"] and b["n"] >= 1 for b in groups)


@pytest.mark.parametrize("stack, hardware, fitted, source", [
    ("pytorch-ref", "h200-sxm", True, "measured on h200-sxm"),
    ("pytorch-ref", "h200-sxm", False, "widest"),      # a spec under the name, not the device fitted
    ("vllm", "h100-sxm", True, "published serving benchmarks of vllm"),
    ("pytorch-ref", "mi300x", False, "widest"),
])
def test_the_band_follows_what_was_validated(stack, hardware, fitted, source):
    conf = SB.confidence(stack, hardware, fitted)
    assert source in conf["source"] and set(conf["error_band"]) == set(SB.METRICS)
    assert bool(conf["reasons"]) == ("measured on" not in conf["source"])
    widest = SB.confidence("no-such-stack", "mi300x", False)["error_band"]
    for k, (lo, hi) in conf["error_band"].items():
        assert widest[k][0] <= lo <= hi <= widest[k][1]


def test_serving_prints_and_carries_the_band(cli):
    argv = ["serving", "--model", "llama-3.2-1b", "--hardware", "h200-sxm", "--rate", "2", "--requests", "20"]
    code, out, _ = cli(argv)
    assert code == 0 and "error band (pytorch-ref serving runs measured on h200-sxm" in out
    code, out, _ = cli([*argv, "--format", "json"])
    conf = json.loads(out)["confidence"]
    assert code == 0 and conf["error_band"]["ttft_p50_s"][0] < 0 and conf["reasons"] == []


def test_without_a_bands_file_serving_carries_no_band(monkeypatch, tmp_path):
    monkeypatch.setattr(SB, "bands_path", lambda: tmp_path / "none.json")
    assert SB.confidence("pytorch-ref", "h200-sxm", True) is None and SB.lines(None) == []
