"""calibrate --from-runs: the fit recovers known parameters through the predict path, its
cross-validation holds each fold out, the written stack reads back everywhere, and bad run
files are one line and exit 2."""
import json
import pathlib

import numpy as np
import pytest

import simulator
from simulator.calibration.from_runs import calibrate_from_runs, folds, summary
from simulator.calibration.importers import load_runs
from simulator.calibration.knobs import KNOBS, adjusted, knob
from simulator.cli.main import main
from simulator.errors import SpecError
from simulator.specs import registry

DATA = pathlib.Path(__file__).parent / "data" / "runs"
RUNS = DATA / "h100-truth-vllm.jsonl"          # predicted by the hand-written truth-vllm.yaml
TRUTH = {"gemm_compute_scale": 0.9, "memory_scale": 0.8, "decode_step_overhead_s": 200e-6}


@pytest.fixture(scope="module")
def calibration():
    runs = load_runs(RUNS)
    return calibrate_from_runs(runs, registry.stack("vllm"), [knob(k) for k in TRUTH], "model")


def test_fit_recovers_the_hand_written_stack(calibration):
    """Runs predicted by a stack written by hand (vllm with GEMMs at 0.9x, bandwidth at 0.8x,
    +200 us per decode step) give back those numbers from the vllm base."""
    fitted = dict(zip([s.knob.name for s in calibration.problem.slots], calibration.fit.x))
    assert fitted == pytest.approx(TRUTH, rel=1e-3)
    assert np.nanmax(np.abs(calibration.cv)) < 1e-3      # the truth is in the model: held-out runs too


def test_noisy_runs_give_uncertainties_that_cover_the_truth():
    """3% multiplicative noise: each parameter within 4 sigma of the truth (the Jacobian's linear
    estimate, 3 parameters), sigma > 0."""
    rng = np.random.default_rng(7)
    runs = [r.model_copy(update={m: v * float(np.exp(rng.normal(0, 0.03))) for m, v in r.measured().items()})
            for r in load_runs(RUNS)]
    cal = calibrate_from_runs(runs, registry.stack("vllm"), [knob(k) for k in TRUTH], "run")
    for slot, x, sigma in zip(cal.problem.slots, cal.fit.x, cal.fit.sigma):
        assert sigma > 0 and abs(x - TRUTH[slot.knob.name]) < 4 * sigma, slot.label
    cv = {r["metric"]: r["median_abs_error"] for r in summary(cal.problem, cal.cv)}
    ins = {r["metric"]: r["median_abs_error"] for r in summary(cal.problem, cal.in_sample)}
    assert all(0 < cv[m] < 0.1 for m in cv) and all(cv[m] >= 0.8 * ins[m] for m in cv)


def test_each_fold_is_fitted_without_its_runs(monkeypatch, calibration):
    """Cross-validation never lets a fold's own runs into its fit."""
    import simulator.calibration.from_runs as fr

    seen = []
    real = fr.fit

    def spy(problem, mask=None):
        seen.append(None if mask is None else set(problem.obs.run_of[mask]))
        return real(problem, mask)

    monkeypatch.setattr(fr, "fit", spy)
    runs = calibration.problem.obs.runs
    fr.cross_validated(calibration.problem, "model")
    held = folds(runs, "model")
    assert len(seen) == len(held) == 4
    for train, fold in zip(seen, held):
        assert train.isdisjoint(fold) and train | set(fold) == set(range(len(runs)))


def test_folds():
    runs = load_runs(RUNS)
    assert [len(f) for f in folds(runs, "model")] == [4, 4, 4, 4]
    assert len(folds(runs, "run")) == 16 and sorted(np.concatenate(folds(runs, "kfold:3"))) == list(range(16))
    for bad in ("hardware", "kfold:1", "kfold:x", "sideways"):
        with pytest.raises(SpecError, match="--cv"):
            folds(runs, bad)


