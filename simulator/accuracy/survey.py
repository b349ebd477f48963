"""The survey's published points (validation/survey/*.yaml): tokens/s and watts of a ~7B
decoder's decode stage on CPU, GPU, FPGA, ASIC and PIM devices, as arXiv 2410.04466's data
repository publishes them, each with the repository, file, commit and row it comes from.
They carry no model name or prompt/output lengths, so they are drawn beside our
predictions (report/plots/survey.py), not re-predicted like validation/published/."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from simulator.specs import registry
from simulator.specs.base import Strict

CLASSES = ("cpu", "gpu", "tpu", "fpga", "asic", "pim")


class SurveySource(Strict):
    repository: str
    file: str
    sheet: str
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    readme: str


class SurveyPoint(Strict):
    work: str
    device: str
    kind: Literal[CLASSES] = Field(alias="class")
    tokens_per_s: float = Field(gt=0)        # decode tokens/s, the sheet's column H
    power_w: float = Field(gt=0)             # W, the sheet's column I
    method: str
    paper: str | None = None
    row: int = Field(ge=2)                   # the spreadsheet row (row 1 is the header)

    @property
    def tokens_per_j(self) -> float:
        """tokens/s / W."""
        return self.tokens_per_s / self.power_w


class SurveyFile(Strict):
    source: SurveySource
    batch: int = Field(ge=1)
    model: str
    points: list[SurveyPoint] = Field(min_length=1)


def survey_path() -> Path:
    return registry.data_root() / "validation" / "survey" / "survey-2410.04466.yaml"


def load(path: Path | None = None) -> SurveyFile:
    """The survey file at ``path`` (default: the committed one), validated; a bad file
    raises SpecError naming the field."""
    path = path or survey_path()
    return registry.validate(SurveyFile, registry.read_yaml(path), path)
