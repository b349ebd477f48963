"""Find and load spec files; turn every schema or YAML problem into one SpecError line.

Built-in specs live in ``hardware_specs/`` and ``model_specs/`` at the repository root;
an installed package carries them as package data (``simulator/_data``). A name such as
``h100-sxm`` is looked up there; anything that looks like a path is loaded as a file.
"""
from __future__ import annotations

import difflib
import functools
import json
import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from simulator.errors import SpecError, UnknownNameError
from simulator.specs.base import SPEC, shown
from simulator.specs import hf_hub
from simulator.specs.hardware import HardwareSpec
from simulator.specs.model import Architecture, ModelSpec
from simulator.specs.stack import StackSpec

_PACKAGE = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Directory holding ``hardware_specs/`` and ``model_specs/``: the checkout, else package data."""
    return _DATA_ROOT


def _find_data_root() -> Path:
    checkout = _PACKAGE.parent
    if (checkout / "hardware_specs").is_dir() and (checkout / "model_specs").is_dir():
        return checkout
    return _PACKAGE / "_data"


_DATA_ROOT = _find_data_root()


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")   # pydantic marks a bad key so


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
        msg = f"expected one of {e['ctx']['expected']}, got {shown(e['input'])}"
    elif e["type"] == "union_tag_invalid":
        return SpecError(str(path), _field_path(loc + ("kind",)),
                         f"expected one of {e['ctx']['expected_tags']}, got {shown(e['ctx']['tag'])}")
    elif e["type"] == "union_tag_not_found":
        return SpecError(str(path), _field_path(loc + ("kind",)), "required field is missing")
    elif e["type"] != "value_error" and "input" in e:
        msg = f"{msg[:1].lower()}{msg[1:]}, got {shown(e['input'])}"
    return SpecError(str(path), _field_path(loc), msg)


MAX_SPEC_BYTES = 4 * 2**20           # a spec, config or grid file is at most 4 MiB
MAX_DEPTH = 64                       # nesting of mappings and lists in one file
INT64_MAX = 2**63 - 1


def __getattr__(name: str):     # _LOADER: the C parser when built; yaml imported on first use
    if name != "_LOADER":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import yaml
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 text of a spec file; a binary, UTF-16 or otherwise non-UTF-8 file is a SpecError."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw:
        raise SpecError(str(path), "", "expected a UTF-8 text file, got a binary or UTF-16 file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), "", f"expected a UTF-8 text file, got an invalid byte at offset {exc.start}") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _parse(text: str, path: Path) -> Any:
    import yaml

    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        if kind == "JSON":
            return json.loads(text, parse_constant=_reject_constant)
        return yaml.load(text, Loader=__getattr__("_LOADER"))   # noqa: S506 (a safe loader)
    except RecursionError:
        raise SpecError(str(path), "", f"malformed {kind}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(str(path), "", f"malformed YAML{where}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(str(path), "", f"malformed JSON at line {exc.lineno}") from None
    except ValueError as exc:        # NaN/Infinity in JSON, an integer of more than 4300 digits
        raise SpecError(str(path), "", f"malformed {kind} ({str(exc).split(':')[0]})") from None


MAX_VALUES = 1_000_000                # values in a file once YAML aliases are expanded


def _expanded_size(data: Any, path: Path | str) -> int:
    """Values in ``data`` with every YAML alias expanded, counted once per node (memoised,
    iterative): a "billion laughs" file is refused before anything walks or prints it, and a
    node that contains itself is an error."""
    sizes: dict[int, int | None] = {}          # id -> expanded size; None while its children count
    stack = [(data, False)]
    while stack:
        node, finished = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if finished:
            total = 1
            for child in children:
                if isinstance(child, (dict, list)):
                    size = sizes.get(id(child))
                    if size is None:
                        raise SpecError(str(path), "", "a YAML alias refers to a node that contains it")
                    total += size
                else:
                    total += 1
            if total > MAX_VALUES:
                raise SpecError(str(path), "", f"more than {MAX_VALUES:,} values once YAML aliases are expanded")
            sizes[id(node)] = total
            continue
        if id(node) in sizes:
            continue
        sizes[id(node)] = None
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)
    return sizes.get(id(data), 1)


def check_values(data: Any, path: Path | str) -> None:
    """Every integer within int64 and every mapping key a string or number, at most MAX_DEPTH
    levels deep (an iterative walk: no recursion on user-controlled depth)."""
    stack, seen = [(data, (), 0)], set()
    while stack:
        value, loc, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if id(value) in seen:          # a YAML alias: the same node again (walk it once, or
                continue                   # "billion laughs" aliases would take forever)
            seen.add(id(value))
        if depth > MAX_DEPTH:
            raise SpecError(str(path), _field_path(loc[:3]) + "...", f"nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not -INT64_MAX - 1 <= value <= INT64_MAX:
                raise SpecError(str(path), _field_path(loc), f"expected an integer within int64 (|n| < 2^63), got {value:.3g}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                    raise SpecError(str(path), _field_path(loc), f"expected plain keys, got {type(key).__name__} {key!r}")
                stack.append((item, loc + (key,), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, loc + (i,), depth + 1) for i, item in enumerate(value))


def read_yaml(path: Path) -> dict:
    """The top-level mapping of a YAML (or, by suffix, JSON) file, parsed once with a safe
    loader. Any problem (unreadable, over MAX_SPEC_BYTES, not UTF-8, malformed, nested too
    deeply, an integer past int64, not a mapping) is one SpecError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(str(path), "", f"cannot read file ({exc.strerror or exc})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(str(path), "", f"file is larger than {MAX_SPEC_BYTES // 2**20} MiB (a spec is a few kB)")
    data = _parse(_decode(raw, path), path)
    if not isinstance(data, dict):
        raise SpecError(str(path), "", "expected a mapping of fields at the top level")
    _expanded_size(data, path)
    check_values(data, path)
    return data


def validate(adapter_or_model: Any, data: dict, path: Path | str):
    try:
        if isinstance(adapter_or_model, TypeAdapter):
            return adapter_or_model.validate_python(data)
        return adapter_or_model.model_validate(data)
    except ValidationError as err:
        raise _first_error(path, err, tagged=adapter_or_model is _HARDWARE) from None
    except SpecError as err:              # a model validator's cross-field problem (base.problem)
        if err.path != SPEC:
            raise
        raise SpecError(str(path), err.field, err.message) from None


_HARDWARE = TypeAdapter(HardwareSpec)


def _stamp(path: Path) -> tuple | None:
    """What changes when a file is rewritten, replaced or removed: (inode, mtime, ctime, size)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def _tree_stamp(root: Path) -> tuple:
    """Stamps of a folder and every folder below it: a file added, removed or renamed changes one."""
    stamps = []
    for folder, subfolders, _ in os.walk(root):
        subfolders.sort()
        stamps.append((folder, _stamp(Path(folder))))
    return tuple(stamps)


def _index(folder: str) -> dict[str, Path]:
    root = data_root() / folder
    return {p.stem: p for p in sorted(root.rglob("*.yaml")) if p.parent.name != "stacks"}


@functools.lru_cache(maxsize=64)
def _folder_index(folder: str, _stamp: tuple) -> dict[str, Path]:
    return _index(folder)


@functools.lru_cache(maxsize=64)
def _stack_index(folder: str, _stamp) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.yaml"))}


def hardware_index() -> dict[str, Path]:
    """Registry name -> file of every hardware spec (listed again when a file is added or removed)."""
    return _folder_index("hardware_specs", _tree_stamp(data_root() / "hardware_specs"))


def model_index() -> dict[str, Path]:
    """Registry name -> file of every model spec."""
    return _folder_index("model_specs", _tree_stamp(data_root() / "model_specs"))


def stack_index() -> dict[str, Path]:
    """Registry name -> file of every stack profile."""
    folder = data_root() / "hardware_specs" / "stacks"
    return _stack_index(str(folder), _stamp(folder))


# Every cache below is keyed on the file's (or folder's) stamp, so a changed file is read
# again and no caller need clear anything; cache_clear() stays for callers that still call it.
def _clear_all() -> None:
    for cache in (_folder_index, _stack_index, _hardware_file, _stack_file, _model_file):
        cache.cache_clear()
    _last_index.clear()
    _listings[0] += 1


for _public in (hardware_index, model_index, stack_index):
    _public.cache_clear = _clear_all       # kept for old callers: the caches invalidate themselves


_last_index: dict[tuple, dict[str, Path]] = {}   # (what, data root) -> the index last listed (the fast path)
_listings = [0]                                  # how many times an index was listed again (located())


def _named(name: str, what: str, listing) -> tuple[Path | None, dict[str, Path]]:
    """(file of registry name ``name`` or None, the index): from the index last listed, else
    from a fresh listing (a name it lacks: a file added or renamed). A listed file that is
    gone is caught by its stamp (_located)."""
    key = (what, data_root())
    index = _last_index.get(key)
    if index is None or name not in index:
        index = _last_index[key] = listing()
        _listings[0] += 1
    return index.get(name), index


def _located(name: str, listing, what: str) -> tuple:
    """_file_key of the file ``name`` resolves to: one stat for a known name; listed again
    when the file the last listing named is gone."""
    path = _resolve(name, listing, what)
    key = _file_key(path, str(path))
    if key[2] is None and (what, data_root()) in _last_index:
        del _last_index[what, data_root()]
        path = _resolve(name, listing, what)
        key = _file_key(path, str(path))
    return key


def _resolve(name: str, listing, what: str) -> Path:
    if not isinstance(name, str) or not name:
        raise SpecError("<arguments>", what, f"expected a {what} name or a spec file path, got {name!r}")
    found, index = _named(name, what, listing)
    if found is not None:
        return found
    candidate = Path(name)
    try:
        exists = candidate.exists()
    except (OSError, ValueError):    # a name too long for the file system, or with a NUL
        exists = False
    if candidate.suffix in (".yaml", ".yml", ".json") or exists:
        if not exists:
            raise SpecError(name, "", "file not found")
        if candidate.is_dir():
            raise SpecError(name, "", "expected a spec file, got a folder")
        return candidate
    raise UnknownNameError(what, name, difflib.get_close_matches(name, list(index), n=3, cutoff=0.4))


def _file_key(path: Path, display: str) -> tuple:
    return display, display if os.path.isabs(display) else os.path.abspath(display), _stamp(path)


def load_hardware_file(path: Path):
    data = read_yaml(path)
    return validate(_HARDWARE, data, path)


@functools.lru_cache(maxsize=512)
def _hardware_file(display: str, _absolute: str, _stamp) -> object:
    return load_hardware_file(Path(display))


def hardware(name: str):
    """A hardware spec by registry name or path (cached until its file changes)."""
    return _hardware_file(*_located(name, hardware_index, "hardware"))


@functools.lru_cache(maxsize=512)
def _stack_file(display: str, _absolute: str, _stamp) -> StackSpec:
    path = Path(display)
    return validate(StackSpec, read_yaml(path), path)


def stack(name: str) -> StackSpec:
    """A stack profile by registry name or path (cached until its file changes)."""
    return _stack_file(*_located(name, stack_index, "stack"))


hardware.cache_clear = _clear_all
stack.cache_clear = _clear_all


def _architecture(config: dict, path: Path | str, field_prefix: str, strict: bool) -> Architecture:
    from simulator.specs.hf_config import normalise, unknown_fields

    if strict:
        extra = unknown_fields(config)
        if extra:
            raise SpecError(str(path), f"{field_prefix}{extra[0]}", "unknown config field (misspelt?)")
    return normalise(config, str(path), field_prefix)


@functools.lru_cache(maxsize=512)
def _model_file(display: str, _absolute: str, _stamp) -> tuple[str, Architecture, ModelSpec | None]:
    path = Path(display)
    data = read_yaml(path)
    if path.suffix == ".json" and "config" not in data:   # a raw Hugging Face config.json
        name = path.stem if path.name != "config.json" else hf_hub.repo_of(path) or path.parent.name
        return name, _architecture(data, path, "", False), None
    spec = validate(ModelSpec, data, path)
    return spec.name, _architecture(spec.config, path, "config.", True), spec


def model(name: str) -> tuple[str, Architecture, ModelSpec | None]:
    """(display name, architecture, spec or None for a raw config.json) by name, path, model
    folder or Hugging Face ``org/name`` (specs/hf_hub.py), cached until its file changes."""
    if isinstance(name, str) and name not in _last_index.get(("model", data_root()), ()):
        name = hf_hub.config_path(name)
    return _model_file(*_located(name, model_index, "model"))


model.cache_clear = _clear_all


def located(what: str, name: str) -> tuple:
    """What name or path ``name`` of a ``what`` ("model", "hardware", "stack") resolves to
    now, for unchanged(): (absolute path, stamp, cwd of a relative path, listings so far)."""
    if what == "model" and name not in _last_index.get(("model", data_root()), ()):
        name = hf_hub.config_path(name)
    listing = {"model": model_index, "hardware": hardware_index, "stack": stack_index}[what]
    display, absolute, stamp = _located(name, listing, what)
    return absolute, stamp, None if os.path.isabs(display) else os.getcwd(), _listings[0]


def unchanged(located_then: tuple) -> bool:
    """Whether a name located() then still means the same unchanged file (one stat, the cwd
    of a relative path, no index listed again since); False: resolve it again to know."""
    absolute, stamp, cwd, listings = located_then
    return listings == _listings[0] and _stamp(absolute) == stamp and (cwd is None or cwd == os.getcwd())