def test_knobs_cap_fractions_and_floor_costs():
    """A scale never lifts a fraction past 1 (nor past a base already above 1); a shift never
    takes a cost below 0; dtype overrides are adjusted as well."""
    xeon = registry.stack("pytorch-ref").devices["intel-xeon-2c-vm"]
    out = adjusted(xeon, {KNOBS["memory_scale"]: 5.0, KNOBS["kernel_overhead_s"]: -1.0})
    assert out.gemm.memory_fraction == 1.0 and out.kernel_overhead_s == 0.0
    assert all(v == 0.0 for v in out.kernel_overhead_by_kind_s.values())
    from simulator.specs.base import Dtype
    fp32 = out.for_dtype(Dtype.fp32)
    assert fp32.gemm.memory_fraction == 1.0 and fp32.kernel_overhead_s == 0.0
    assert xeon.for_dtype(Dtype.fp32).gemm.peak_fraction == fp32.gemm.peak_fraction   # untouched knob


def _calibrate(tmp_path, *extra, runs=RUNS, capsys=None):
    out = tmp_path / "fitted.yaml"
    code = main(["calibrate", "--from-runs", str(runs), "--name", "fitted-vllm", "--base", "vllm", "--out", str(out),
                 "--params", ",".join(TRUTH), *extra])
    return code, out


def test_written_stack_works_everywhere(tmp_path, capsys):
    """The file reads back as a stack, reproduces the in-sample fit, and predict, compare,
    sweep and plan take it as --stack PATH."""
    code, out = _calibrate(tmp_path, "--format", "json")
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cross_validation"]["scheme"] == "model" and report["fitted_on"]["runs"] == 16
    stack = registry.stack(str(out))
    assert stack.name == "fitted-vllm" and stack.calibration["base"] == "vllm"
    run = load_runs(RUNS)[5]
    p = simulator.predict(model=run.model, hardware=run.hardware, stack=str(out), batch=run.batch,
                          prompt=run.prompt, output=run.output)
    assert p.tpot_s == pytest.approx(run.tpot_s, rel=1e-3) and p.ttft_s == pytest.approx(run.ttft_s, rel=1e-3)
    grid = tmp_path / "grid.yaml"
    grid.write_text("model: llama-3.1-8b\nhardware: h100-sxm\nbatch: [1, 8]\nprompt: 512\noutput: 64\n")
    for argv in (["predict", "--stack", str(out)], ["compare", "--hardware", "h100-sxm,h200-sxm", "--stack", str(out)],
                 ["plan", "--model", "llama-3.1-8b", "--prompt", "512", "--output", "64", "--tpot-max", "0.05",
                  "--hardware", "h100-sxm", "--stack", str(out)]):
        assert main(argv) == 0, argv
    capsys.readouterr()


def test_calibrate_table_says_cross_validated(tmp_path, capsys):
    code, out = _calibrate(tmp_path)
    text = capsys.readouterr().out
    assert code == 0 and "cross-validated error (leave one model out" in text and "in-sample" in text


@pytest.mark.parametrize("row, field, expected", [
    ({"hardware": "h100-sxm", "batch": 1, "prompt": 8, "output": 4, "tpot_s": 0.01}, "model", "required"),
    ({"model": "llama-3.1-8b", "hardware": "h100-sxm", "batch": 1, "prompt": 8, "output": 4, "tpot_s": -0.01},
     "tpot_s", "greater than 0"),
    ({"model": "llama-9b", "hardware": "h100-sxm", "batch": 1, "prompt": 8, "output": 4, "tpot_s": 0.01},
     "model", "unknown model"),
    ({"model": "llama-3.1-8b", "hardware": "h100-sxm", "batch": 1, "prompt": 8, "output": 4}, "", "at least one"),
])
def test_bad_run_rows_are_one_line_and_exit_2(tmp_path, capsys, row, field, expected):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"model": "llama-3.1-8b", "hardware": "h100-sxm", "batch": 2, "prompt": 8,
                               "output": 4, "tpot_s": 0.01}) + "\n" + json.dumps(row) + "\n")
    code, _ = _calibrate(tmp_path, runs=bad)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"bad.jsonl: line 2: {field}" in err and expected in err


