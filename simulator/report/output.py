"""Files a command will write (``--plot``, ``--out``), checked before any work is done, and
written whole or not at all."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from simulator.errors import SpecError


def writable_file(text: str, option: str, suffixes: tuple[str, ...]) -> Path:
    """The path ``option`` names, once it ends in one of ``suffixes``, is not a folder, and its
    folder exists and takes a new file (a temporary file is created there and removed: this
    is what tells /sys, /proc and read-only mounts apart). Raises a one-line SpecError."""
    path = Path(text)
    if path.suffix.lower() not in suffixes:
        raise SpecError("<arguments>", option, f"expected a file ending {' or '.join(suffixes)}, got '{text}'")
    folder = path.parent
    if not folder.is_dir():
        raise SpecError("<arguments>", option, f"no folder '{folder}' to write '{path.name}' in")
    if path.is_dir():
        raise SpecError("<arguments>", option, f"'{text}' is a folder; expected a file to write")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".llmsim-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SpecError("<arguments>", option, f"cannot write in folder '{folder}' "
                                               f"({exc.strerror or type(exc).__name__})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise SpecError("<arguments>", option, f"'{text}' exists and is not writable")
    return path


def partial_path(path: Path) -> Path:
    """A name beside ``path`` (same suffix, so writers choose the same format; hidden, and
    unique to this process) to write to before renaming it into place."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


@contextlib.contextmanager
def written_whole(path: Path, keep_on_interrupt: bool = False):
    """Yield a temporary path beside ``path``; on success it replaces ``path``; on an error
    it is removed, so no truncated file is left (on Ctrl-C, with ``keep_on_interrupt``, what
    was written so far is moved into place)."""
    partial = partial_path(path)
    try:
        yield partial
    except KeyboardInterrupt:
        if keep_on_interrupt and partial.exists():
            os.replace(partial, path)
        else:
            partial.unlink(missing_ok=True)
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    replace_freeing_later(partial, path)


FREE_LATER_BYTES = 16 << 20     # an old file this large is freed by another process (~90 ms per 256 MB here)


def replace_freeing_later(partial: Path, path: Path) -> None:
    """os.replace(partial, path), atomically, with a large old file's blocks freed off this
    process's path: the file system frees them when its last name goes (ext4 on this VM: ~90
    ms for a 256 MB CSV, inside rename()), so a second name is linked to it first and removed
    by a detached ``rm`` after the rename. Where that cannot be done (no hard links, no rm),
    the rename frees it as before."""
    aside = None
    try:
        if path.is_file() and path.stat().st_size >= FREE_LATER_BYTES:
            aside = path.with_name(f".{path.name}.{os.getpid()}.old")
            aside.unlink(missing_ok=True)
            os.link(path, aside)
    except OSError:
        aside = None
    os.replace(partial, path)
    if aside is not None:
        import subprocess

        try:
            subprocess.Popen(["rm", "-f", "--", str(aside)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            aside.unlink(missing_ok=True)
