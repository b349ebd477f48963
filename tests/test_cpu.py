"""The CPU class measured here: the host probe, per-dtype profiles, calibrating from CPU
microbenchmark files, and the CLI's --this-machine / --live paths (without measuring)."""
import importlib.util

import numpy as np
import pytest

from simulator.calibration import hostprobe
from simulator.calibration.profile import merge_dtype_fields
from simulator.cli.main import main
from simulator.errors import SimulatorError
from simulator.specs import registry
from simulator.specs.base import Dtype
from simulator.specs.stack import DeviceProfile

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_bf16 amx_int8 hypervisor

processor\t: 1
model name\t: ignored
"""


def _facts(**over):
    facts = dict(model_name="Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", machine="x86_64", logical_cpus=4,
                 usable_cpus=4, cpu_mhz=2000.0, flags=["amx_bf16", "amx_int8", "avx2", "avx512_bf16", "avx512f", "fma"],
                 caches=[dict(level=3, type="Unified", size_bytes=105 << 20, shared_by_cpus=4)],
                 memory_total_bytes=64 * 10**9, os="Linux")
    return {**facts, **over}


def test_cpuinfo_first_block_and_sizes():
    info = hostprobe._cpuinfo(CPUINFO)
    assert info["model name"].startswith("Intel(R) Xeon(R) Platinum 8480+")
    assert info["cpu MHz"] == "2000.000"
    assert hostprobe._size_bytes("48K") == 48 * 1024 and hostprobe._size_bytes("105M") == 105 << 20


def test_caches_read_from_sysfs(tmp_path):
    for i, (level, kind, size, shared) in enumerate([(1, "Data", "48K", "0"), (3, "Unified", "107520K", "0-3")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            (d / name).write_text(f"{value}\n")
    caches = hostprobe.caches(tmp_path)
    assert caches[1] == dict(level=3, type="Unified", size_bytes=107520 * 1024, shared_by_cpus=4)
    assert hostprobe.last_level_cache_bytes({"caches": caches}) == 107520 * 1024


def test_slug_names_the_machine():
    assert hostprobe.slug(_facts()) == "intel-xeon-platinum-8480-4c"
    assert hostprobe.slug(_facts(flags=["avx2", "hypervisor"], usable_cpus=2,
                                 model_name="Intel(R) Xeon(R) Processor")) == "intel-xeon-2c-vm"


def test_probed_spec_peaks_by_hand():
    """4 cores x 2.0 GHz: fp32 = 4 x 2e9 x 2 FMA units x 16 lanes x 2 = 512 GFLOP/s; AMX bf16
    = 4 x 2e9 x 1024 = 8.19 TFLOP/s; bandwidth is the triad's best."""
    triad = dict(best_bytes_per_s=21.5e9, median_bytes_per_s=21e9, spread=0.05, passes=7, array_bytes=420 << 20)
    spec = hostprobe.hardware_spec(_facts(), triad)
    hw = registry.validate(registry._HARDWARE, spec, "probed")
    peaks = hw.peak_flops()
    assert peaks[Dtype.fp32] == pytest.approx(512e9)
    assert peaks[Dtype.bf16] == pytest.approx(8.192e12)
    assert hw.main_memory.bandwidth_bytes_per_s == pytest.approx(21.5e9)
    assert hw.status == "measured" and spec["name"] == "intel-xeon-platinum-8480-4c"


def test_probe_without_a_clock_is_one_clear_error():
    with pytest.raises(SimulatorError, match="cpu MHz"):
        hostprobe.hardware_spec(_facts(cpu_mhz=None), {})


def test_dtype_override_replaces_fields_whole():
    p = DeviceProfile.model_validate({"gemm": {"peak_fraction": 0.5, "tile_m": 64}, "kernel_overhead": "5 us",
                                      "dtypes": {"fp32": {"gemm": {"peak_fraction": 0.3}}}})
    fp32 = p.for_dtype(Dtype.fp32)
    assert fp32.gemm.peak_fraction == 0.3 and fp32.gemm.tile_m == 1      # the whole field is replaced
    assert fp32.kernel_overhead_s == pytest.approx(5e-6)                  # others stay
    assert p.for_dtype(Dtype.bf16) is p


def test_misspelt_dtype_override_is_a_clear_error(tmp_path, capsys):
    stack = tmp_path / "s.yaml"
    stack.write_text("name: s\ndescription: d\ndevices:\n  h100-sxm: {dtypes: {fp32: {gemmm: 1}}}\n"
                     "provenance: {sources: [a], date: 2026-01-01}\n")
    assert main(["predict", "--stack", str(stack)]) == 2
    err = capsys.readouterr().err
    assert "devices.h100-sxm" in err and "dtypes.fp32.gemmm" in err and "Traceback" not in err


def test_engine_uses_the_compute_dtype_override():
    """A compute-bound prefill on a CPU whose fp32 override halves the GEMM peak fraction:
    the GEMM time doubles (hand: time = FLOPs / (peak x fraction))."""
    import simulator
    from simulator.specs.stack import StackSpec

    hw = "xeon-8480p"
    base = {"gemm": {"peak_fraction": 0.8}, "attention_compute_fraction": 0.5}
    stacks = [StackSpec.model_validate({"name": "t", "description": "t", "provenance": {"sources": ["t"], "date": "2026-01-01"},
                                        "devices": {hw: {**base, **({"dtypes": {"fp32": {"gemm": {"peak_fraction": f}}}} if f else {})}}})
              for f in (None, 0.4)]
    gemm_s = []
    for stack in stacks:
        p = simulator.predict(model="llama-3.2-1b", hardware=hw, stack=stack, batch=8, prompt=2048, output=2,
                              weight_dtype="fp32", activation_dtype="fp32", kv_dtype="fp32")
        gemm_s.append(sum(o.prefill_time_s for o in p.breakdown if o.kind == "matmul"))
    assert gemm_s[1] == pytest.approx(2 * gemm_s[0], rel=0.02)


