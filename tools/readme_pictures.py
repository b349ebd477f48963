"""The README's pictures, each drawn by one llmsim command: `make readme` runs them
(``python -m tools.readme_pictures``), and the README's pictures block, which
readme_tables renders, shows each picture with its command."""
from __future__ import annotations

import contextlib
import io
import shlex
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A device of every class the survey compares (CPU, GPU, FPGA, ASIC, PIM), and edge parts.
SURVEY_DEVICES = "xeon-8480p,h100-sxm,rtx-4090,jetson-agx-orin-64gb,u280,groq-lpu,hbm-pim,apple-m2-ultra"

# (title, what it shows, the command that draws it; the file is its --plot argument)
PICTURES = (
    ("Time breakdown and memory", "where the default scenario's time goes: the prefill pass and the mean decode "
     "step, stacked by operator kind, and the memory per device against its capacity.",
     "llmsim predict --plot docs/img/predict.png"),
    ("Roofline", "each operator of the prefill pass and of a decode step under the H100's roofs, at the FLOP/s "
     "the prediction achieves, coloured by what bounds it.",
     "llmsim roofline --model llama-3.1-8b --hardware h100-sxm --plot docs/img/roofline.png"),
    ("Validation", "every measured point predicted against its measurement, one colour per device, with the "
     "±10% and ±20% bands; and the published runs of others.",
     "llmsim validate --plot docs/img/validation.png"),
    ("Sweep", "10 models x 20 devices x batch x prompt x output (the rows go to stdout): time per output token "
     "against tokens/s, coloured by tokens/J, with the Pareto front over every row.",
     "llmsim sweep examples/sweep-mixed.yaml --plot docs/img/sweep.png"),
    ("Plan", "every configuration's batches, grey where they miss the targets, and the Pareto front of those "
     "that meet them.",
     "llmsim plan --model llama-3.1-8b --prompt 1024 --output 256 --ttft-max '500 ms' --tpot-max '50 ms' "
     "--throughput-min 500 --plot docs/img/plan.png"),
    ("Survey, batch 1", "the seed survey's picture (Li et al., arXiv 2410.04466): output tokens/s against average "
     "power (energy / end-to-end time) with iso-tokens/J lines, one filled marker per device coloured by class, "
     "and the survey's published points (validation/survey/, batch 1) hollow in the same colours. Where they "
     "differ: ours are bf16 weights on one generic stack (pytorch-ref) with the 1024-token prefill counted in "
     "tokens/s, most of the survey's (106 of 158) are quantized, sparse or speculative decode-only runs on each "
     "work's own kernels, so the RTX 4090 (55 against AWQ's 194 tokens/s) and the U280 (4 against FlightLLM's 55) "
     "sit well below theirs while the H100 (138 tokens/s at 396 W) lands beside vLLM's 143 at 423 W. The survey "
     "quotes one nameplate power per device (every A100 at 400 W, Groq's LPU 814 tokens/s at 185 W); ours is the "
     "predicted average draw of every device the model needs (80 Groq chips, 3.7 kW).",
     f"llmsim compare --model llama-2-7b --hardware {SURVEY_DEVICES} --batch 1 --plot docs/img/survey-batch1.png"),
    ("Survey, batch 8", "the same devices at batch 8 (the survey's points stay batch 1: its data has no batch-8 "
     "points).",
     f"llmsim compare --model llama-2-7b --hardware {SURVEY_DEVICES} --batch 8 --plot docs/img/survey-batch8.png"),
)


# The README's screenshot of the HTML report: the file this command writes (to a temporary
# folder), as headless Chromium shows its first screen (tools/browser.py).
REPORT_COMMAND = "llmsim report --model llama-3.1-8b --hardware h100-sxm,mi300x,tpu-v5e --html r.html"
REPORT_SCREENSHOT = "docs/img/report.png"


def picture_path(command: str) -> str:
    args = shlex.split(command)
    return args[args.index("--plot") + 1]


def block() -> str:
    """The README's pictures block: each picture under its description and command."""
    return "\n".join(f"**{title}**: {text}\n```\n{command}\n```\n![{title}]({picture_path(command)})\n"
                     for title, text, command in PICTURES)


def draw(only: str | None = None) -> None:
    """Run every picture's command from the repository root (their text output is dropped);
    with ``only``, just the pictures whose file name contains it, and no screenshot."""
    from simulator.cli.main import main

    with contextlib.chdir(ROOT):
        for *_, command in PICTURES:
            if only and only not in picture_path(command):
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(shlex.split(command)[1:])
            if code:
                raise SystemExit(f"`{command}` exited {code}")
            print(f"drew {picture_path(command)}")
    if not only:
        screenshot_report()


def screenshot_report(width: int = 1280, height: int = 1500) -> None:
    """Write REPORT_COMMAND's report to a temporary folder and take REPORT_SCREENSHOT of it
    in headless Chromium (skipped, saying why, where there is none)."""
    from simulator.cli.main import main
    from tools import browser

    why = browser.missing()
    if why:
        print(f"skipped {REPORT_SCREENSHOT}: {why}")
        return
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "r.html"
        argv = shlex.split(REPORT_COMMAND)[1:]
        argv[argv.index("--html") + 1] = str(html)
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        if code:
            raise SystemExit(f"`{REPORT_COMMAND}` exited {code}")
        with browser.chromium(width, height) as context:
            page = context.new_page()
            page.goto(html.as_uri())
            page.wait_for_selector(".chart .main-svg")
            page.wait_for_timeout(500)                      # plotly's last layout pass
            page.screenshot(path=str(ROOT / REPORT_SCREENSHOT))
    print(f"drew {REPORT_SCREENSHOT}")


if __name__ == "__main__":
    import sys

    draw(sys.argv[1] if len(sys.argv) > 1 else None)
