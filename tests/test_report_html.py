"""The HTML report: every number it shows is the API's (predict, compare, roofline data,
the validation summary), the file is self-contained, and `llmsim report` refuses bad
input in one line before writing anything."""
import json
import re

import pytest

pytest.importorskip("plotly", reason="the report extra (plotly) is not installed")

import simulator
from simulator.accuracy.measured import errors, load_points, summarise
from simulator.api import roofline_data
from simulator.cli.main import main
from simulator.report.html import figures, page, plotlyjs, view
from simulator.report.html.data import report_data
from simulator.report.plots.breakdown import phase_shares
from simulator.report.jsontext import json_text
from simulator.report.table import quantity
from simulator.specs.workload import workload

DEVICES = ["h100-sxm", "mi300x", "tpu-v5e"]


@pytest.fixture(scope="module")
def data():
    return report_data("llama-3.1-8b", DEVICES, "pytorch-ref", workload(batch=8, prompt=1024, output=128))


@pytest.fixture(scope="module")
def built(data):
    return view.build(data)


def _figure(built, key):
    return next(f["figure"] for f in built["figures"] if f["id"] == key)


def _exit_code(argv):
    """main's exit status, argparse's refusals (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _compare_rows(capsys, *argv):
    assert main(["compare", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["rows"]


def test_each_device_is_predict_or_the_fewest_devices_compare_shows(data, capsys):
    rows = _compare_rows(capsys, "--model", "llama-3.1-8b", "--hardware", ",".join(DEVICES))
    shown = [r for r in rows if r["fits"]]           # tpu-v5e does not fit alone: compare's second row
    assert [v.label for v in data.devices] == [r["label"].strip() for r in shown]
    for v, row in zip(data.devices, shown):
        p = simulator.predict(model="llama-3.1-8b", hardware=row["hardware"], tp=row["tp"], pp=row["pp"])
        assert v.prediction.model_dump() == p.model_dump()
        for key in ("ttft_s", "tpot_s", "output_tokens_per_s", "tokens_per_j", "usd_per_million_output_tokens"):
            value = getattr(p, key, None) if key != "usd_per_million_output_tokens" else v.usd_per_million_output_tokens
            assert value == row[key]
    assert not data.devices[2].fits_as_asked and data.devices[2].prediction.devices == 2
    assert any("tpu-v5e" in n and "fewest devices" in n for n in data.notes)


def test_comparison_figures_plot_the_predictions(data, built):
    for key, figure_id in zip((c[0] for c in figures.COMPARISONS), ("ttft", "tpot", "tokens-per-s", "tokens-per-j",
                                                                     "usd")):
        bars = {t["meta"]: t["y"][0] for t in _figure(built, figure_id)["data"] if t["type"] == "bar"}
        for v in data.devices:
            expected = v.usd_per_million_output_tokens if key.startswith("usd") else getattr(v.prediction, key)
            assert bars[v.label] == expected
    per_j = _figure(built, "tokens-per-j")["data"]                   # tpu-v5e's spec has no power figures
    assert [t["meta"] for t in per_j if t.get("mode") == "text" and t["text"] == ["n/a (no power)"]] == \
        ["tpu-v5e x2 (tp 2, pp 1)"]


def test_confidence_band_is_the_predictions(data, built):
    for v in data.devices:
        for key, figure_id in (("ttft_s", "ttft"), ("tpot_s", "tpot")):
            value, b = getattr(v.prediction, key), getattr(v.prediction.confidence.error_band, key[:4])
            line = [t for t in _figure(built, figure_id)["data"] if t.get("mode") == "lines+markers"
                    and t["meta"] == v.label]
            assert line[0]["y"] == pytest.approx([value * b.low, value * b.high])
    rows = next(t for t in built["tables"] if t["id"] == "confidence")["rows"]
    assert [r[1] for r in rows] == [v.prediction.confidence.profile for v in data.devices]
    assert [r[2] for r in rows] == ["yes" if v.prediction.confidence.calibrated else "no" for v in data.devices]


def test_breakdown_memory_and_roofline_are_the_apis(data, built):
    bars = [t for t in _figure(built, "breakdown")["data"]]
    for v in data.devices:
        for phase, total, shares in phase_shares(v.prediction):
            row = f"{v.label} · {phase} ({quantity(total, 's')})"
            got = {t["name"]: t["x"][0] for t in bars if t["y"] == [row]}
            assert got == pytest.approx({k: 100 * f for k, f in shares.items()})
    memory = _figure(built, "memory")["data"]
    for v in data.devices:
        m = v.prediction.memory
        got = {t["name"]: t["y"][0] for t in memory if t["meta"] == v.label}
        assert got == {"weights": m.weights_bytes, "KV cache": m.kv_cache_bytes, "activations": m.activation_bytes,
                       "capacity": m.capacity_bytes}
    points = [t for t in _figure(built, "roofline")["data"] if t["mode"] == "markers"]
    h100 = roofline_data("llama-3.1-8b", "h100-sxm", "pytorch-ref", workload())
    drawn = [p for p in h100.points if p.flops > 0 and p.bytes > 0 and p.time_s > 0 and p.phase == "decode"]
    trace = next(t for t in points if t["name"] == "h100-sxm decode")
    assert trace["x"] == [p.intensity for p in drawn] and trace["y"] == [p.achieved_flops_per_s for p in drawn]


def test_roofs_are_the_datasheet_lines(data, built):
    lines = [t for t in _figure(built, "roofline")["data"] if t["mode"] == "lines" and t["meta"] == "h100-sxm"]
    roofs = data.devices[0].roofline.roofs
    top = max(r.value for r in roofs if r.kind == "compute")
    for r, line in zip(roofs, lines):
        expected = [r.value] * 2 if r.kind == "compute" else [min(r.value * x, top) for x in line["x"]]
        assert line["y"] == pytest.approx(expected)


def test_validation_evidence_is_the_validate_summary(data, built):
    points = [p for p in load_points() if p.hardware == "h100-sxm"]
    rows = summarise(points, errors(points, "pytorch-ref"))
    assert data.evidence.summary == rows
    table = next(t for t in built["tables"] if t["id"] == "evidence")
    assert [r[:4] for r in table["rows"]] == [[r["hardware"], r["phase"], r["metric"], str(r["n"])] for r in rows]
    assert data.evidence.missing == ["mi300x", "tpu-v5e"] and "mi300x: no measured" in table["caption"]
    scatter = [t for t in _figure(built, "validation")["data"] if t["meta"] == "h100-sxm"]
    assert sum(len(t["x"]) for t in scatter) == len(points) + len(data.evidence.published)


def test_another_stack_claims_no_measured_evidence():
    d = report_data("llama-3.1-8b", ["h100-sxm"], "ideal", workload(batch=1, prompt=128, output=8))
    assert d.evidence.points == [] and d.evidence.summary == []
    assert "say nothing of ideal" in next(t for t in view.build(d)["tables"] if t["id"] == "evidence")["caption"]


def test_prediction_table_writes_numbers_as_the_cli_does(data, built):
    rows = next(t for t in built["tables"] if t["id"] == "predictions")["rows"]
    for v, row in zip(data.devices, rows):
        assert row[:3] == [v.label, quantity(v.prediction.ttft_s, "s"), quantity(v.prediction.tpot_s, "s")]


def test_page_is_self_contained_and_inlines_the_view(built):
    text = page.report_html(built)
    assert plotlyjs.source() in text
    ours = text.replace(plotlyjs.source(), "")           # the browser test checks plotly.js asks for nothing
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", ours), "an external resource"
    assert "<script src" not in ours
    assert "fetch(" not in page.static_text("views.js")
    inline = re.search(r'<script id="llmsim-view" type="application/json">(.*?)</script>', text, re.S).group(1)
    assert json.loads(inline) == json.loads(json.dumps(built))
    assert "<" not in inline


def test_script_json_cannot_close_its_element():
    assert page.script_json({"a": "</script><script>alert(1)</script>"}) == \
        '{"a":"\\u003c/script>\\u003cscript>alert(1)\\u003c/script>"}'


def test_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--model", "llama-3.1-8b", "--hardware", "h100-sxm,tpu-v5e", "--batch", "4",
                 "--html", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "tpu-v5e x2 (tp 2, pp 1)" in text
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Plotly" in html and "batch 4, prompt 1024" in html


@pytest.mark.parametrize("argv, message", [
    (["--hardware", "h100-sxm", "--html", "r.pdf"], "--html: expected a file ending .html or .htm"),
    (["--hardware", "h100-sxm,nope"], "unknown hardware 'nope'"),
    (["--hardware", "h100-sxm", "--batch", "0"], "argument --batch: expected a whole number > 0"),
    (["--hardware", "h100-sxm", "--tp", "3"], "tp: 3 does not divide"),
])
def test_cli_bad_input_is_one_line_and_no_file(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = argv if "--html" in argv else [*argv, "--html", "r.html"]
    assert _exit_code(["report", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_without_plotly_the_report_says_so(tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    assert main(["report", "--hardware", "h100-sxm", "--html", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err == "llmsim: error: the HTML report and the web app need plotly: " \
                                      "pip install 'llmsim[report]'\n"


def test_serving_curves_are_llmsim_servings(capsys):
    d = report_data("llama-3.1-8b", ["h100-sxm", "tpu-v5e"], "pytorch-ref", workload(prompt=512, output=64),
                    rates=[2.0, 32.0])
    for v, argv in zip(d.devices, (["--hardware", "h100-sxm"], ["--hardware", "tpu-v5e", "--tp", "2"])):
        assert main(["serving", *argv, "--rate", "2,32", "--prompt", "512", "--output", "64", "--format", "json"]) == 0
        assert json.loads(json_text(v.serving)) == json.loads(capsys.readouterr().out)["rates"]
    built = view.build(d)
    ttft = next(f["figure"] for f in built["figures"] if f["id"] == "serving-ttft")
    assert [t["y"] for t in ttft["data"]] == [[m["ttft_s"]["p90"] for m in v.serving] for v in d.devices]


def test_a_pipeline_is_not_served_and_says_why():
    d = report_data("llama-3.1-8b", ["h100-sxm"], "pytorch-ref", workload(pp=2), rates=[1.0])
    assert d.devices[0].serving == [] and any("not served" in n and "pp" in n for n in d.notes)
