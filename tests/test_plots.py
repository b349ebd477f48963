"""Pictures: each command's --plot writes a valid PNG or SVG, and each drawing's Figure holds
the expected axes labels, series and point counts (no pixel comparisons); bad --plot
arguments fail in one line before any work, writing nothing."""
import builtins
import importlib.util
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import simulator
from simulator.cli.main import main
from simulator.errors import SimulatorError, SpecError
from simulator.report import plots
from simulator.accuracy.measured import Point

pytest.importorskip("matplotlib")
from simulator.report.plots import breakdown, front, roofline, validation  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
TINY_GRID = "models: [llama-3.2-1b]\nhardware: [l4, h100-sxm]\nbatch: [1, 4, 16]\nprompt: [128, 512]\noutput: [1, 32]\n"
PLAN = ["plan", "--model", "llama-3.2-1b", "--prompt", "512", "--output", "64", "--hardware", "l4,h100-sxm",
        "--max-batch", "32", "--tpot-max", "10 ms", "--throughput-min", "300"]


def is_png(path) -> bool:
    from matplotlib.image import imread

    return path.read_bytes().startswith(PNG) and imread(path).ndim == 3


def is_svg(path) -> bool:
    return ET.parse(path).getroot().tag.endswith("svg")


def series(ax) -> dict:
    """Legend label -> points drawn, of the axes' labelled scatter series and lines."""
    out = {c.get_label(): len(c.get_offsets()) for c in ax.collections if not c.get_label().startswith("_")}
    out.update({ln.get_label(): len(ln.get_xdata()) for ln in ax.lines if not ln.get_label().startswith("_")})
    return out


# --- the --plot argument --------------------------------------------------------------------

@pytest.mark.parametrize("text,fragment", [("x.pdf", "ending .png or .svg, got 'x.pdf'"), ("x", "ending .png"),
                                           ("no/such/dir/x.png", "no folder 'no/such/dir'")])
def test_plot_path_refuses_other_files(text, fragment):
    with pytest.raises(SpecError, match="--plot") as info:
        plots.plot_path(text)
    assert fragment in str(info.value)
    assert plots.plot_path(None) is None and plots.plot_path("A.SVG").name == "A.SVG"


