import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_subpackage():
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "simulator").rglob("__init__.py")}
    assert found <= packages, f"add to pyproject.toml packages: {sorted(found - packages)}"


def test_readme_validation_table_is_the_commands_output():
    """The README's accuracy table is generated (`make readme`), not typed."""
    from tools.readme_tables import render

    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "run `make readme` to refresh the README's tables"
