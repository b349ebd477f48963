"""Every predict option is a sweep grid key, and a sweep row equals simulator.predict with the
same options (tp, pp, dp, ep, microbatches, draft model, draft tokens, acceptance, dtypes)."""
import csv
import math

import pytest

import simulator
from simulator.errors import SpecError
from simulator.explore.cost import usd_per_million_tokens
from simulator.explore.grid import load_grid
from simulator.explore.sweep import sweep
from simulator.specs import registry

GRID = """
models: [llama-3.1-8b, mixtral-8x7b]
hardware: [h100-sxm]
batch: [8, 16, 32]
prompt: [256, 2000]
output: [1, 2, 64]
weight_dtype: [bf16, fp8]
tp: [1, 2]
pp: [1, 2]
dp: [1, 2]
ep: [1, 2]
microbatches: [1, 2]
draft_model: [none, llama-3.2-1b]
draft_tokens: [3]
acceptance: [0.6, 0.9]
"""
METRICS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "energy_j", "tokens_per_j", "kv_cache_bytes",
           "memory_total_bytes", "usd_per_million_output_tokens")


def _predicted(row: dict) -> dict:
    draft = row["draft_model"] or None
    p = simulator.predict(model=row["model"], hardware=row["hardware"], stack=row["stack"], batch=int(row["batch"]),
                          prompt=int(row["prompt"]), output=int(row["output"]), weight_dtype=row["weight_dtype"],
                          activation_dtype=row["activation_dtype"], kv_dtype=row["kv_dtype"], tp=int(row["tp"]),
                          pp=int(row["pp"]), dp=int(row["dp"]), ep=int(row["ep"]),
                          microbatches=int(row["microbatches"]), draft_model=draft,
                          draft_tokens=int(row["draft_tokens"]) if draft else 4,
                          acceptance=float(row["acceptance"]) if draft else 0.7)
    cost = (usd_per_million_tokens(registry.hardware(row["hardware"]), p.devices, p.e2e_s, p.batch * p.output)
            if p.e2e_s is not None else None)
    return dict(ttft_s=p.ttft_s, tpot_s=p.tpot_s, e2e_s=p.e2e_s, output_tokens_per_s=p.output_tokens_per_s,
                energy_j=p.energy_j, tokens_per_j=p.tokens_per_j, kv_cache_bytes=p.memory.kv_cache_bytes,
                memory_total_bytes=p.memory.total_bytes, usd_per_million_output_tokens=cost,
                fits=str(p.memory.fits), devices=p.devices)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    (folder / "grid.yaml").write_text(GRID)
    summary = sweep(folder / "grid.yaml", folder / "out.csv")
    with open(folder / "out.csv", newline="") as f:
        return summary, list(csv.DictReader(f))


def test_every_option_reaches_the_rows(rows):
    summary, got = rows
    assert summary.written == len(got) > 0
    seen = {key: {r[key] for r in got} for key in ("tp", "pp", "dp", "ep", "microbatches", "draft_model", "acceptance")}
    assert seen["tp"] == seen["pp"] == seen["dp"] == seen["microbatches"] == {"1", "2"}
    assert seen["ep"] == {"1", "2"}                      # ep 2 only where the model has experts (mixtral)
    assert seen["draft_model"] == {"", "llama-3.2-1b"} and seen["acceptance"] >= {"0.6", "0.9"}


def test_rows_equal_predict_on_every_option(rows):
    _, got = rows
    step = max(1, len(got) // 400)                       # a spread sample over every configuration
    checked = 0
    for row in got[::step]:
        want = _predicted(row)
        assert row["fits"] == want["fits"] and int(row["devices"]) == want["devices"]
        for key in METRICS:
            expected, value = want[key], float(row[key])
            if expected is None:
                assert math.isnan(value), (key, row)
            else:
                assert value == pytest.approx(expected, rel=1e-9), (key, row)
        checked += 1
    assert checked >= 300


def test_speculative_rows_differ_from_plain(rows):
    _, got = rows
    key = ("model", "hardware", "weight_dtype", "tp", "pp", "dp", "ep", "microbatches", "batch", "prompt", "output")
    plain = {tuple(r[k] for k in key): r for r in got if not r["draft_model"]}
    spec = [r for r in got if r["draft_model"] and r["fits"] == "True" and int(r["output"]) > 1]
    assert spec
    assert any(float(r["tpot_s"]) != float(plain[tuple(r[k] for k in key)]["tpot_s"]) for r in spec)


def test_batch_that_does_not_split_is_a_grid_error(tmp_path):
    (tmp_path / "g.yaml").write_text("models: llama-3.1-8b\nhardware: h100-sxm\nbatch: [4, 6]\ndp: [1, 4]\n")
    with pytest.raises(SpecError, match=r"batch\.1.*divides, got 6"):
        load_grid(tmp_path / "g.yaml")


def test_predict_many_equals_predict():
    """simulator.predict_many: arrays in, one array per quantity out, each equal to predict."""
    b, s, n = [1, 4, 8, 8, 3], [128, 512, 2000, 2000, 100], [1, 16, 64, 65, 7]
    got = simulator.predict_many("mixtral-8x7b", "h100-sxm", batch=b, prompt=s, output=n, weight_dtype="fp8",
                                 tp=2, draft_model="llama-3.2-1b", draft_tokens=3, acceptance=0.8)
    for k in range(len(b)):
        p = simulator.predict(model="mixtral-8x7b", hardware="h100-sxm", batch=b[k], prompt=s[k], output=n[k],
                              weight_dtype="fp8", tp=2, draft_model="llama-3.2-1b", draft_tokens=3, acceptance=0.8)
        for key, want in (("ttft_s", p.ttft_s), ("tpot_s", p.tpot_s), ("energy_j", p.energy_j),
                          ("memory_total_bytes", p.memory.total_bytes)):
            value = got[key][k]
            assert (math.isnan(value) if want is None else value == pytest.approx(want, rel=1e-12)), (key, k)
        assert got["fits"][k] == float(p.memory.fits)
    assert all(a.flags.c_contiguous and a.shape == (len(b),) for a in got.values())


@pytest.mark.parametrize("kwargs, field", [(dict(batch=[1, 0]), "batch"), (dict(prompt=[1.5]), "prompt"),
                                           (dict(output=[-3]), "output"), (dict(tp=3), "tp")])
def test_predict_many_bad_input_names_the_field(kwargs, field):
    from simulator.errors import SimulatorError

    with pytest.raises(SimulatorError, match=field):
        simulator.predict_many("llama-3.1-8b", "h100-sxm", **kwargs)


def test_predict_many_splits_each_batch_on_its_own():
    """A batch the replicas do not split is NaN in its own row only; the others are predicted."""
    got = simulator.predict_many("llama-3.1-8b", "h100-sxm", batch=[3, 4, 8], prompt=256, output=16, dp=2)
    assert math.isnan(got["ttft_s"][0]) and got["fits"][0] == 0.0
    assert all(got["ttft_s"][1:] > 0) and list(got["fits"][1:]) == [1.0, 1.0]
