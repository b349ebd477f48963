"""What the fuzz test's long runs found, each kept as a reproducer: exit 0 with finite output
or exit 2 with one line, never a traceback or a warning."""
import re
import warnings

import pytest

from simulator.cli.main import main


def _run(argv, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_a_huge_batch_of_short_sequences_does_not_wrap_the_tile_count(capsys):
    """gemm_efficiency counted tiles in int64 under numba: 2^62 rows wrapped to 0 waves."""
    code, out, err = _run(["roofline", "--model", "smollm-135m", "--batch", "4611686018427387903", "--prompt", "1",
                           "--output", "1"], capsys)
    assert code == 0 and not err and "nan" not in out and "inf" not in out


def test_a_grid_name_too_long_for_the_file_system_is_an_unknown_name(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text(f"models: ['{'9' * 5000}']\nhardware: [h100-sxm]\n")
    code, _, err = _run(["sweep", str(tmp_path / "g.yaml")], capsys)
    assert code == 2 and len(err) == 1 and "models.0: unknown model" in err[0] and len(err[0]) < 300


def test_grid_tokens_in_flight_stay_within_int64(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text("models: [llama-3.1-8b]\nhardware: [h100-sxm]\nbatch: [9223372036854775807]\n"
                                     "prompt: [128]\noutput: [16]\n")
    code, _, err = _run(["sweep", str(tmp_path / "g.yaml")], capsys)
    assert code == 2 and len(err) == 1 and "batch: expected batch x (prompt + output) within int64" in err[0]


@pytest.mark.parametrize("factor", ["bandwidth", "capacity", "sram", "peak", "power"])
def test_whatif_factors_are_bounded(tmp_path, capsys, factor):
    (tmp_path / "g.yaml").write_text(f"models: [llama-3.1-8b]\nhardware: [h100-sxm]\nwhatif: {{{factor}: [1e308, 2]}}\n")
    code, _, err = _run(["sweep", str(tmp_path / "g.yaml")], capsys)
    assert code == 2 and len(err) == 1 and f"whatif.{factor}.0: input should be less than or equal to" in err[0]


def test_plan_rate_no_batch_serves_is_a_miss_without_overflow(capsys):
    code, out, err = _run(["plan", "--model", "qwen3-30b-a3b", "--prompt", "2", "--output", "8", "--hardware",
                           "epyc-9654,u280", "--rate", "1e308"], capsys)
    assert code == 0 and not err and "inf" not in out.lower()
    assert re.search(r"serves [0-9.]+ requests/s < 1e\+308 \(x[0-9.]+e\+30[0-9]\)", out)


def test_validate_names_a_device_without_measurements(capsys):
    """validate --hardware h100-sxm,nope dropped 'nope' silently."""
    code, _, err = _run(["validate", "--hardware", "h100-sxm,nope"], capsys)
    assert code == 2 and len(err) == 1 and "--hardware: no measured points for 'nope'" in err[0]


def test_calibrate_leaves_an_unchanged_entry_alone(tmp_path):
    """llmsim calibrate rewrote the tracked pytorch-ref.yaml (reordered) when nothing changed."""
    from simulator.cli.calibrate import write_device_profile
    from simulator.specs import registry

    source = registry.stack_index()["pytorch-ref"]
    copy = tmp_path / "pytorch-ref.yaml"
    copy.write_text(source.read_text())
    fields = dict(registry.read_yaml(copy)["devices"]["h100-sxm"])
    before = copy.stat().st_mtime_ns, copy.read_text()
    assert write_device_profile(copy, "h100-sxm", fields) is False
    assert (copy.stat().st_mtime_ns, copy.read_text()) == before
    fields["kernel_overhead"] = "2 us"
    assert write_device_profile(copy, "h100-sxm", fields) is True
    assert registry.read_yaml(copy)["devices"]["h100-sxm"]["kernel_overhead"] == "2 us"
