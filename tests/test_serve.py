"""The inference service (helpers.serve): its input checks in-process, then a real uvicorn process on
127.0.0.1 (a free port) that refuses each kind of bad input with a 4xx and a JSON message, keeps answering,
survives a bounded load run with zero errors, runs several worker processes, and is stopped by its PID;
and the figure drawn from the open-loop benchmark's JSON. Hostile clients: tests/test_serve_hostile.py."""
import asyncio
import importlib.util
import io
import json
import socket
import struct
import time
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
_spec = importlib.util.spec_from_file_location("loadgen", ROOT / "benchmarks" / "loadgen.py")
loadgen = importlib.util.module_from_spec(_spec)  # benchmarks/loadgen.py, the load generator (not a package)
_spec.loader.exec_module(loadgen)


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
    """The parsers alone: good bodies give (N, 28, 28) float32 in [0, 1], bad ones a BadInput with a status."""
    good = np.full((28, 28), 0.5)
    assert serve.images_from_json(json.dumps(good.tolist()).encode()).shape == (1, 28, 28)
    assert serve.images_from_json(json.dumps({"image": [good.tolist()] * 3}).encode()).shape == (3, 28, 28)
    assert serve.images_from_png(png(np.zeros((28, 28), np.uint8))).shape == (1, 28, 28)
    for body, status in ((b"[1, 2", 400), (b"[[1, 2], [3]]", 422), (b'{"pixels": []}', 422), (b"[[true]]", 422)):
        with pytest.raises(serve.BadInput) as err:
            serve.images_from_json(body)
        assert err.value.status == status, body


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_health(service):
    url, proc = service
    r = httpx.get(url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["input"][1:] == [1, 28, 28]


@pytest.mark.slow
@pytest.mark.timeout(180)
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
    "not an image": (dict(files={"file": ("x.png", b"this is not a PNG", "image/png")}), 415, "not a PNG"),
    "deeply nested JSON": (dict(content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"}),
                           422, "nested"),
    "PNG bomb": (dict(content=serve.PNG_SIGNATURE + struct.pack(">I4sII", 13, b"IHDR", 100_000, 100_000) + bytes(9),
                      headers={"content-type": "image/png"}), 413, "64 x 64"),
    "truncated PNG": (dict(content=png(np.full((28, 28), 7, np.uint8))[:-30], headers={"content-type": "image/png"}),
                      400, "truncated"),
    "wrong image size": (dict(files={"file": ("x.png", png(np.zeros((32, 32), np.uint8)), "image/png")}), 422,
                         "28 x 28"),
    "no file field": (dict(files={"other": ("x.png", b"x", "image/png")}), 422, "'file'"),
    "oversized": (dict(json=np.zeros((400, 28, 28)).tolist()), 413, "limit"),
    "batch too large": (dict(json=np.zeros((65, 28, 28)).tolist()), 422, "batch"),
    "oversized, chunked": (dict(content=chunked(b"[" + b"0," * 600_000 + b"0]"),
                            headers={"content-type": "application/json"}), 413, "limit"),
    "content type": (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "content type"),
}


@pytest.mark.slow
@pytest.mark.timeout(180)
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


def json_payloads(raw: np.ndarray) -> list[dict]:
    return [{"content": json.dumps((img / 255).round(4).tolist()).encode(),
             "headers": {"content-type": "application/json"}} for img in raw]


def png_payloads(raw: np.ndarray) -> list[dict]:
    return [{"files": {"file": ("digit.png", png(img), "image/png")}} for img in raw]


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["json", "png"])
def test_bounded_load_run_has_zero_errors(service, digits, kind):
    url, proc = service
    payloads = json_payloads(digits) if kind == "json" else png_payloads(digits)
    n = 2000 if kind == "json" else 500
    result = asyncio.run(loadgen.load(url, payloads, n=n, concurrency=16))
    assert result["failures"] == 0, result["first_failure"]
    assert result["n"] == n and result["rps"] > 0  # speed is the benchmark's business, not a test's
    assert proc.poll() is None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_load_generator_counts_refused_requests_as_failures(service):
    url, proc = service
    bad = [{"content": b"[1, 2", "headers": {"content-type": "application/json"}}]
    result = asyncio.run(loadgen.load(url, bad, n=40, concurrency=4))
    assert result["failures"] == 40 and result["first_failure"].startswith("400 ")
    assert proc.poll() is None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_running_stops_the_process_by_pid_and_frees_the_port(onnx_path):
    port = serve.free_port()
    with serve.running(onnx_path, port=port) as (url, proc):
        assert httpx.get(url + "/health").status_code == 200
        pid = proc.pid
    assert proc.returncode is not None and proc.pid == pid
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "nothing may still listen on the port"


