"""Regenerate the README's generated blocks (`make readme`): the default prediction, the
validation tables and the list of pictures (readme_pictures draws them); tests check they
are current."""
from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"(<!-- BEGIN validate -->\n)(.*?)(<!-- END validate -->)", re.S)
RUN_BLOCK = re.compile(r"(<!-- BEGIN run -->\n)(.*?)(<!-- END run -->)", re.S)
PICTURES_BLOCK = re.compile(r"(<!-- BEGIN pictures -->\n)(.*?)(<!-- END pictures -->)", re.S)
PUBLISHED_BLOCK = re.compile(r"(<!-- BEGIN published-cv -->\n)(.*?)(<!-- END published-cv -->)", re.S)


def run_output(lines: int = 9) -> str:
    """The head of what `make run` (llmsim predict with the defaults) prints."""
    from simulator.cli.main import cmd_predict, build_parser

    text = cmd_predict(build_parser().parse_args(["predict"]))
    return "\n".join(text.splitlines()[:lines]) + "\n..."


def published_table() -> str:
    """`llmsim validate`'s published section: hand-set, cross-validated fitted and run-fitted stacks."""
    from simulator.cli.validate import published_report

    return published_report()[0].split("\n\n")[-1]


def validate_table() -> str:
    """`llmsim validate --transfer` without its lists of worst points and published rows."""
    from simulator.cli.validate import measured_sections
    from simulator.accuracy.measured import load_points

    sections = [text for _, text, _ in measured_sections(load_points(), "pytorch-ref", transfer=True)[1]]
    published = published_table()
    sections = [s.split("\n\nlatency by measurement session:")[0] if i else s.split("\n\nworst points:")[0]
                for i, s in enumerate(sections)]
    return "\n\n".join(sections) + "\n\npublished runs (median |error| per source and metric):\n" + published


def render(readme: str) -> str:
    from tools.readme_pictures import block

    readme = RUN_BLOCK.sub(lambda m: m.group(1) + "```\n" + run_output() + "\n```\n" + m.group(3), readme)
    readme = PICTURES_BLOCK.sub(lambda m: m.group(1) + block() + m.group(3), readme)
    readme = PUBLISHED_BLOCK.sub(lambda m: m.group(1) + "```\n" + published_table() + "\n```\n" + m.group(3), readme)
    return BLOCK.sub(lambda m: m.group(1) + "```\n" + validate_table() + "\n```\n" + m.group(3), readme)


if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "README.md"
    path.write_text(render(path.read_text()))
