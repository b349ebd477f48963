"""simulator.predict's kept configurations are checked with one stat per spec file
(registry.located/unchanged): a file edited, a path that now means another file (another
working directory) or an index listed again all fall back to resolving the names."""
import os

import simulator
from simulator import api
from simulator.specs import registry

ARGS = dict(model="llama-3.2-1b", batch=1, prompt=512, output=64)


def _device(folder, bandwidth="3.35 TB/s", name="h100-sxm"):
    text = (registry.data_root() / "hardware_specs" / "gpu" / "h100-sxm.yaml").read_text()
    folder.mkdir(exist_ok=True)
    path = folder / "device.yaml"
    path.write_text(text.replace("bandwidth: 3.35 TB/s", f"bandwidth: {bandwidth}").replace("name: h100-sxm",
                                                                                           f"name: {name}"))
    return path


def test_a_kept_configuration_answers_without_resolving_names(monkeypatch):
    first = simulator.predict(hardware="h100-sxm", **ARGS)
    monkeypatch.setattr(api, "resolve_model", lambda *_: (_ for _ in ()).throw(AssertionError("resolved")))
    again = simulator.predict(hardware="h100-sxm", **ARGS)
    assert again.model_dump_json() == first.model_dump_json()


def test_a_relative_path_from_another_folder_is_another_file(tmp_path, monkeypatch):
    _device(tmp_path / "a", name="slow")
    _device(tmp_path / "b", bandwidth="6.7 TB/s", name="fast")
    monkeypatch.chdir(tmp_path / "a")
    slow = simulator.predict(hardware="device.yaml", **ARGS)
    monkeypatch.chdir(tmp_path / "b")
    fast = simulator.predict(hardware="device.yaml", **ARGS)
    assert (slow.hardware, fast.hardware) == ("slow", "fast") and fast.tpot_s < slow.tpot_s


def test_an_edit_keeping_size_and_second_is_seen(tmp_path):
    path = _device(tmp_path, name="aaaa")
    before = simulator.predict(hardware=str(path), **ARGS)
    stat = os.stat(path)
    path.write_text(path.read_text().replace("name: aaaa", "name: bbbb"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))          # same size and mtime: ctime still moves
    assert simulator.predict(hardware=str(path), **ARGS).hardware == "bbbb" != before.hardware


def test_listing_an_index_again_rechecks(tmp_path):
    kept_options = (None, "bf16", "bf16", 1, 1, 1, 1, 1, None, 4, 0.7)
    kept = api.configured_for("llama-3.2-1b", "h100-sxm", "pytorch-ref", 1, 512, 64, kept_options)
    assert all(map(registry.unchanged, kept._located))
    registry.hardware_index.cache_clear()                # as when a name the last listing lacked is looked up
    assert not all(map(registry.unchanged, kept._located))
    assert not kept.fresh()                              # the specs were read again: new objects
    again = api.configured_for("llama-3.2-1b", "h100-sxm", "pytorch-ref", 1, 512, 64, kept_options)
    assert again is not kept and again.fresh() and all(map(registry.unchanged, again._located))
    assert again.predict(1, 512, 64).model_dump_json() == kept.predict(1, 512, 64).model_dump_json()


def test_the_evaluator_builds_every_prediction_field_in_declared_order():
    """engine/predict.py builds a Prediction's dict itself (result.built): the fields must be
    the model's, in its order, with the same JSON as the validating constructor gives."""
    from simulator.engine import predict as engine
    from simulator.engine.result import MemoryReport, Prediction, field_names

    assert engine._FIELDS == field_names(Prediction) == tuple(Prediction.model_fields)
    for p in (simulator.predict(hardware="h100-sxm", **ARGS), simulator.predict(hardware="h100-sxm", batch=4096,
                                                                                 model="llama-3.1-8b")):
        assert tuple(p.__dict__)[:len(engine._FIELDS)] == engine._FIELDS         # fits and does not fit
        assert tuple(p.memory.__dict__) == tuple(MemoryReport.model_fields)
    evaluator = simulator.configure("llama-3.1-8b", "h100-sxm").evaluator
    assert tuple(evaluator._values(4, 5, 6, (None,) * len(engine._TIMED), None, None, "", None)) == engine._FIELDS
    again = Prediction.model_validate(p.model_dump(exclude={"breakdown"}))
    assert again.model_dump_json(exclude={"breakdown"}) == p.model_dump_json(exclude={"breakdown"})


def test_a_new_scenario_of_a_configuration_is_checked_by_the_workloads_own_rules():
    """Configured.predict checks an unseen (B, S, N) with the Workload fields' validators and
    its cross-field check only (api.scenario_workload): the same workload as workload()
    builds, and the same errors (through workload() itself) for bad values."""
    import pytest

    from simulator.errors import WorkloadError
    from simulator.specs.workload import workload

    for model, options in (("llama-3.1-8b", {"dp": 2}), ("llama-3.1-8b-awq", {}), ("llama-3.1-8b", {"tp": 2})):
        c = simulator.configure(model, "h100-sxm", **options)
        w = api.scenario_workload(c._parts[2], 4, 100, 10, c.options)
        full = api.checkpoint_weights(c.model, workload(**c.options, batch=4, prompt=100, output=10))
        assert w == full and w.model_fields_set == full.model_fields_set
    c = simulator.configure("llama-3.1-8b", "h100-sxm", dp=2)
    for bad in ((3, 100, 10), (0, 100, 10), (True, 100, 10), (2, 2**62, 2**62), (2, 100, 1.0)):
        assert api.scenario_workload(c._parts[2], *bad, c.options) is None
        with pytest.raises(WorkloadError) as err:
            c.predict(*bad)
        with pytest.raises(WorkloadError) as direct:
            workload(**c.options, batch=bad[0], prompt=bad[1], output=bad[2])
        assert str(err.value) == str(direct.value)


