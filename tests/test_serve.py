"""The inference service (helpers.serve): its input checks in-process, then a real uvicorn process on
127.0.0.1 (a free port) that refuses each kind of bad input with a 4xx and a JSON message, keeps answering,
survives a bounded load run with zero errors, and is stopped by its PID."""
import asyncio
import importlib.util
import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")
httpx = pytest.importorskip("httpx")
from PIL import Image  # noqa: E402  (installed with the deploy extra)

from helpers import serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory) -> Path:
    """The small CNN (seeded, untrained: the service is under test, not the model) as an ONNX file."""
    torch.manual_seed(0)
    model = helpers.small_cnn().eval()
    program = torch.onnx.export(model, (torch.randn(2, 1, 28, 28),), dynamo=True, verbose=False,
                                input_names=["image"], dynamic_shapes={"input": {0: torch.export.Dim("batch")}})
    path = tmp_path_factory.mktemp("serve") / "cnn.onnx"
    program.save(str(path))
    return path


@pytest.fixture(scope="module")
def service(onnx_path):
    with serve.running(onnx_path) as (url, proc):
        yield url, proc
    assert proc.poll() is not None, "the service must be stopped when the block ends"


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return helpers.load_mnist_arrays("embedded")[2][:20]  # (20, 28, 28) uint8


def test_input_checks_in_process():
    good = np.full((28, 28), 0.5)
    assert serve.images_from_json(json.dumps(good.tolist()).encode()).shape == (1, 28, 28)
    assert serve.images_from_json(json.dumps({"image": [good.tolist()] * 3}).encode()).shape == (3, 28, 28)
    assert serve.images_from_png(png(np.zeros((28, 28), np.uint8))).shape == (1, 28, 28)
    for body, status in ((b"[1, 2", 400), (b"[[1, 2], [3]]", 422), (b'{"pixels": []}', 422), (b"[[true]]", 422)):
        with pytest.raises(serve.BadInput) as err:
            serve.images_from_json(body)
        assert err.value.status == status, body


def test_health(service):
    url, proc = service
    r = httpx.get(url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["input"][1:] == [1, 28, 28]


def test_json_png_and_raw_png_give_the_same_answer(service, digits):
    url, _ = service
    with httpx.Client(base_url=url) as client:
        by_json = client.post("/predict", json=(digits[0] / 255).tolist()).json()
        by_upload = client.post("/predict", files={"file": ("d.png", png(digits[0]), "image/png")}).json()
        by_body = client.post("/predict", content=png(digits[0]), headers={"content-type": "image/png"}).json()
        batch = client.post("/predict", json=(digits / 255).tolist()).json()
    assert by_json["digit"] == by_upload["digit"] == by_body["digit"] == batch["digits"][0]
    assert len(by_json["probabilities"]) == 10 and abs(sum(by_json["probabilities"]) - 1) < 1e-4
    assert np.allclose(by_json["probabilities"], by_upload["probabilities"], atol=1e-5)
    assert len(batch["digits"]) == len(digits)


def chunked(data: bytes, size: int = 8192):
    for i in range(0, len(data), size):
        yield data[i:i + size]


BAD = {  # name: (request keywords, expected status, a word the message must contain)
    "wrong shape": (dict(json=np.zeros((28, 27)).tolist()), 422, "shape"),
    "wrong rank": (dict(json=np.zeros((2, 2, 28, 28)).tolist()), 422, "shape"),
    "ragged rows": (dict(json=[[0.0] * 28] * 27 + [[0.0] * 5]), 422, "rectangular"),
    "strings": (dict(json=[["a"] * 28] * 28), 422, "numbers"),
    "booleans": (dict(json=[[True] * 28] * 28), 422, "numbers"),
    "not JSON": (dict(content=b"[[0, 1", headers={"content-type": "application/json"}), 400, "JSON"),
    "NaN": (dict(content=json.dumps([[float("nan")] * 28] * 28), headers={"content-type": "application/json"}),
            422, "NaN"),
    "infinity": (dict(content=json.dumps([[float("inf")] * 28] * 28), headers={"content-type": "application/json"}),
                 422, "infinite"),
    "out of range": (dict(json=np.full((28, 28), 255.0).tolist()), 422, "[0, 1]"),
    "not an image": (dict(files={"file": ("x.png", b"this is not a PNG", "image/png")}), 415, "not an image"),
    "wrong image size": (dict(files={"file": ("x.png", png(np.zeros((32, 32), np.uint8)), "image/png")}), 422,
                         "28 x 28"),
    "no file field": (dict(files={"other": ("x.png", b"x", "image/png")}), 422, "'file'"),
    "oversized": (dict(json=np.zeros((400, 28, 28)).tolist()), 413, "limit"),
    "batch too large": (dict(json=np.zeros((65, 28, 28)).tolist()), 422, "batch"),
    "oversized, chunked": (dict(content=chunked(b"[" + b"0," * 600_000 + b"0]"),
                            headers={"content-type": "application/json"}), 413, "limit"),
    "content type": (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "content type"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_gets_a_4xx_with_a_message_and_the_service_keeps_answering(service, digits, name):
    url, proc = service
    request, status, word = BAD[name]
    with httpx.Client(base_url=url) as client:
        r = client.post("/predict", **request)
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        assert word in r.json()["detail"], (name, r.json())
        good = client.post("/predict", json=(digits[1] / 255).tolist())
    assert good.status_code == 200 and 0 <= good.json()["digit"] <= 9
    assert proc.poll() is None, "the service died"


def load_generator():
    spec = importlib.util.spec_from_file_location("deploy_benchmark", ROOT / "benchmarks" / "deploy_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["json", "png"])
def test_bounded_load_run_has_zero_errors(service, digits, kind):
    url, proc = service
    bench = load_generator()
    payloads = bench.json_payloads(digits) if kind == "json" else bench.png_payloads(digits)
    n = 2000 if kind == "json" else 500
    result = asyncio.run(bench.load(url, payloads, n=n, concurrency=16))
    assert result["failures"] == 0, result["first_failure"]
    assert result["n"] == n and result["rps"] > 0  # speed is the benchmark's business, not a test's
    assert proc.poll() is None


def test_the_load_generator_counts_refused_requests_as_failures(service):
    url, proc = service
    bench = load_generator()
    bad = [{"content": b"[1, 2", "headers": {"content-type": "application/json"}}]
    result = asyncio.run(bench.load(url, bad, n=40, concurrency=4))
    assert result["failures"] == 40 and result["first_failure"].startswith("400 ")
    assert proc.poll() is None


def test_running_stops_the_process_by_pid_and_frees_the_port(onnx_path):
    port = serve.free_port()
    with serve.running(onnx_path, port=port) as (url, proc):
        assert httpx.get(url + "/health").status_code == 200
        pid = proc.pid
    assert proc.returncode is not None and proc.pid == pid
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "nothing may still listen on the port"
