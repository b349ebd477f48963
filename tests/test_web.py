"""`llmsim ui`'s JSON API: each answer is byte for byte what the CLI prints for the same
options; bad input is HTTP 400 with the CLI's one line; uploads are capped and read as
data; the API takes names, never paths."""
import io
import json

import pytest

pytest.importorskip("flask", reason="the web extra (flask) is not installed")
pytest.importorskip("plotly", reason="the web extra (plotly) is not installed")

from simulator.specs import registry
from simulator.web.app import MAX_SWEEP_SCENARIOS, create_app
from simulator.web.uploads import MAX_UPLOAD_BYTES

SPEC = registry.hardware_index()["mi300x"]


@pytest.fixture(scope="module")
def client():
    app = create_app()
    yield app.test_client()
    app.extensions["llmsim_uploads"].close()


def _options(query: dict) -> list[str]:
    return [part for key, value in query.items() for part in (f"--{key.replace('_', '-')}", str(value))]


@pytest.mark.parametrize("command, query", [
    ("predict", {}),
    ("predict", {"model": "llama-3.1-8b", "hardware": "h100-sxm", "batch": 8, "prompt": 1024, "output": 128}),
    ("predict", {"model": "llama-3.1-70b", "hardware": "h100-sxm", "tp": 4, "weight_dtype": "fp8",
                 "activation-dtype": "fp8", "batch": 16}),
    ("predict", {"model": "llama-3.1-8b", "hardware": "h100-sxm", "draft_model": "llama-3.2-1b", "batch": 1}),
    ("predict", {"model": "llama-3.1-70b", "hardware": "rtx-4090"}),                 # does not fit: nulls
    ("compare", {"model": "llama-3.1-8b", "hardware": "h100-sxm,mi300x,tpu-v5e", "output": 64}),
    ("roofline", {"model": "llama-3.1-8b", "hardware": "mi300x", "batch": 2}),
])
def test_api_answers_exactly_what_the_cli_prints(client, cli, command, query):
    code, out, _ = cli([command, *_options(query), "--format", "json"])
    response = client.get(f"/api/{command}", query_string=query)
    assert code == 0 and response.status_code == 200 and response.mimetype == "application/json"
    assert response.data == out.encode()


@pytest.mark.parametrize("command, query", [
    ("predict", {"batch": 0}),
    ("predict", {"batch": "eight"}),
    ("predict", {"hardware": "h100-sxn"}),
    ("predict", {"tp": 3}),
    ("predict", {"weight_dtype": "fp7"}),
    ("predict", {"model": "llama-3.1-70b", "hardware": "h100-sxm", "pp": 81}),
    ("compare", {"hardware": "h100-sxm,,mi300x"}),
    ("compare", {}),
    ("roofline", {"draft_model": "llama-3.2-1b"}),
])
def test_bad_input_is_400_with_the_cli_line(client, cli, command, query):
    code, out, err = cli([command, *_options(query), "--format", "json"])
    response = client.get(f"/api/{command}", query_string=query)
    assert code == 2 and out == ""
    assert response.status_code == 400 and response.json == {"error": err.rstrip("\n")}


@pytest.mark.parametrize("query, message", [
    ({"model": "/etc/passwd"}, "argument --model: the web app takes built-in names and uploaded files"),
    ({"hardware": "h100-sxm,../x.yaml"}, "argument --hardware: the web app takes built-in names"),
    ({"hardware": str(SPEC)}, "not paths"),
    ({"plot": "x.png"}, "unknown parameter 'plot'"),
    ({"format": "table"}, "unknown parameter 'format'"),
])
def test_no_paths_no_files_written(client, query, message):
    response = client.get("/api/predict", query_string=query)
    assert response.status_code == 400 and message in response.json["error"]


def test_uploaded_spec_is_a_name(client, cli):
    upload = client.post("/api/upload", data={"kind": "hardware", "file": (io.BytesIO(SPEC.read_bytes()), "my-gpu.yaml")})
    assert upload.status_code == 200 and upload.json["label"].startswith("mi300x (upload-")
    response = client.get("/api/predict", query_string={"hardware": upload.json["name"], "batch": 4})
    code, out, _ = cli(["predict", "--hardware", str(SPEC), "--batch", "4", "--format", "json"])
    assert response.data == out.encode()


def test_uploaded_config_json_is_a_model(client):
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 1024, "intermediate_size": 4096,
              "num_attention_heads": 16, "num_key_value_heads": 4, "num_hidden_layers": 8, "vocab_size": 32000,
              "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
    upload = client.post("/api/upload", data={"kind": "model", "file": (io.BytesIO(json.dumps(config).encode()),
                                                                         "config.json")})
    assert upload.status_code == 200, upload.json
    response = client.get("/api/predict", query_string={"model": upload.json["name"], "batch": 2})
    assert response.status_code == 200 and response.json["model"] == upload.json["name"]


@pytest.mark.parametrize("kind, name, content, status, message", [
    ("hardware", "big.yaml", b"#" * (2 * MAX_UPLOAD_BYTES), 413, "exceeds 1,048,576 bytes"),
    ("hardware", "big.yaml", b"#" * (MAX_UPLOAD_BYTES + 10), 400, "uploads are capped at 1,048,576"),
    ("hardware", "bad.yaml", b"name: [1", 400, "bad.yaml: malformed YAML"),
    ("hardware", "evil.py", b"import os", 400, "a hardware upload must end .yaml or .yml"),
    ("model", "x.yaml", b"!!python/object/apply:os.system ['touch /tmp/pwned']", 400, "x.yaml"),
    ("script", "x.yaml", b"a: 1", 400, "kind: expected model or hardware"),
])
def test_bad_uploads_are_refused(client, kind, name, content, status, message):
    response = client.post("/api/upload", data={"kind": kind, "file": (io.BytesIO(content), name)})
    assert response.status_code == status and message in response.json["error"]
    assert "llmsim-ui-" not in response.json["error"]            # an upload is named by its token, not its folder


