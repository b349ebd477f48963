import pytest

from simulator.cli import main

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def test_validation_scatter(tmp_path, capsys):
    out = tmp_path / "v.png"
    assert main(["plot", "validation", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)


def test_breakdown_bars(tmp_path):
    out = tmp_path / "b.png"
    assert main(["plot", "breakdown", "--model", "llama-3.2-1b", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)


def test_breakdown_of_a_scenario_that_does_not_fit_says_so(tmp_path, capsys):
    out = tmp_path / "b.png"
    assert main(["plot", "breakdown", "--model", "llama-3.1-70b", "--out", str(out)]) == 0
    assert "does not fit" in capsys.readouterr().out and not out.exists()