@pytest.mark.parametrize("argv", [["predict"], ["roofline"], ["validate"], ["sweep", "GRID"], PLAN])
def test_bad_plot_file_is_one_line_exit_2_before_any_work(tmp_path, capsys, monkeypatch, argv):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the --plot file was checked")

    for module, name in (("simulator", "predict"), ("simulator.api", "roofline_data"),
                         ("simulator.accuracy.measured", "load_points"), ("simulator.explore.sweep", "sweep"),
                         ("simulator.explore.plan", "plan")):
        monkeypatch.setattr(importlib.import_module(module), name, no_work)
    bad = tmp_path / "picture.jpg"
    assert main([a.replace("GRID", str(tmp_path / "g.yaml")) for a in argv] + ["--plot", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plot: expected a picture file ending .png or .svg" in err[0]
    assert not bad.exists() and not list(tmp_path.iterdir())


def test_missing_matplotlib_is_one_clear_line(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert main(["predict", "--plot", str(tmp_path / "p.png")]) == 2
    assert capsys.readouterr().err.strip() == "llmsim: error: plots need matplotlib: pip install 'llmsim[plot]'"
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(SimulatorError, match="plots need matplotlib"):
        plots.pyplot()


# --- llmsim roofline --plot ------------------------------------------------------------------

def test_roofline_picture(tmp_path, capsys):
    from simulator.api import roofline_data
    from simulator.specs.workload import workload

    assert main(["roofline", "--model", "llama-3.2-1b", "--plot", str(tmp_path / "r.png")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {tmp_path / 'r.png'}") and is_png(tmp_path / "r.png")
    data = roofline_data("llama-3.2-1b", "mi300x", "pytorch-ref", workload())
    fig = roofline.draw(data, tmp_path / "r.svg")
    assert is_svg(tmp_path / "r.svg")
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "arithmetic intensity (FLOP per byte moved)"
    assert ax.get_ylabel() == "achieved FLOP/s (FLOPs / predicted time)"
    drawn = [p for p in data.points if p.flops > 0]
    expected = {}
    for p in drawn:
        expected[f"{p.phase}, {p.bound}-bound"] = expected.get(f"{p.phase}, {p.bound}-bound", 0) + 1
    got = series(ax)
    assert {k: v for k, v in got.items() if "bound" in k} == expected
    roofs = {k for k in got if "bound" not in k}
    assert roofs == {"bf16 peak 1.31 PFLOP/s", "fp32 vector peak 163 TFLOP/s", "Infinity Cache (MALL) 17 TB/s",
                     "HBM3 5.3 TB/s"}
    labelled = " ".join(t.get_text() for t in ax.texts)
    assert all(p.name in labelled for p in drawn)
    assert "not drawn (no FLOPs): embed_tokens, kv_write" in [t.get_text() for t in fig.texts]


# --- llmsim predict --plot --------------------------------------------------------------------

def test_predict_picture(tmp_path, capsys):
    assert main(["predict", "--model", "llama-3.2-1b", "--plot", str(tmp_path / "p.svg")]) == 0
    assert "wrote" in capsys.readouterr().out and is_svg(tmp_path / "p.svg")
    p = simulator.predict(model="llama-3.2-1b", hardware="h100-sxm")
    fig = breakdown.draw(p, tmp_path / "p.png")
    assert is_png(tmp_path / "p.png")
    t_ax, m_ax = fig.axes[:2]
    assert t_ax.get_xlabel() == "share of the phase's time (%)"
    assert [t.get_text().split("\n")[0] for t in t_ax.get_yticklabels()] == ["prefill", "decode step"]
    kinds = {o.kind for o in p.breakdown}
    assert set(t_ax.get_legend_handles_labels()[1]) <= kinds | {"other"}
    assert {"matmul", "attention"} <= set(t_ax.get_legend_handles_labels()[1])
    for y in (0, 1):                                   # each phase's bar is 100% of its time
        widths = [b.get_width() for b in t_ax.patches if abs(b.get_y() + b.get_height() / 2 - y) < 1e-9]
        assert sum(widths) == pytest.approx(100.0)
    assert m_ax.get_ylabel() == "memory per device (GB)"
    heights = [b.get_height() for b in m_ax.patches]
    assert heights == pytest.approx([p.memory.weights_bytes / 1e9, p.memory.kv_cache_bytes / 1e9,
                                     p.memory.activation_bytes / 1e9])
    assert series(m_ax)["capacity 85.9 GB"] == 2 and m_ax.get_title().endswith(": fits")


def test_predict_picture_of_a_scenario_that_does_not_fit_shows_the_memory(tmp_path, capsys):
    assert main(["predict", "--model", "llama-3.1-70b", "--plot", str(tmp_path / "p.png")]) == 0
    assert "does not fit" in capsys.readouterr().out and is_png(tmp_path / "p.png")
    fig = breakdown.draw(simulator.predict(model="llama-3.1-70b", hardware="h100-sxm"), tmp_path / "q.png")
    t_ax, m_ax = fig.axes[:2]
    assert not t_ax.patches and "does not fit" in t_ax.texts[0].get_text()
    assert m_ax.get_title().endswith("does not fit")


# --- llmsim validate --plot -------------------------------------------------------------------

def test_validation_picture_one_colour_per_hardware(tmp_path):
    points = [Point(hw, "llama-3.2-1b", phase, 1, 128, metric, value, "x")
              for hw in ("h100-sxm", "h200-sxm") for phase in ("prefill", "decode")
              for metric, value in (("latency", 0.01), ("latency", 0.02), ("energy", 1.0))]
    errors = np.linspace(-0.15, 0.15, len(points))
    published = [{"hardware": "rtx-4090", "metric": "decode_tokens_per_s", "published": 100.0, "predicted": 90.0},
                 {"hardware": "h100-sxm", "metric": "ttft_s", "published": 0.2, "predicted": 0.25},
                 {"hardware": "u280", "metric": "decode_tokens_per_s", "published": 5.0, "predicted": None}]
    fig = validation.draw(points, errors, published, tmp_path / "v.png")
    assert is_png(tmp_path / "v.png")
    titles = {ax.get_title(): ax for ax in fig.axes}
    assert set(titles) == {"prefill latency (n=4)", "decode latency (n=4)", "prefill energy (n=2)",
                           "decode energy (n=2)", "published runs of others (n=2)"}
    ax = titles["prefill latency (n=4)"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) == ("measured (ms)", "predicted (ms)", "log")
    assert titles["decode energy (n=2)"].get_xlabel() == "measured (J)"
    assert series(ax).keys() == {"±20%", "±10%", "h100-sxm", "h200-sxm"}              # the bands, then one per GPU
    assert (series(ax)["h100-sxm"], series(ax)["h200-sxm"]) == (2, 2)
    published_series = series(titles["published runs of others (n=2)"])
    assert (published_series["h100-sxm"], published_series["rtx-4090"]) == (1, 1) and "u280" not in published_series
    colours = {}
    for axis in fig.axes:
        for c in axis.collections:
            if c.get_label() in ("h100-sxm", "h200-sxm", "rtx-4090"):
                colours.setdefault(c.get_label(), set()).add(tuple(np.round(c.get_facecolor()[0], 6)))
    assert all(len(v) == 1 for v in colours.values()) and len({v.pop() for v in colours.values()}) == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["±20%", "±10%", "h100-sxm", "h200-sxm", "rtx-4090"]


def test_validate_plot_cli(tmp_path, capsys):
    out = tmp_path / "v.png"
    assert main(["validate", "--no-published", "--hardware", "h100-sxm", "--plot", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {out}") and is_png(out)


# --- llmsim sweep --plot / plan --plot --------------------------------------------------------

def test_sweep_picture(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(TINY_GRID)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "rows.csv"), "--plot", str(tmp_path / "s.png")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {tmp_path / 's.png'}") and is_png(tmp_path / "s.png")
    assert main(["sweep", str(grid), "--plot", str(tmp_path / "s.svg")]) == 0
    assert capsys.readouterr().out.startswith("model,") and is_svg(tmp_path / "s.svg")   # stdout stays CSV


def test_sweep_figure_has_the_cloud_and_the_front(tmp_path):
    from simulator.cli.sweep import configuration_label
    from simulator.explore.sweep import sweep
    from simulator.explore.front import FrontSample

    grid = tmp_path / "grid.yaml"
    grid.write_text(TINY_GRID)
    sample = FrontSample(cap=5)
    sweep(str(grid), tmp_path / "rows.csv", observe=lambda rows: sample.add(rows.values,
                                                                            configuration_label(rows.constants)))
    assert sample.counts[True] == 12 and sample.configs == ["llama-3.2-1b l4 bf16", "llama-3.2-1b h100-sxm bf16"]
    fig = front.draw(sample, tmp_path / "f.png", "sweep", lengths=True)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time per output token (ms)"
    assert ax.get_ylabel() == "output tokens/s (per configuration, all its devices)"
    k = sample.front().shape[1]
    assert series(ax) == {"scenarios (12; 5 drawn)": 5, f"Pareto front ({k} over all 12)": k}
    assert fig.axes[1].get_ylabel() == "tokens/J"                                # the colour bar
    assert all(" S=" in t.get_text() for t in ax.texts) and ax.texts


def test_front_figure_with_nothing_to_draw_says_why(tmp_path):
    from simulator.explore.front import FrontSample

    fig = front.draw(FrontSample(), tmp_path / "empty.png", "sweep")
    assert is_png(tmp_path / "empty.png") and "no scenario that fits" in fig.axes[0].texts[0].get_text()


def test_plan_picture(tmp_path, capsys):
    from simulator.explore.plan import Targets, plan
    from simulator.explore.front import CONFIG, FrontSample

    assert main(PLAN + ["--plot", str(tmp_path / "plan.png")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {tmp_path / 'plan.png'}")
    assert is_png(tmp_path / "plan.png")
    sample = FrontSample()
    result = plan("llama-3.2-1b", 512, 64, Targets(tpot_max_s=0.01, throughput_min_tokens_per_s=300),
                  hardware=["l4", "h100-sxm"], max_batch=32, observe=sample.add)
    assert sample.counts[True] and sample.counts[False]
    assert np.all(sample.front()[0] <= 0.01) and np.all(sample.front()[1] >= 300)      # the front meets the targets
    meeting = {sample.configs[int(c)] for c in sample.sample(True)[CONFIG]}
    assert meeting == {f"{o.hardware} x{o.devices} {o.precision}" for o in result.options}
    fig = front.draw(sample, tmp_path / "p.svg", "plan", tpot_max_s=0.01, throughput_min=300)
    assert is_svg(tmp_path / "p.svg")
    got = series(fig.axes[0])
    assert got["TPOT target 10 ms"] == 2 and got["throughput target 300/s"] == 2
    assert got[f"miss the targets ({sample.counts[False]:,}; {sample.counts[False]:,} drawn)"] == sample.counts[False]
    meets = [v for k, v in got.items() if k.startswith("meet the targets") or k.startswith("no power")]
    assert sum(meets) == sample.counts[True]
