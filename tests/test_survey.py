"""`llmsim compare --plot`: the survey's picture (arXiv 2410.04466) is written; compare's
power column is the prediction's energy over its e2e time; the committed survey file reads
back with a source on every point; a bad --plot suffix is one error line and exit 2."""
import json

import pytest

import simulator
from simulator.accuracy import survey
from simulator.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"
DEVICES = "xeon-8480p,h100-sxm,u280,hbm-pim,apple-m2-ultra"
ARGS = ["--model", "llama-2-7b", "--batch", "8", "--prompt", "256", "--output", "32"]


def test_plot_file_is_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "survey.png"
    assert main(["compare", "--hardware", DEVICES, *ARGS, "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)
    text = capsys.readouterr().out
    assert "power (W)" in text and f"wrote {out}" in text


def test_power_is_energy_over_e2e(capsys):
    assert main(["compare", "--hardware", DEVICES, *ARGS, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    for row in rows:
        p = simulator.predict("llama-2-7b", row["hardware"], batch=8, prompt=256, output=32)
        if p.energy_j is None:
            assert row["power_w"] is None
        else:
            assert row["power_w"] == pytest.approx(p.energy_j / p.e2e_s, rel=1e-12)
    assert any(row["power_w"] for row in rows)


def test_survey_file_reads_and_every_point_has_a_source():
    s = survey.load()
    assert s.source.repository == "Kimho666/LLM_Hardware_Survey"
    assert len(s.source.commit) == 40 and s.source.file.endswith(".xlsx")
    assert {p.kind for p in s.points} >= {"cpu", "gpu", "fpga", "asic", "pim"}
    rows = [p.row for p in s.points]
    assert len(rows) == len(set(rows))                  # each point is one spreadsheet row
    assert all(p.device and p.tokens_per_s > 0 and p.power_w > 0 for p in s.points)


@pytest.mark.parametrize("name", ["out.pdf", "out", "out.png.txt"])
def test_bad_plot_suffix_exits_2(tmp_path, capsys, name):
    assert main(["compare", "--hardware", "h100-sxm", "--plot", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "--plot" in lines[0] and ".png or .svg" in lines[0]
    assert not (tmp_path / name).exists()