def test_bad_csv_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,hardware,batch,prompt,output,ttft_s\nllama-3.1-8b,h100-sxm,two,8,4,0.1\n")
    code, _ = _calibrate(tmp_path, runs=bad)
    err = capsys.readouterr().err
    assert code == 2 and "bad.csv: line 2: batch" in err
    code, _ = _calibrate(tmp_path, runs=tmp_path / "none.jsonl")
    assert code == 2 and "no such run file" in capsys.readouterr().err


def test_committed_published_calibration_is_reproducible():
    """`calibrate --published` on the FlightLLM file gives the committed stack's parameters
    and cross-validated errors (the record `llmsim validate` reports)."""
    from simulator.accuracy.published import calibrate_file, published_root
    from simulator.calibration.stack_file import record

    cal, spec = calibrate_file(published_root() / "flightllm.yaml")
    committed = registry.stack(spec.calibration.stack).calibration
    fresh = record(cal, committed["runs_from"], spec.stack)
    assert [p["value"] for p in fresh["parameters"]] == pytest.approx([p["value"] for p in committed["parameters"]],
                                                                     rel=1e-3)
    for a, b in zip(fresh["cross_validation"]["held_out"], committed["cross_validation"]["held_out"]):
        assert (a["run"], a["metric"]) == (b["run"], b["metric"]) and a["error"] == pytest.approx(b["error"], abs=1e-3)


def test_validate_reports_each_published_point_held_out():
    """Every point of a file with a calibration block has a cross-validated error, and it is
    the committed record's held-out one (never the in-sample fit)."""
    from simulator.accuracy.published import cross_validated
    from simulator.cli.validate import published_report

    text, rows = published_report()
    assert "fitted, CV" in text and "each point predicted by a fit without it" in text
    fitted = cross_validated()
    for r in rows:
        if r["file"] in fitted:
            assert r["cv_error"] is not None
    held = registry.stack("fpga-overlay-fitted").calibration["cross_validation"]["held_out"]
    flight = [r["cv_error"] for r in rows if r["file"] == "flightllm"]
    assert flight == pytest.approx([1 / (1 + h["error"]) - 1 for h in held])   # on TPOT -> on tokens/s


def test_published_file_is_a_run_file():
    from simulator.accuracy.published import as_runs, load, published_root

    path = published_root() / "trtllm-0.6-static-batch.yaml"
    runs = load_runs(path)
    assert runs == as_runs(load(path), path)
    seventy = next(r for r in runs if r.model == "llama-2-70b" and r.output_tokens_per_s is not None)
    assert seventy.tp == 2 and seventy.output_tokens_per_s == pytest.approx(2 * 2657)   # per device x devices
    decode = load_runs(published_root() / "llama-cpp-llama2-7b-q4_0.yaml")[0]
    assert decode.tpot_s == pytest.approx(1 / 280.7) and decode.output == 129


def test_a_shift_starting_on_its_bound_still_moves():
    """A host cost the base has at 0 starts on its lower bound; the fit still finds it (the
    optimizer freezes a variable that starts exactly on a bound: the start is nudged inside)."""
    from simulator.calibration.from_runs import Problem, fit

    def step_s(extra_s):
        runs = [r.model_copy(update={"tpot_s": r.tpot_s + extra_s, "ttft_s": None}) for r in load_runs(RUNS)]
        p = Problem(runs, registry.stack("vllm"), [(knob("decode_step_overhead_s"), None)])
        assert p.lower[0] == 0.0 and p.start[0] > 0.0            # the default profile's step cost is 0
        return fit(p).x[0]

    assert step_s(3e-3) - step_s(0.0) == pytest.approx(3e-3, rel=0.15)   # log residuals: not exactly


