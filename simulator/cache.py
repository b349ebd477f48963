"""A disk cache for a process that answers one question (``llmsim predict``): what a
configuration costs to prepare (its specs read and validated, its graph built, lowered and
bound, its kernel arrays packed, its confidence scope) is pickled once, so a warm process
parses no YAML, validates no schema and imports no networkx.

``cached(key, build)`` returns build()'s value, from the cache when an entry of ``key`` is
there and still true. An entry is keyed by sha256 of ``key``, the working directory, the
LLMSIM_*, HF_* and XDG_CACHE_HOME variables, the interpreter, numpy's version, pydantic's
and pydantic-core's installed files (size and mtime, found without importing them) and the
package source (path, size and mtime of each .py file under simulator/).
It holds what the cold build depended on, checked on every load: each file it read (sha256
of its bytes) and each folder it listed (inode and mtime: an entry added, removed or renamed
changes them), recorded with an audit hook while build() ran. A changed input, or a
missing, corrupt or unreadable entry, means building afresh; a cache folder that cannot be
written means not caching. Neither is ever an error.

Folder: $LLMSIM_CACHE_DIR, else $XDG_CACHE_HOME/llmsim, else ~/.cache/llmsim, holding at
most MAX_ENTRIES entries (the oldest go). LLMSIM_CACHE=off turns it off. The entries are pickles: keep the folder your own.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
ENV_DIR, ENV_SWITCH = "LLMSIM_CACHE_DIR", "LLMSIM_CACHE"
FORMAT = 1                              # bump when an entry's layout changes
MAX_ENTRIES = 256                       # past this many, storing one removes the oldest (~30 kB each)
_PACKAGE = Path(__file__).resolve().parent
_recording: list[set] | None = None     # [files read, folders listed] while a build runs
_hooked = False


def folder() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmsim"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "").lower() not in ("off", "0", "no", "false")


def _source_stamp() -> list:
    """(path, size, mtime) of every .py file of the package: an edited module changes it."""
    stamps = []
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                stamps.append((root, name, st.st_size, st.st_mtime_ns))
    return stamps


_INSTALLED = ("pydantic", "pydantic_core")     # the pickled spec objects' classes and their validators


def _installed_stamp() -> list:
    """(package, path, size, mtime) of each _INSTALLED package's __init__ and version files,
    found without importing them (the warm process may need neither): installing another
    version rewrites them."""
    import importlib.util

    stamps = []
    for name in _INSTALLED:
        spec = importlib.util.find_spec(name)
        where = os.path.dirname(spec.origin) if spec is not None and spec.origin else None
        for file in ("__init__.py", "version.py") if where else ():
            try:
                st = os.stat(os.path.join(where, file))
            except OSError:
                continue
            stamps.append((name, where, file, st.st_size, st.st_mtime_ns))
    return stamps


def _entry_path(key: tuple) -> Path:
    import numpy

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(("LLMSIM_", "HF_")) or k == "XDG_CACHE_HOME")
    described = repr((FORMAT, key, os.getcwd(), env, sys.version, numpy.__version__, _installed_stamp(),
                      _source_stamp()))
    return folder() / f"{hashlib.sha256(described.encode()).hexdigest()[:40]}.pickle"


def _ignored(path: str) -> bool:
    """Reads that are not inputs: modules, the interpreter's and other packages' files (the
    source stamp and the versions cover them); the package's own data files are inputs."""
    if path.endswith((".py", ".pyc", ".so")) or "__pycache__" in path:
        return True
    return path.startswith((sys.prefix, sys.base_prefix)) and not path.startswith(str(_PACKAGE))


_IMPORT_SYSTEM = ("_frozen_importlib_external", "importlib._bootstrap_external", "zipimport", "importlib.metadata",
                  "importlib_metadata")      # module finders, entry-point and distribution lookups


def _audit(event: str, args: tuple) -> None:
    if _recording is None or event not in ("open", "os.scandir", "os.listdir"):
        return
    if event != "open" and sys._getframe(1).f_globals.get("__name__") in _IMPORT_SYSTEM:
        return      # the import system listing sys.path (the working directory under python -m): no input
    target = args[0]
    if isinstance(target, int) or target is None:           # a file descriptor; listdir() of "."
        target = "." if target is None else None
    if target is None:
        return
    path = os.path.abspath(os.fsdecode(target))
    if event == "open":
        mode, flags = args[1], args[2]
        reads = ("r" in mode and "+" not in mode) if isinstance(mode, str) else (
            isinstance(flags, int) and flags & os.O_ACCMODE == os.O_RDONLY)
        if reads and not _ignored(path):
            _recording[0].add(path)
    elif not _ignored(path):
        _recording[1].add(path)


def _file_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _folder_stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _depends(files: set, folders: set) -> tuple:
    return (tuple((p, _file_hash(p)) for p in sorted(files)), tuple((p, _folder_stamp(p)) for p in sorted(folders)))


def _still_true(depends: tuple) -> bool:
    files, folders = depends
    return (all(_file_hash(p) == digest for p, digest in files)
            and all(_folder_stamp(p) == stamp for p, stamp in folders))


def _load(entry: Path):
    """(True, value) of a valid entry, else (False, None)."""
    try:
        with open(entry, "rb") as handle:
            fmt, depends, value = pickle.load(handle)
    except Exception:           # missing, truncated, corrupt, written by other code: rebuild
        return False, None
    return (fmt == FORMAT and _still_true(depends)), value


def _store(entry: Path, depends: tuple, value) -> None:
    """Write atomically (a temporary file renamed into place); any failure: not cached."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=entry.parent, prefix=".tmp-", delete=False) as handle:
            pickle.dump((FORMAT, depends, value), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, entry)
    except Exception:           # read-only folder, full disk, an unpicklable value
        try:
            os.unlink(handle.name)
        except (NameError, OSError):
            pass
        return
    _prune(entry.parent)


def _prune(where: Path) -> None:
    """Remove the least recently written entries past MAX_ENTRIES (a changed source or spec
    leaves its old entries behind)."""
    try:
        entries = sorted(where.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns)
        for old in entries[:max(0, len(entries) - MAX_ENTRIES)]:
            old.unlink()
    except OSError:             # another process pruned it first
        pass


def cached(key: tuple, build: Callable[[], T]) -> T:
    """build(), or its value kept from an earlier process (see the module docstring).
    ``key`` (a tuple of str, int, float, bool and None) names what build() computes from
    the files it reads; errors build() raises pass through and nothing is stored. Call it
    once, early in a process: what build() takes from an in-memory cache filled before
    (a spec the registry already read) is no file read, so the entry would not depend on it."""
    global _recording, _hooked
    if not enabled() or _recording is not None:
        return build()
    entry = _entry_path(key)
    found, value = _load(entry)
    if found:
        return value
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    _recording = [set(), set()]
    try:
        value = build()
        files, folders = _recording
    finally:
        _recording = None
    _store(entry, _depends(files, folders), value)
    return value
