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


def draw() -> None:
    """Run every picture's command from the repository root (their text output is dropped)."""
    from simulator.cli.main import main

    with contextlib.chdir(ROOT):
        for *_, command in PICTURES:
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(shlex.split(command)[1:])
            if code:
                raise SystemExit(f"`{command}` exited {code}")
            print(f"drew {picture_path(command)}")
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
    draw()