def test_a_knob_on_named_devices_gives_them_entries_of_their_own():
    """gemm_compute_scale@devices.h100 on a stack with only a GPU class entry: the H100s get
    entries (copies of the class profile) that the knob reaches, other GPUs keep the class."""
    from simulator.calibration.from_runs import Problem, parse_use

    runs = load_runs(RUNS)
    p = Problem(runs, registry.stack("vllm"), [parse_use("gemm_compute_scale@devices.h100")])
    (slot,) = p.slots
    assert "devices.h100-sxm" in slot.group and all(a.startswith("devices.h100") for a in slot.group)
    stack = p.stack(np.array([0.5]))
    assert stack.devices["h100-sxm"].gemm.peak_fraction == pytest.approx(0.5 * stack.classes["gpu"].gemm.peak_fraction)


def test_a_stream_cap_bounds_the_gemv_fraction_per_compute_unit():
    """gemv_bytes_per_unit_s caps each device's GEMV fraction at x units / bandwidth, after
    memory_scale (in either order given), and leaves a device without compute units alone."""
    from simulator.calibration.knobs import device_factor, stream_factor

    cap, scale = KNOBS["gemv_bytes_per_unit_s"], KNOBS["memory_scale"]
    h100 = registry.hardware("h100-sxm")
    assert stream_factor(h100) == pytest.approx(132 / 3.35e12)
    base = registry.stack("llama.cpp").classes["gpu"]
    f = {"stream": stream_factor(h100)}
    for values in ({cap: 8e9, scale: 0.5}, {scale: 0.5, cap: 8e9}):
        out = adjusted(base, values, f)
        assert out.gemm.gemv_memory_fraction == pytest.approx(min(0.5 * 0.8, 8e9 * 132 / 3.35e12))
        assert out.gemm.memory_fraction == pytest.approx(0.4)          # prefill GEMMs: the scale only
    assert adjusted(base, {cap: 1e9, scale: 0.5}, {}).gemm.gemv_memory_fraction == pytest.approx(0.4)
    assert adjusted(base, {cap: 1e11}, f).gemm.gemv_memory_fraction == pytest.approx(0.8)   # not binding
    assert device_factor(cap, h100, None) == stream_factor(h100)
    assert device_factor(scale, h100, None) is None


def test_a_stream_cap_slows_batch_one_decode_only_where_it_binds():
    """The fit gives every CUDA device of the class its own entry; at a cap of 8 GB/s per SM
    the H100's batch-1 decode slows, the RTX 4090's (128 SMs for 1 TB/s) does not."""
    from simulator.accuracy.published import published_root
    from simulator.calibration.from_runs import Problem, parse_use

    runs = load_runs(published_root() / "llama-cpp-llama2-7b-q4_0.yaml")[:3]
    p = Problem(runs, registry.stack("llama.cpp"), [parse_use("gemv_bytes_per_unit_s@classes.gpu")])
    assert {"devices.h100-sxm", "devices.rtx-4090"} <= set(p.slots[0].group)
    free, capped = (p.obs.predicted(p.stack(np.array([x]))) for x in (1e12, 8e9))
    assert capped[0] > 1.2 * free[0] and capped[2] == pytest.approx(free[2])   # h100-sxm, rtx-4090


def test_a_fit_with_a_cap_also_starts_from_the_other_side_of_its_kinks():
    """A per-device knob makes the objective piecewise: the fit starts from the base and from
    caps at half with shifted costs at their floor, and keeps the lower cost."""
    from simulator.accuracy.published import published_root
    from simulator.calibration.from_runs import Problem, fit, parse_use

    runs = load_runs(published_root() / "llama-cpp-llama2-7b-q4_0.yaml")[:5]
    uses = [parse_use(u) for u in ("kernel_overhead_s@classes.gpu", "gemv_bytes_per_unit_s@classes.gpu")]
    p = Problem(runs, registry.stack("llama.cpp"), uses)
    base, other = p.starts
    assert other[1] == pytest.approx(0.5 * base[1]) and other[0] < base[0] and other[0] > p.lower[0]
    assert len(Problem(runs, registry.stack("llama.cpp"), uses[:1]).starts) == 1
    starts, alone = p.starts, []
    for x0 in starts:
        p.starts = [x0]
        alone.append(fit(p).rms_log)
    p.starts = starts
    assert fit(p).rms_log == pytest.approx(min(alone))