def children(pid: int) -> set[int]:
    """The PIDs whose parent is ``pid`` (read from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process has just exited
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc (Linux)")
def test_workers_run_several_processes_that_stop_with_the_pid(onnx_path, digits):
    with serve.running(onnx_path, workers=2) as (url, proc):
        deadline = time.monotonic() + 60
        while len(workers := children(proc.pid)) < 2:
            assert time.monotonic() < deadline, f"expected 2 worker processes, found {workers}"
            time.sleep(0.2)
        answered = {httpx.get(url + "/health", timeout=10).json()["pid"] for _ in range(20)}  # a new connection each
        r = httpx.post(url + "/predict", json=(digits[0] / 255).tolist(), timeout=10)
        assert r.status_code == 200 and 0 <= r.json()["digit"] <= 9
    assert answered and answered <= workers and proc.pid not in answered, (answered, workers)
    assert proc.returncode is not None
    def stopped(pid: int) -> bool:
        try:
            return "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        except OSError:  # gone
            return True

    deadline = time.monotonic() + 10  # a worker's exit is asynchronous to its parent's
    while not all(stopped(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in workers:  # stopping the parent by its PID stopped every worker
        assert stopped(pid), f"worker {pid} still running after its server stopped"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ort_session_runs_the_onnx_model_on_one_thread(onnx_path):
    session = serve.ort_session(onnx_path)
    assert session.get_inputs()[0].name == "image" and session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 1
    x = torch.randn(3, 1, 28, 28)
    torch.manual_seed(0)
    model = helpers.small_cnn().eval()  # the same seeded weights as the fixture's model
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.allclose(session.run(None, {"image": x.numpy()})[0], expected, atol=1e-4)


def rows(*points) -> list[dict]:
    return [{"offered_rps": rate, "p50_ms": p50, "p99_ms": p99} for rate, p50, p99 in points]


OPEN_LOOP = {"meta": {"slo_ms": 20}, "results": {"json": {
    "inline": rows((250, 1.0, 3.0), (500, 2.0, 15.0), (1000, 40.0, 90.0)),
    "threadpool": rows((250, 1.0, 2.0), (500, 1.5, 4.0), (1000, 3.0, 20.0)),
    "workers2": rows((250, 30.0, 25.0), (500, 9.0, None), (1000, None, None)),
}}}


def test_knee_is_the_highest_offered_rate_within_the_p99_target():
    rows = OPEN_LOOP["results"]["json"]
    assert serve.knee(rows["inline"]) == 500
    assert serve.knee(rows["threadpool"]) == 1000  # 20 ms exactly is within
    assert serve.knee(rows["threadpool"], slo_ms=3) == 250
    assert serve.knee(rows["workers2"]) is None  # too slow, or too many failures (p99 None)
    stall = [{"offered_rps": 250, "p99_ms": 2.0}, {"offered_rps": 1000, "p99_ms": 129.0},
             {"offered_rps": 500, "p99_ms": 3.0}, {"offered_rps": 2000, "p99_ms": 9.0}]
    assert serve.knee(stall) == 500  # a miss at 1,000 ends it, whatever 2,000 did


def test_plot_latency_vs_load_draws_a_line_per_server_and_names_its_knee(tmp_path):
    import matplotlib.pyplot as plt
    path = tmp_path / "openloop.json"
    path.write_text(json.dumps(OPEN_LOOP))
    ax = serve.plot_latency_vs_load(path, "json")
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["inline p99 (knee 500 req/s)", "threadpool p99 (knee 1,000 req/s)", "workers2 p99 (no knee)",
                      "20 ms", "over 1% failed: no p99 (mode's colour)"]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    # workers2 failed at 500 and 1,000 requests/s: drawn at the top, in workers2's colour, not left out
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [500, 1000]
    assert all(y > 90.0 for y in crosses[0].get_ydata())  # above the largest latency measured
    assert crosses[0].get_color() == ax.get_lines()[4].get_color()
    assert ax.get_xscale() == "log" and "offered load" in ax.get_xlabel()
    p99_lines = [line for line in ax.get_lines() if line.get_label().endswith(")")]
    assert list(p99_lines[0].get_ydata()) == [3.0, 15.0, 90.0]
    _, given = plt.subplots()
    assert serve.plot_latency_vs_load(OPEN_LOOP, "json", ax=given) is given
    with pytest.raises(ValueError, match="no results for format 'png'"):
        serve.plot_latency_vs_load(OPEN_LOOP, "png")
    plt.close("all")
