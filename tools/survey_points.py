"""validation/survey/survey-2410.04466.yaml from the survey's spreadsheet: the rows of
data/data202505.xlsx (Kimho666/LLM_Hardware_Survey, sheet "2025年5月", the first) that
name a device, with their spreadsheet row. Reads the .xlsx with the standard library (an
.xlsx is a zip of XML parts), so nothing is installed for it:

    git --git-dir=<mirror> show <commit>:data/data202505.xlsx > survey.xlsx
    python -m tools.survey_points survey.xlsx > validation/survey/survey-2410.04466.yaml

The header (the file's comments and source) is kept from the committed file."""
from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "validation" / "survey" / "survey-2410.04466.yaml"
NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
CLASSES = {"CPU": "cpu", "GPU": "gpu", "FPGA": "fpga", "ASIC": "asic", "PIM/NDP": "pim"}
# Rows whose column A is a product with no work before it.
PRODUCTS = {"Snapdragon 8 Gen3", "Groq LPU", "Gaudi2", "Cerebras WSE-3", "SK Hynix AiMX", "WaferLLM (WSE-2)"}


def sheet_rows(xlsx: Path) -> list[tuple[int, dict[str, str]]]:
    """(row number, {column letter: text}) of the first sheet."""
    with zipfile.ZipFile(xlsx) as book:
        strings = [''.join(t.text or "" for t in item.iter(NS + "t"))
                   for item in ET.fromstring(book.read("xl/sharedStrings.xml")).findall(NS + "si")]
        sheet = ET.fromstring(book.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iter(NS + "row"):
        cells = {}
        for cell in row.findall(NS + "c"):
            value = cell.find(NS + "v")
            text = "" if value is None else value.text
            shared = cell.get("t") == "s" and text
            cells[re.match(r"[A-Z]+", cell.get("r")).group()] = strings[int(text)] if shared else text
        rows.append((int(row.get("r")), cells))
    return rows


def work_and_device(name: str, platform: str) -> tuple[str, str] | None:
    """Column A split into the work and the device it ran on; None when no device is named."""
    if ", " in name:
        work, device = name.split(", ", 1)
        return work, device.strip()
    if name in PRODUCTS or (platform in ("ASIC", "PIM/NDP") and "et al" not in name):   # a design names itself
        return name, name
    return None


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def point(row: int, cells: dict[str, str]) -> str | None:
    named = work_and_device(cells.get("A", "").strip(), cells["F"])
    if named is None:
        return None
    lines = [f"  - work: {quoted(named[0])}", f"    device: {quoted(named[1])}", f"    class: {CLASSES[cells['F']]}",
             f"    tokens_per_s: {float(cells['H']):.6g}", f"    power_w: {float(cells['I']):.6g}",
             f"    method: {quoted(cells['J'])}"]
    if cells.get("K"):
        lines.append(f"    paper: {quoted(cells['K'])}")
    return "\n".join(lines + [f"    row: {row}"]) + "\n"


def header() -> str:
    text = OUT.read_text()
    return text[:text.index("points:\n") + len("points:\n")]


def main(xlsx: str) -> None:
    points = [p for row, cells in sheet_rows(Path(xlsx))[1:] if (p := point(row, cells))]
    sys.stdout.write(header() + "".join(points))


if __name__ == "__main__":
    main(sys.argv[1])
