"""The README's pictures, each drawn by one llmsim command: `make readme` runs them
(``python -m tools.readme_pictures``), and the README's pictures block, which
readme_tables renders, shows each picture with its command."""
from __future__ import annotations

import contextlib
import io
import shlex
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


if __name__ == "__main__":
    draw()
