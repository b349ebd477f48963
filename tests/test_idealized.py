"""`llmsim idealized`: F(p), g and T(p, o) = F(p) + g (o - 1) are the predict path's own
numbers on the fewest devices that hold each model; cost-aware runtime = T x devices."""
import json

import pytest

import simulator
from simulator.cli.main import main
from simulator.explore.idealized import idealize, reference_prompt


def test_terms_are_the_predictions_on_the_fewest_devices():
    r = idealize("llama-3.1-70b", "h100-sxm", "ideal", (128, 2048), output=64)
    assert r.devices == 2 and (r.tp, r.pp) == (2, 1)          # 141 GB of bf16 weights, 80 GB per device
    assert not simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", stack="ideal", batch=1, prompt=2048,
                                 output=64).memory.fits
    for prompt, first, total in zip(r.prompts, r.first_token_s, r.runtime_s):
        p = simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", stack="ideal", batch=1, prompt=prompt,
                              output=64, tp=2)
        assert first == pytest.approx(p.ttft_s, rel=1e-12)
        assert total == pytest.approx(first + r.per_token_s * 63, rel=1e-12)
    ref = simulator.predict(model="llama-3.1-70b", hardware="h100-sxm", stack="ideal", batch=1, prompt=128,
                            output=64, tp=2)
    assert reference_prompt(r.prompts) == 128 and r.per_token_s == pytest.approx(ref.tpot_s, rel=1e-12)
    assert r.accelerator_s == pytest.approx(tuple(2 * t for t in r.runtime_s))


def test_ideal_is_faster_than_a_real_stack():
    ideal = idealize("llama-3.1-8b", "h100-sxm", "ideal", (512,))
    real = idealize("llama-3.1-8b", "h100-sxm", "pytorch-ref", (512,))
    assert ideal.runtime_s[0] < real.runtime_s[0] and ideal.per_token_s < real.per_token_s


def test_cli_table_json_and_plot(tmp_path, capsys):
    plot = tmp_path / "ideal.png"
    assert main(["idealized", "--models", "llama-3.2-1b,llama-3.1-70b", "--hardware", "h100-sxm",
                 "--prompts", "128,512", "--output", "32", "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "F(128)" in text and "T(128, 32)" in text and "2 (tp 2 x pp 1)" in text and plot.stat().st_size > 0
    assert main(["idealized", "--models", "llama-3.2-1b", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"][0]["devices"] == 1 and len(data["models"][0]["first_token_s"]) == 3


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as done:          # argparse's own errors
        return done.code


@pytest.mark.parametrize("argv, expected", [
    (["--models", "llama-9b"], "unknown model"),
    (["--models", "llama-3.2-1b", "--prompts", "128,0"], "--prompts"),
    (["--models", "llama-3.2-1b", "--prompts", "128,128"], "more than once"),
    (["--models", "llama-3.2-1b", "--plot", "x.gif"], "--plot"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, expected):
    assert _exit_code(["idealized", *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
