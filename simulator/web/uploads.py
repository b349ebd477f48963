"""Uploaded model configs, hardware specs and sweep grids: written, size-capped, into a
private temporary folder and named by a token (``upload-N``) the API then accepts where a
name goes. They are read by the registry's YAML/JSON loader as data; nothing uploaded is
ever executed or imported."""
from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from simulator.errors import SpecError

MAX_UPLOAD_BYTES = 1 << 20           # 1 MiB: far above any spec or config.json (the registry's cap is 4 MiB)
KINDS = {"model": (".json", ".yaml", ".yml"), "hardware": (".yaml", ".yml"), "grid": (".yaml", ".yml")}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Uploads:
    """Uploaded files of one app, in a temporary folder removed when the app is closed."""

    def __init__(self):
        self._folder = tempfile.TemporaryDirectory(prefix="llmsim-ui-")
        self._paths: dict[str, Path] = {}
        self._count = 0
        self._lock = threading.Lock()

    def save(self, kind: str, filename: str, content: bytes) -> str:
        """Store ``content`` under a new token and return it. The file keeps the upload's
        name (made safe), so a raw config.json names its model after the token."""
        suffixes = KINDS.get(kind)
        if suffixes is None:
            raise SpecError("<upload>", "kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        name = _SAFE.sub("_", Path(filename or "upload").name)[:80] or "upload"
        if Path(name).suffix.lower() not in suffixes:
            raise SpecError("<upload>", "file", f"a {kind} upload must end {' or '.join(suffixes)}, got '{name}'")
        if len(content) > MAX_UPLOAD_BYTES:
            raise SpecError("<upload>", "file", f"{len(content):,} bytes; uploads are capped at {MAX_UPLOAD_BYTES:,}")
        with self._lock:
            self._count += 1
            token = f"upload-{self._count}"
            folder = Path(self._folder.name) / token
            folder.mkdir()
            path = folder / name
            path.write_bytes(content)
            self._paths[token] = path
        return token

    @property
    def folder(self) -> str:
        return self._folder.name

    def path(self, token: str) -> Path | None:
        """The file of ``token``, or None when it names no upload."""
        return self._paths.get(token)

    def discard(self, token: str) -> None:
        """Remove an upload that served its one request (a sweep's grid)."""
        with self._lock:
            path = self._paths.pop(token, None)
        if path is not None:
            path.unlink(missing_ok=True)
            path.parent.rmdir()

    def close(self) -> None:
        self._folder.cleanup()
