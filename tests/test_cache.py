"""simulator/cache.py: a kept value is returned while what it was built from is unchanged,
and built afresh when a file it read or a folder it listed changes, when the entry is
corrupt, or (uncached) when the cache folder cannot be written."""
import json
import os
import subprocess
import sys

import pytest

from simulator import cache

from conftest import ROOT


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_SWITCH, raising=False)
    return tmp_path / "cache"


def _counting(path):
    """A build that reads ``path`` and lists its folder, counting its calls."""
    calls = []

    def build():
        calls.append(1)
        return path.read_text(), sorted(os.listdir(path.parent))
    return build, calls


def test_a_kept_value_comes_back_until_the_file_it_read_changes(folder, tmp_path):
    spec = tmp_path / "in" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text("a: 1\n")
    build, calls = _counting(spec)
    assert cache.cached(("k",), build) == ("a: 1\n", ["spec.yaml"])
    assert cache.cached(("k",), build) == ("a: 1\n", ["spec.yaml"])
    assert len(calls) == 1
    spec.write_text("a: 2\n")                       # same size, same second: the hash tells
    assert cache.cached(("k",), build) == ("a: 2\n", ["spec.yaml"])
    assert len(calls) == 2
    assert cache.cached(("other",), build) and len(calls) == 3     # another key, another entry


def test_a_file_added_to_a_listed_folder_rebuilds(folder, tmp_path):
    spec = tmp_path / "in" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text("a: 1\n")
    build, calls = _counting(spec)
    cache.cached(("k",), build)
    (spec.parent / "new.yaml").write_text("b: 1\n")
    assert cache.cached(("k",), build) == ("a: 1\n", ["new.yaml", "spec.yaml"])
    assert len(calls) == 2


def test_a_corrupt_entry_is_ignored_and_replaced(folder, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("a: 1\n")
    build, calls = _counting(spec)
    cache.cached(("k",), build)
    (entry,) = folder.glob("*.pickle")
    for junk in (b"", b"not a pickle", entry.read_bytes()[:40]):
        entry.write_bytes(junk)
        assert cache.cached(("k",), build)[0] == "a: 1\n"
    assert len(calls) == 4
    assert cache.cached(("k",), build)[0] == "a: 1\n" and len(calls) == 4     # rewritten whole


def test_an_unwritable_folder_means_uncached_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(cache.ENV_DIR, str(blocker / "cache"))      # its parent is a file: mkdir fails, even as root
    spec = tmp_path / "spec.yaml"
    spec.write_text("a: 1\n")
    build, calls = _counting(spec)
    assert cache.cached(("k",), build)[0] == "a: 1\n"
    assert cache.cached(("k",), build)[0] == "a: 1\n"
    assert len(calls) == 2


def test_errors_pass_through_and_nothing_is_kept(folder):
    def fails():
        raise ValueError("bad")
    with pytest.raises(ValueError):
        cache.cached(("k",), fails)
    assert not list(folder.glob("*.pickle")) if folder.exists() else True


def test_switched_off(folder, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_SWITCH, "off")
    spec = tmp_path / "spec.yaml"
    spec.write_text("a: 1\n")
    build, calls = _counting(spec)
    cache.cached(("k",), build)
    cache.cached(("k",), build)
    assert len(calls) == 2 and not folder.exists()


def _predict(env, *args):
    cmd = [sys.executable, "-m", "simulator.cli.main", "predict", "--format", "json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return json.loads(done.stdout)


def test_llmsim_predict_answers_alike_cold_warm_and_after_a_spec_edit(tmp_path):
    """The console command (its own process) keeps its configuration on disk; a warm answer
    equals a cold one, and editing the hardware YAML changes the answer as without a cache."""
    env = {**os.environ, cache.ENV_DIR: str(tmp_path / "cache")}
    off = {**env, cache.ENV_SWITCH: "off"}
    spec = tmp_path / "device.yaml"
    spec.write_text((ROOT / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text())
    args = ("--hardware", str(spec), "--batch", "4", "--prompt", "512", "--output", "64")
    cold = _predict(env, *args)
    assert list((tmp_path / "cache").glob("*.pickle"))
    assert _predict(env, *args) == cold == _predict(off, *args)
    assert _predict(env, *args[:2], "--batch", "2") == _predict(off, *args[:2], "--batch", "2")   # another scenario
    text = spec.read_text()
    assert "capacity: 80 GiB" in text
    spec.write_text(text.replace("capacity: 80 GiB", "capacity: 40 GiB"))
    edited = _predict(env, *args)
    assert edited == _predict(off, *args)
    assert edited != cold


def test_the_oldest_entries_go_past_the_limit(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 2)
    spec = tmp_path / "spec.yaml"
    spec.write_text("a: 1\n")
    build, calls = _counting(spec)
    for age, key in enumerate(("a", "b", "c")):
        cache.cached((key,), build)
        os.utime(cache._entry_path((key,)), ns=(age * 10**9, age * 10**9))   # a clear order, whatever the clock's grain
    assert len(list(folder.glob("*.pickle"))) == 2 and not cache._entry_path(("a",)).exists()
    cache.cached(("c",), build)
    assert len(calls) == 3                          # the newest is kept


def test_the_key_reads_pydantic_s_files_without_importing_it(tmp_path):
    """An entry's key stamps pydantic's installed files (another version: another entry)
    without importing pydantic, which a warm process may not need."""
    code = ("import sys; from simulator import cache; cache._entry_path(('k',)); "
            "stamp = cache._installed_stamp(); "
            "print(int('pydantic' in sys.modules), sorted({s[0] for s in stamp}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split(None, 1) == ["0", "['pydantic', 'pydantic_core']\n"]


def test_the_import_system_s_listings_are_no_input(folder, tmp_path, monkeypatch):
    """A build that imports a module or looks up entry points (numba and pydantic do) lists
    sys.path's folders through the import system (the working directory under python -m):
    writing a file there (an --out) keeps the entry. A folder the build lists itself counts."""
    import importlib
    import importlib.metadata

    where = tmp_path / "path"
    where.mkdir()
    (where / "llmsim_probe_module.py").write_text("VALUE = 3\n")
    monkeypatch.syspath_prepend(str(where))
    calls = []

    def build():
        calls.append(1)
        sys.path_importer_cache.pop(str(where), None)           # a finder of its own: it lists the folder
        importlib.metadata.entry_points()
        return importlib.import_module("llmsim_probe_module").VALUE

    recorded = []
    monkeypatch.setattr(cache, "_depends", lambda files, folders, real=cache._depends: (
        recorded.append(set(folders)), real(files, folders))[1])
    assert cache.cached(("imports",), build) == 3 and str(where) not in recorded[0]
    (where / "out.csv").write_text("rows\n")
    assert cache.cached(("imports",), build) == 3 and len(calls) == 1
    sys.modules.pop("llmsim_probe_module", None)