GRID = "models: [llama-3.1-8b, llama-3.2-1b]\nhardware: [h100-sxm, tpu-v5e]\nbatch: [1, 8]\nprompt: [128, 512]\n"


def test_sweep_answers_the_cli_rows(client, cli, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    code, out, _ = cli(["sweep", str(grid)])
    for response in (client.post("/api/sweep", data=GRID), client.get("/api/sweep", query_string={"grid": GRID})):
        assert code == 0 and response.status_code == 200 and response.mimetype == "text/csv"
        assert response.data == out.encode()


@pytest.mark.parametrize("grid, message", [
    ("models: [llama-3.1-8b]\nhardware: [/etc/hosts.yaml]\n", "not paths"),
    ("models: [llama-3.1-8b]\nhardware: [h100-sxm]\nbatch: {from: 1, to: 200000, step: 1}\n",
     f"the web API sweeps at most {MAX_SWEEP_SCENARIOS:,}"),
    ("models: [llama-3.1-8b]\n", "hardware"),
    ("", "expected a grid file"),
])
def test_bad_sweeps_are_400(client, grid, message):
    response = client.post("/api/sweep", data=grid)
    assert response.status_code == 400 and message in response.json["error"]


def test_report_view_is_the_reports(client):
    from simulator.report.html.data import report_data
    from simulator.report.html.view import build
    from simulator.report.jsontext import plain
    from simulator.specs.workload import workload

    response = client.get("/api/report", query_string={"hardware": "h100-sxm,tpu-v5e", "batch": 2, "output": 16})
    expected = build(report_data("llama-3.1-8b", ["h100-sxm", "tpu-v5e"], "pytorch-ref",
                                 workload(batch=2, output=16)))
    assert response.status_code == 200 and response.json == json.loads(json.dumps(plain(expected)))


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and b'<script src="/static/views.js">' in page.data
    for name, size in (("plotly.min.js", 1_000_000), ("views.js", 1_000), ("ui.js", 1_000)):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and len(response.data) > size and response.mimetype == "text/javascript"
    assert client.get("/static/page.py").status_code == 404
    assert client.get("/static/..%2Fpage.py").status_code == 404
    names = client.get("/api/names").json
    assert "llama-3.1-8b" in names["models"] and "h100-sxm" in names["hardware"] and "ideal" in names["stacks"]


def test_ui_binds_to_localhost_by_default_and_refuses_a_bad_port(cli):
    from simulator.cli.main import build_parser

    args = build_parser("ui").parse_args(["ui"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    code, out, err = cli(["ui", "--port", "70000"])
    assert code == 2 and err.count("\n") == 1 and "argument --port" in err


def test_ui_says_when_its_port_is_taken(cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = cli(["ui", "--port", str(taken.getsockname()[1])])
    assert code == 2 and err.startswith("llmsim: error: <arguments>: --port: cannot listen on 127.0.0.1:")


def test_without_flask_the_ui_says_so(cli, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flask" else real(name, *a))
    code, _, err = cli(["ui"])
    assert code == 2 and err == "llmsim: error: llmsim ui needs flask and plotly: pip install 'llmsim[web]'\n"


@pytest.mark.parametrize("query", [
    {"model": "llama-3.1-8b", "hardware": "h100-sxm", "rate": "1,8", "requests": 200},
    {"hardware": "mi300x", "concurrency": 4, "requests": 100, "eager": "1", "ttft_slo": "200 ms"},
])
def test_serving_answers_exactly_what_the_cli_prints(client, cli, query):
    argv = [p for k, v in query.items() for p in ((f"--{k.replace('_', '-')}",) if k == "eager"
                                                  else (f"--{k.replace('_', '-')}", str(v)))]
    code, out, _ = cli(["serving", *argv, "--format", "json"])
    response = client.get("/api/serving", query_string=query)
    assert code == 0 and response.status_code == 200 and response.data == out.encode()


@pytest.mark.parametrize("query, message", [
    ({"rate": "0"}, "argument --rate: expected rates > 0"),
    ({"trace": "x.jsonl"}, "unknown parameter 'trace'"),
    ({"prompt_dist": "file:/etc/passwd"}, "the web app reads no files"),
    ({"requests": "1000000"}, "at most 20,000 requests"),
    ({"eager": "no"}, "argument --eager: a switch"),
])
def test_serving_bad_input(client, query, message):
    response = client.get("/api/serving", query_string=query)
    assert response.status_code == 400 and message in response.json["error"]


def test_a_sweep_leaves_no_file_behind(client):
    store = client.application.extensions["llmsim_uploads"]
    import pathlib
    before = sorted(pathlib.Path(store.folder).iterdir())
    assert client.post("/api/sweep", data=GRID).status_code == 200
    assert client.post("/api/sweep", data="models: [nope]\nhardware: [h100-sxm]\n").status_code == 400
    assert sorted(pathlib.Path(store.folder).iterdir()) == before
