"""Published serving benchmarks re-simulated (accuracy/published_serving.py, `llmsim validate`)."""
import math

import pytest

from simulator.accuracy import published_serving as ps
from simulator.errors import SpecError

FILES = sorted(ps.root().glob("*.yaml"))


def test_each_committed_file_loads_and_every_point_is_predicted():
    assert len(FILES) >= 2
    for path in FILES:
        f, _, _ = ps.load(path)
        rows = ps.compare_file(path)
        assert len(rows) == sum(len(p.published()) for p in f.points)
        for r in rows:
            assert math.isfinite(r["predicted"]) and r["predicted"] > 0
            assert r["error"] == pytest.approx((r["predicted"] - r["published"]) / r["published"])


def test_the_light_load_throughput_follows_the_offered_load():
    """A closed loop of 4 clients or a 16/s Poisson stream is far from saturation: the requests
    per second are set by the load (what the client sends), so the simulation must match them
    closely whatever its latency errors."""
    rows = [r for p in FILES for r in ps.compare_file(p)
            if r["metric"] == "requests_per_s" and r["load"] in ("concurrency 4", "rate 16")]
    assert len(rows) == 2 and all(abs(r["error"]) < 0.05 for r in rows)


def _write(tmp_path, text):
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    return path


GOOD = """source: test
stack: vllm
model: llama-3.2-1b
hardware: h100-sxm
prompt: 128
output: uniform:16:32
requests: 20
points:
  - {concurrency: 2, requests_per_s: 5.0, ttft_p50_s: 0.01}
  - {rate: inf, tpot_mean_s: 0.002}
"""


def test_a_small_file_runs_both_load_kinds(tmp_path):
    rows = ps.compare_file(_write(tmp_path, GOOD))
    assert [r["load"] for r in rows] == ["concurrency 2", "concurrency 2", "rate inf"]


@pytest.mark.parametrize("edit, field", [
    (("requests_per_s: 5.0", "requests_per_s: -5.0"), "points.0.requests_per_s"),
    (("ttft_p50_s", "ttft_p42_s"), "points.0.ttft_p42_s"),
    (("{rate: inf,", "{rate: inf, concurrency: 3,"), "points.1"),
    (("{rate: inf, tpot_mean_s: 0.002}", "{rate: 4}"), "points.1"),
    (("prompt: 128", "prompt: -128"), "prompt"),
    (("output: uniform:16:32", "output: uniform:32:16"), "output"),
    (("stack: vllm\n", ""), "stack"),
    (("requests: 20", "requests: 2.5"), "requests"),
    (("points:", "policy: {max_seq: 4}\npoints:"), "policy.max_seq"),
    (("source: test", "source: test\nsoucre: typo"), "soucre"),
])
def test_a_bad_file_names_its_field(tmp_path, edit, field):
    with pytest.raises(SpecError) as err:
        ps.load(_write(tmp_path, GOOD.replace(*edit)))
    assert err.value.field == field and str(err.value).startswith(str(tmp_path))


def test_validate_reports_them_in_json(cli):
    import json

    code, out, _ = cli(["validate", "--no-serving", "--hardware", "h200-sxm", "--format", "json"])
    assert code == 0
    data = json.loads(out)["published_serving"]
    assert data["points"] and {"throughput", "ttft", "tpot"} <= set(data["summary"])
