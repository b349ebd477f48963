"""Where a ``--model`` that is a model folder or a Hugging Face repository id (``org/name``)
finds its config.json: the folder's own; the local Hugging Face cache, offline
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``; the snapshot
layout ``models--org--name/snapshots/<revision>/config.json``, the revision ``refs/main``
names, else the newest snapshot); else, when huggingface_hub is installed and not told to
stay offline, the Hub (``hf_hub_download(repo_id, "config.json")``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from simulator.errors import SpecError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")   # org/name as the Hub spells it
CONFIG = "config.json"


def cache_dir() -> Path:
    """The hub cache folder the environment names (huggingface_hub's own rule)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _cached(repo_id: str, cache: Path) -> Path | None:
    """config.json of ``repo_id`` in the cache's snapshot layout, or None."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    try:
        revision = ref.read_text().strip() if ref.is_file() else None
    except OSError:
        revision = None
    if revision and (repo / "snapshots" / revision / CONFIG).is_file():
        return repo / "snapshots" / revision / CONFIG
    snapshots = [s / CONFIG for s in (repo / "snapshots").glob("*") if (s / CONFIG).is_file()]
    return max(snapshots, key=lambda p: p.stat().st_mtime) if snapshots else None


def _from_hub(repo_id: str, cache: Path) -> Path:
    """config.json downloaded from the Hub; a SpecError when huggingface_hub is missing or refuses."""
    where = f"not in the Hugging Face cache ({cache})"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise SpecError(repo_id, "", f"{where}, and huggingface_hub is not installed to fetch it "
                                     f"(pip install huggingface_hub, or pass a config.json path)") from None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise SpecError(repo_id, "", f"{where}, and HF_HUB_OFFLINE is set")
    try:
        return Path(hf_hub_download(repo_id, CONFIG))
    except Exception as exc:              # offline, gated, unknown repository: one line, not a traceback
        raise SpecError(repo_id, "", f"{where}, and the Hub gave no config.json ({type(exc).__name__})") from None


def is_repo_id(name: str) -> bool:
    """Whether ``name`` reads as ``org/name`` and is not a file or folder here."""
    return bool(REPO_ID.match(name)) and not name.endswith((".yaml", ".yml", ".json")) and not os.path.exists(name)


def config_path(name: str) -> str:
    """The config.json a model folder or repository id stands for; any other name unchanged."""
    if os.path.isdir(name):
        config = Path(name) / CONFIG
        if not config.is_file():
            raise SpecError(name, "", f"expected a model folder holding {CONFIG} (or a spec file), found none")
        return str(config)
    if is_repo_id(name):
        cache = cache_dir()
        return str(_cached(name, cache) or _from_hub(name, cache))
    return name


def repo_of(config: Path) -> str | None:
    """``org/name`` of a config.json inside the cache's snapshot layout, else None."""
    parts = config.parts
    if len(parts) >= 4 and parts[-3] == "snapshots" and parts[-4].startswith("models--"):
        return parts[-4].removeprefix("models--").replace("--", "/", 1)
    return None