def _watched_prediction(root, monkeypatch):
    """A copy of the spec folders as the registry's data root, and a kept configuration of
    its h100-sxm whose fresh() has watched its files (simulator/freshness.py)."""
    import shutil

    for folder in ("hardware_specs", "model_specs"):
        shutil.copytree(registry.data_root() / folder, root / folder)
    monkeypatch.setattr(registry, "_DATA_ROOT", root)
    monkeypatch.setattr(api, "_configured", {})          # none kept from the real data root
    first = simulator.predict(hardware="h100-sxm", **ARGS)
    simulator.predict(hardware="h100-sxm", **ARGS)                  # the first fresh(): watches, then stats
    device = str(root / "hardware_specs" / "gpu" / "h100-sxm.yaml")
    kept = next(c for c in api._configured.values() if c._located and c._located[1][0] == device)
    return first, kept, root / "hardware_specs" / "gpu" / "h100-sxm.yaml"


def _renamed(path, old, new):
    path.write_text(path.read_text().replace(f"name: {old}", f"name: {new}"))


def test_a_watched_configuration_sees_an_edit_and_a_file_replaced(tmp_path, monkeypatch):
    from simulator import freshness

    first, kept, path = _watched_prediction(tmp_path, monkeypatch)
    if freshness.epoch() is None:                # no inotify here: fresh() stats every call (tested above)
        return
    assert kept._epoch is not None and kept.fresh()
    stat = os.stat(path)
    path.write_text(path.read_text().replace("bandwidth: 3.35 TB/s", "bandwidth: 3.36 TB/s"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = simulator.predict(hardware="h100-sxm", **ARGS)
    assert second.tpot_s < first.tpot_s
    simulator.predict(hardware="h100-sxm", **ARGS)
    replacement = tmp_path / "new.yaml"
    replacement.write_text(path.read_text().replace("bandwidth: 3.36 TB/s", "bandwidth: 6.7 TB/s"))
    os.replace(replacement, path)                # an editor's atomic save: another inode at the path
    assert simulator.predict(hardware="h100-sxm", **ARGS).tpot_s < second.tpot_s


def test_a_forked_child_watches_with_a_queue_of_its_own(tmp_path, monkeypatch):
    from simulator import freshness

    first, kept, path = _watched_prediction(tmp_path, monkeypatch)
    old = freshness._state["queue"]
    if old is None:
        return
    before = freshness.epoch()
    freshness._after_fork()                      # what a child runs (os.register_at_fork)
    new = freshness._state["queue"]
    assert new is not old and new.paths == old.paths and freshness.epoch() > before
    assert kept.fresh() and kept._epoch == freshness.epoch()      # the count moved: stat'ed again
    path.write_text(path.read_text().replace("bandwidth: 3.35 TB/s", "bandwidth: 6.7 TB/s"))
    assert simulator.predict(hardware="h100-sxm", **ARGS).tpot_s < first.tpot_s


def test_without_a_watcher_every_call_stats(tmp_path, monkeypatch):
    from simulator import freshness

    monkeypatch.setitem(freshness._state, "queue", None)
    monkeypatch.setitem(freshness._state, "failed", True)
    first, kept, path = _watched_prediction(tmp_path, monkeypatch)
    assert kept._epoch is None and kept.fresh()
    path.write_text(path.read_text().replace("bandwidth: 3.35 TB/s", "bandwidth: 6.7 TB/s"))
    assert simulator.predict(hardware="h100-sxm", **ARGS).tpot_s < first.tpot_s


def test_threads_sharing_a_configuration_get_each_scenarios_own_prediction():
    """Threads predicting at once through one kept configuration (its reused per-batch
    workspaces, or fresh ones when busy) give what one thread gives."""
    from concurrent.futures import ThreadPoolExecutor

    scenarios = [(b, s, n) for b in (1, 2, 8, 32) for s in (64, 700, 3000) for n in (1, 2, 90)] * 3
    one = {x: simulator.predict(hardware="h100-sxm", model="llama-3.2-1b", batch=x[0], prompt=x[1], output=x[2])
           .model_dump_json(exclude={"breakdown"}) for x in scenarios}
    with ThreadPoolExecutor(4) as pool:
        many = list(pool.map(lambda x: simulator.predict(hardware="h100-sxm", model="llama-3.2-1b", batch=x[0],
                                                         prompt=x[1], output=x[2]).model_dump_json(
                                                             exclude={"breakdown"}), scenarios))
    assert many == [one[x] for x in scenarios]
