import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def write_spec(tmp_path):
    """Write text to a spec file in a temporary folder and return its path."""
    def write(text: str, name: str = "spec.yaml") -> pathlib.Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture
def cli(capsys):
    """run(argv) -> (exit status, stdout, stderr) of the CLI in process, argparse's refusals included."""
    from simulator.cli.main import main

    def run(argv):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run
