"""Find and load spec files; turn every schema or YAML problem into one SpecError line.

Built-in specs live in ``hardware_specs/`` and ``model_specs/`` at the repository root;
an installed package carries them as package data (``simulator/_data``). A name such as
``h100-sxm`` is looked up there; anything that looks like a path is loaded as a file.
"""
from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from simulator.errors import SpecError, UnknownNameError
from simulator.specs.hardware import HardwareSpec
from simulator.specs.model import Architecture, ModelSpec, normalise, unknown_fields
from simulator.specs.stack import StackSpec

_PACKAGE = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Directory holding ``hardware_specs/`` and ``model_specs/``: the checkout, else package data."""
    checkout = _PACKAGE.parent
    if (checkout / "hardware_specs").is_dir() and (checkout / "model_specs").is_dir():
        return checkout
    return _PACKAGE / "_data"


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _first_error(path: Path | str, err: ValidationError, tagged: bool = False) -> SpecError:
    """The first schema error as one SpecError; ``tagged`` drops a discriminated union's tag."""
    e = err.errors(include_url=False)[0]
    loc = tuple(e["loc"])[1 if tagged else 0:]
    if e["type"] == "extra_forbidden":
        return SpecError(str(path), _field_path(loc), "unknown field (misspelt? see the spec format in the README)")
    if e["type"] == "missing":
        return SpecError(str(path), _field_path(loc), "required field is missing")
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "enum":
        msg = f"expected one of {e['ctx']['expected']}, got {e['input']!r}"
    return SpecError(str(path), _field_path(loc), msg)


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), "", f"cannot read file ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(str(path), "", f"malformed {'JSON' if path.suffix == '.json' else 'YAML'}{where}") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), "", "expected a mapping of fields at the top level")
    return data


def validate(adapter_or_model: Any, data: dict, path: Path | str):
    try:
        if isinstance(adapter_or_model, TypeAdapter):
            return adapter_or_model.validate_python(data)
        return adapter_or_model.model_validate(data)
    except ValidationError as err:
        raise _first_error(path, err, tagged=adapter_or_model is _HARDWARE) from None


_HARDWARE = TypeAdapter(HardwareSpec)


def _index(folder: str) -> dict[str, Path]:
    root = data_root() / folder
    return {p.stem: p for p in sorted(root.rglob("*.yaml")) if p.parent.name != "stacks"}


@functools.lru_cache(maxsize=None)
def hardware_index() -> dict[str, Path]:
    return _index("hardware_specs")


@functools.lru_cache(maxsize=None)
def model_index() -> dict[str, Path]:
    return _index("model_specs")


@functools.lru_cache(maxsize=None)
def stack_index() -> dict[str, Path]:
    return {p.stem: p for p in sorted((data_root() / "hardware_specs" / "stacks").glob("*.yaml"))}


def _resolve(name: str, index: dict[str, Path], what: str) -> Path:
    if name in index:
        return index[name]
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml", ".json") or candidate.exists():
        if not candidate.exists():
            raise SpecError(name, "", "file not found")
        return candidate
    raise UnknownNameError(what, name, difflib.get_close_matches(name, list(index), n=3, cutoff=0.4))


def load_hardware_file(path: Path):
    data = read_yaml(path)
    return validate(_HARDWARE, data, path)


@functools.lru_cache(maxsize=None)
def hardware(name: str):
    """A hardware spec by registry name or path."""
    return load_hardware_file(_resolve(name, hardware_index(), "hardware"))


@functools.lru_cache(maxsize=None)
def stack(name: str) -> StackSpec:
    """A stack profile by registry name or path."""
    path = _resolve(name, stack_index(), "stack")
    return validate(StackSpec, read_yaml(path), path)


def _architecture(config: dict, path: Path | str, field_prefix: str, strict: bool) -> Architecture:
    if strict:
        extra = unknown_fields(config)
        if extra:
            raise SpecError(str(path), f"{field_prefix}{extra[0]}", "unknown config field (misspelt?)")
    try:
        return normalise(config)
    except KeyError as exc:
        raise SpecError(str(path), f"{field_prefix}{exc.args[0]}", "required field is missing") from None
    except ValueError as exc:
        text = str(exc)
        field, _, message = text.partition(": ")
        if isinstance(exc, ValidationError):
            err = _first_error(path, exc)
            raise SpecError(str(path), f"{field_prefix}{err.field}", err.message) from None
        raise SpecError(str(path), f"{field_prefix}{field}", message) from None


@functools.lru_cache(maxsize=None)
def model(name: str) -> tuple[str, Architecture, ModelSpec | None]:
    """(display name, architecture, spec or None for a raw config.json) by name or path."""
    path = _resolve(name, model_index(), "model")
    data = read_yaml(path)
    if path.suffix == ".json" and "config" not in data:   # a raw Hugging Face config.json
        return path.stem if path.name != "config.json" else path.parent.name, _architecture(data, path, "", False), None
    spec = validate(ModelSpec, data, path)
    return spec.name, _architecture(spec.config, path, "config.", True), spec