def test_merge_keeps_dtype_fields_that_differ():
    bf16 = {"gemm": {"peak_fraction": 0.2}, "kernel_overhead": "4 us", "idle_power": "10 W", "fitted_from": "a"}
    fp32 = {"gemm": {"peak_fraction": 0.6}, "kernel_overhead": "4 us", "idle_power": "11 W", "fitted_from": "b"}
    merged = merge_dtype_fields({Dtype.fp32: fp32, Dtype.bf16: bf16})
    assert merged["gemm"] == {"peak_fraction": 0.2}
    assert merged["dtypes"] == {"fp32": {"gemm": {"peak_fraction": 0.6}}}   # same overhead, power not per dtype
    assert merged["fitted_from"] == "b; a"
    DeviceProfile.model_validate(merged)


def test_calibrate_needs_a_device_or_this_machine(capsys):
    assert main(["calibrate"]) == 2
    assert "--this-machine" in capsys.readouterr().err


def test_this_machine_rejects_a_bad_name(capsys):
    assert main(["calibrate", "--this-machine", "--name", "My CPU/1"]) == 2
    assert "--name" in capsys.readouterr().err


def test_live_without_torch_says_what_is_missing(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(["validate", "--live"]) == 2
    assert "needs torch" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (the measure extra) is not installed")
def test_cpu_harness_measures_a_tiny_model():
    """The harness's CPU e2e path on a tiny config: every point has a positive median within
    its min and max, and the dtype it ran in."""
    from simulator.calibration.thismachine import harness_cpu

    cpu = harness_cpu()
    cfg = cpu.config_from_dict("tiny", dict(model_type="llama", hidden_size=64, intermediate_size=128,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                            vocab_size=256))
    points, skipped = cpu.measure_model(cfg, "fp32", dict(prefill=[(1, 8)], decode=[(2, 16)]), lambda m: None, 1e10,
                                        reps_decode=3)
    assert not skipped and [p["phase"] for p in points] == ["prefill", "decode"]
    for p in points:
        assert 0 < p["latency_min_s"] <= p["latency_median_s"] <= p["latency_max_s"] and p["dtype"] == "fp32"
    assert np.isfinite([p["latency_median_s"] for p in points]).all()


def test_this_machine_without_torch_writes_only_the_spec(tmp_path, monkeypatch, capsys):
    """No torch: the probed spec is written (and loads from the registry), no stack entry,
    and the output says why. The probe itself is replaced by a canned one (no measuring)."""
    from simulator.calibration import thismachine

    triad = dict(best_bytes_per_s=20e9, median_bytes_per_s=19e9, spread=0.05, passes=7, array_bytes=420 << 20)
    spec = hostprobe.hardware_spec(_facts(), triad, "probe-test-4c")
    (tmp_path / "hardware_specs" / "cpu").mkdir(parents=True)
    (tmp_path / "model_specs").mkdir()
    monkeypatch.setattr(registry, "data_root", lambda: tmp_path)
    monkeypatch.setattr(thismachine, "probe", lambda name=None, log=None: thismachine.Probe(_facts(), spec, 1e10))

    def no_torch():
        raise SimulatorError("measuring the reference stack needs torch")
    monkeypatch.setattr(thismachine, "harness_cpu", no_torch)
    assert main(["calibrate", "--this-machine"]) == 0          # the registry's caches follow the files
    out = capsys.readouterr().out
    assert "no pytorch-ref entry written (measuring the reference stack needs torch)" in out
    written = tmp_path / "hardware_specs" / "cpu" / "probe-test-4c.yaml"
    assert registry.hardware("probe-test-4c").status == "measured" and written.read_text().startswith("# ")


def test_live_report_errors_and_medians(monkeypatch):
    """validate --live's report from canned measurements (no measuring): each point's signed
    error per column and the median |error| per phase, by hand."""
    from simulator.calibration import live
    from simulator.accuracy.measured import Point

    points = [Point("cpu", "smollm-135m", phase, 1, 64, "latency", measured, "live", "fp32")
              for phase, measured in (("prefill", 0.100), ("prefill", 0.200), ("decode", 0.050))]
    predicted = {"fresh profile": np.array([0.110, 0.150, 0.050]), "cpu (pytorch-ref)": np.array([0.1, 0.2, 0.06])}
    monkeypatch.setattr(live, "run_live", lambda stack, hardware, log=None: (points, predicted))
    text, data = live.live_report("pytorch-ref", "cpu")
    assert "+10%" in text and "-25%" in text and "+20%" in text
    assert "fresh profile: prefill median |error| 17.5% (n=2)" in text          # median of 10% and 25%
    assert "cpu (pytorch-ref): decode median |error| 20.0% (n=1)" in text
    assert data["points"][1]["fresh profile"] == pytest.approx(0.150)
