"""--model as a model folder or a Hugging Face org/name resolved from a local cache the test
builds (the snapshot layout), and `specs list --models`."""
import json

import pytest
import yaml

from simulator.cli.main import main
from simulator.specs import registry
from simulator.specs.hf_hub import cache_dir

CONFIG = yaml.safe_load((registry.data_root() / "model_specs" / "llama-3.2-1b.yaml").read_text())["config"]


def _snapshot(hub, repo: str, revision: str, config: dict, main_ref: bool = True):
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "snapshots" / revision).mkdir(parents=True)
    (folder / "snapshots" / revision / "config.json").write_text(json.dumps(config))
    if main_ref:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(revision)
    return folder


def test_org_name_resolves_from_hf_hub_cache(tmp_path, monkeypatch):
    _snapshot(tmp_path / "hub", "acme/tiny-llama", "0123abcd", CONFIG)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    name, arch, spec = registry.model("acme/tiny-llama")
    assert name == "acme/tiny-llama" and spec is None and arch == registry.model("llama-3.2-1b")[1]


def test_org_name_resolves_under_hf_home_and_follows_refs_main(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_dir() == tmp_path / "hf" / "hub"
    folder = _snapshot(tmp_path / "hf" / "hub", "acme/two-revisions", "old", {**CONFIG, "num_hidden_layers": 2})
    (folder / "snapshots" / "new").mkdir()
    (folder / "snapshots" / "new" / "config.json").write_text(json.dumps({**CONFIG, "num_hidden_layers": 3}))
    assert registry.model("acme/two-revisions")[1].num_layers == 2          # refs/main names "old"


def test_org_name_predicts_from_the_cli(tmp_path, monkeypatch, capsys):
    _snapshot(tmp_path / "hub", "acme/tiny-llama", "r1", CONFIG)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["predict", "--model", "acme/tiny-llama", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "acme/tiny-llama"


def test_org_name_missing_from_cache_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["predict", "--model", "acme/absent"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "acme/absent" in err and "not in the Hugging Face cache" in err


def test_model_folder_is_its_config_json(tmp_path, capsys):
    folder = tmp_path / "My-Model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    name, arch, _ = registry.model(str(folder))
    assert name == "My-Model" and arch.num_layers == 16
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", str(empty)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_specs_list_models_lists_every_built_in_model(capsys):
    assert main(["specs", "list", "--models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == set(registry.model_index())
    assert rows["gpt-oss-120b"][1:3] == ["gpt_oss", "117"] and "mxfp4" in rows["gpt-oss-120b"]
    assert main(["specs", "list"]) == 0 and "h100-sxm" in capsys.readouterr().out      # hardware as before
