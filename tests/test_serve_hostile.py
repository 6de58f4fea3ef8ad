"""The inference service (helpers.serve) against hostile clients: bodies built to break the parsers
(deep JSON, decompression-bomb and damaged PNGs, other formats, random bytes found by Hypothesis),
a bug in a handler, slow models, too many requests at once, bodies sent slowly and idle connections.

The model is a stand-in (``FakeSession``: fixed logits, an optional delay), so no ONNX export is needed;
tests/test_serve.py runs the real one. Tests that start a uvicorn server (in a thread, on a free port of
127.0.0.1) are marked slow and bounded by a timeout."""
import contextlib
import io
import json
import logging
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import serve  # noqa: E402


class FakeSession:
    """Stands in for an ONNX Runtime session: logits 0..9 (so the digit is always 9), after ``delay`` s.
    ``started`` is released each time a prediction begins."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.started = threading.Semaphore(0)

    def get_inputs(self):
        return [SimpleNamespace(name="image", shape=["batch", 1, 28, 28])]

    def run(self, outputs, feeds):
        self.started.release()
        time.sleep(self.delay)
        x = feeds["image"]
        assert x.shape[1:] == (1, 28, 28) and x.dtype == np.float32
        return [np.tile(np.arange(10, dtype=np.float32), (len(x), 1))]


def fake_app(delay: float = 0.0, **options):
    """create_app with the stand-in model instead of an ONNX file; the model is ``app.state.session``."""
    session = FakeSession(delay)
    with mock.patch.object(serve, "ort_session", lambda path, threads=1: session):
        app = serve.create_app("fake.onnx", **options)
    app.state.session = session
    return app


@pytest.fixture(scope="module")
def client():
    with TestClient(fake_app(), raise_server_exceptions=False) as c:
        yield c


def png(pixels: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of valid-looking PNG whose header declares width x height grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 10_000)
    return serve.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def other_format(name: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buffer, format=name)
    return buffer.getvalue()


GOOD_PNG = png((np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28))
CORRUPT_IDAT = bytearray(GOOD_PNG)
CORRUPT_IDAT[GOOD_PNG.index(b"IDAT") + 10] ^= 0xFF  # a flipped byte inside the compressed pixels
JSON = {"content-type": "application/json"}
PNG = {"content-type": "image/png"}

HOSTILE = {  # name: (request keywords, expected status, words the detail must contain)
    "JSON nested 50,000 deep": (dict(content=b"[" * 50_000 + b"]" * 50_000, headers=JSON), 422, ["nested"]),
    "JSON objects nested 50,000 deep": (dict(content=b'{"image":' * 50_000 + b"0" + b"}" * 50_000, headers=JSON),
                                        422, ["nested"]),
    "JSON nested 100 deep": (dict(content=b"[" * 100 + b"0" + b"]" * 100, headers=JSON), 422,
                             ["nested 100 levels", "(28, 28)"]),
    "JSON integer of 5,000 digits": (dict(content=b"[" + b"9" * 5000 + b"]", headers=JSON), 400, ["not valid JSON"]),
    "JSON 1e300": (dict(content=json.dumps([[1e300] * 28] * 28), headers=JSON), 422, ["[0, 1]", "1e+300"]),
    "PNG bomb, raw body": (dict(content=png_declaring(100_000, 100_000), headers=PNG), 413,
                           ["100000 x 100000", "64 x 64", "before decoding"]),
    "PNG bomb, upload": (dict(files={"file": ("b.png", png_declaring(2**31 - 1, 1), "image/png")}), 413,
                         ["64 x 64"]),
    "PNG 65 x 65": (dict(content=png(np.zeros((65, 65), np.uint8)), headers=PNG), 413, ["65 x 65", "64 x 64"]),
    "PNG 32 x 32": (dict(content=png(np.zeros((32, 32), np.uint8)), headers=PNG), 422, ["28 x 28", "32 x 32"]),
    "PNG signature only": (dict(content=serve.PNG_SIGNATURE, headers=PNG), 400, ["truncated"]),
    "PNG cut in the header": (dict(content=GOOD_PNG[:40], headers=PNG), 400, ["truncated"]),
    "PNG cut in the pixels": (dict(content=GOOD_PNG[:-40], headers=PNG), 400, ["truncated"]),
    "PNG cut, upload": (dict(files={"file": ("t.png", GOOD_PNG[:-40], "image/png")}), 400, ["truncated"]),
    "PNG with corrupt pixels": (dict(content=bytes(CORRUPT_IDAT), headers=PNG), 400, ["damaged"]),
    "JPEG": (dict(content=other_format("JPEG"), headers={"content-type": "image/jpeg"}), 415, ["PNG only"]),
    "GIF uploaded as .png": (dict(files={"file": ("x.png", other_format("GIF"), "image/png")}), 415,
                             ["not a PNG", "PNG only"]),
    "BMP": (dict(content=other_format("BMP"), headers={"content-type": "application/octet-stream"}), 415,
            ["PNG only"]),
    "multipart without boundary": (dict(content=b"--x\r\n", headers={"content-type": "multipart/form-data"}), 400,
                                   ["multipart", "'file'"]),
    "multipart garbage": (dict(content=b"--b\r\nno header end", headers={"content-type": "multipart/form-data; "
                                                                                         "boundary=b"}),
                          400, ["multipart"]),
    "file as a text field": (dict(data={"file": "not a png"}, files={"x": ("x", b"", "text/plain")}), 415,
                             ["not a PNG"]),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_bodies_get_a_4xx_naming_the_problem(client, name):
    request, status, words = HOSTILE[name]
    r = client.post("/predict", **request)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    detail = r.json()["detail"]
    for word in words:
        assert word in detail, (name, detail)
    assert "Traceback" not in detail and "0x" not in detail  # no internals (object addresses) leak


def test_alpha_is_composited_on_black_and_16_bit_grey_is_scaled():
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 255, 0          # white, fully transparent: the background, 0
    rgba[0, 0, 3], rgba[0, 1, 3] = 255, 102       # opaque white, and 40% opaque white
    images = serve.images_from_png(png(rgba))
    assert images.shape == (1, 28, 28) and images.dtype == np.float32
    assert images[0, 0, 0] == 1.0 and images[0, 0, 1] == pytest.approx(0.4, abs=1 / 255)
    assert images[0, 1:].max() == 0.0
    grey_alpha = np.stack([np.full((28, 28), 200, np.uint8), np.full((28, 28), 255, np.uint8)], axis=-1)
    assert np.allclose(serve.images_from_png(png(grey_alpha)), 200 / 255)  # opaque: unchanged
    palette = Image.fromarray(np.full((28, 28), 255, np.uint8)).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", transparency=palette.getpixel((0, 0)))  # a transparent colour
    assert serve.images_from_png(buffer.getvalue()).max() == 0.0
    sixteen = serve.images_from_png(png(np.full((28, 28), 65535, np.uint16)))
    assert np.allclose(sixteen, 1.0)


def test_an_unexpected_error_is_a_json_500_without_traceback_and_is_logged(caplog):
    def broken(body, content_type):
        raise ZeroDivisionError("a bug in the service")

    app = fake_app()
    with mock.patch.object(serve, "images_from_body", broken), caplog.at_level(logging.ERROR, "helpers.serve"), \
            TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/predict", json=[[0.0] * 28] * 28)
    assert r.status_code == 500 and r.json() == {"detail": "internal error (logged on the server)"}
    assert "ZeroDivisionError" not in r.text
    records = [rec for rec in caplog.records if rec.name == "helpers.serve"]
    assert records and records[0].exc_info[0] is ZeroDivisionError, caplog.records


def test_bad_options_get_one_clear_error(capsys, tmp_path):
    with pytest.raises(ValueError, match="max_concurrency must be >= 1, got 0"):
        fake_app(max_concurrency=0)
    with pytest.raises(SystemExit):
        serve.main(["--model", "x.onnx", "--workers", "0"])
    assert "--workers: must be > 0, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        serve.main(["--model", str(tmp_path / "missing.onnx")])
    assert "no such file" in capsys.readouterr().err


# ---- properties: whatever the body, a 2xx or a 4xx, never a 5xx -----------------------------------------

def assert_answer_or_4xx(parse, *args):
    """Call a parser: an (N, 28, 28) float32 array in [0, 1], or BadInput with a 4xx and a message."""
    try:
        images = parse(*args)
    except serve.BadInput as err:
        assert 400 <= err.status < 500 and str(err), err
        return None
    assert images.ndim == 3 and images.shape[1:] == (28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    return images


def base_pngs() -> list[bytes]:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    palette = Image.fromarray(grey).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", transparency=3)
    return [png(grey), png(np.dstack([grey, grey])), png(np.dstack([grey] * 3)), png(np.dstack([grey] * 4)),
            png((grey > 128).astype(np.uint8) * 255, bits=1), png(grey.astype(np.uint16) * 257), buffer.getvalue(),
            png(grey[:20, :25])]


BASE_PNGS = base_pngs()


def chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each whole chunk (length, type, data, checksum) after the PNG signature."""
    spans, at = [], 8
    while at + 12 <= len(data):
        end = at + 12 + struct.unpack(">I", data[at:at + 4])[0]
        if end > len(data):
            break
        spans.append((at, end))
        at = end
    return spans


def fix_checksum(data: bytearray, start: int, end: int) -> None:
    data[end - 4:end] = struct.pack(">I", zlib.crc32(bytes(data[start + 4:end - 4])))


@st.composite
def mutated_pngs(draw) -> bytes:
    """A valid PNG with a few random edits: bytes overwritten, inserted or deleted, the file cut, a chunk's
    contents or type changed or a chunk repeated (with a correct checksum, so that the decoder sees it),
    or the header's fields (size, bit depth, colour type...) rewritten."""
    data = bytearray(draw(st.sampled_from(BASE_PNGS)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["overwrite", "insert", "delete", "cut", "header", "chunk", "chunk type",
                                   "repeat"]))
        at = draw(st.integers(8, len(data) - 1) if len(data) > 8 else st.just(0))  # mostly past the signature
        spans = chunks(data)
        if op == "overwrite" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "cut":
            del data[at:]
        elif op == "header" and spans and data[12:16] == b"IHDR" and spans[0] == (8, 33):
            field = draw(st.sampled_from(["width", "height", "byte"]))
            if field == "byte":  # bit depth, colour type, compression, filter, interlace
                data[24 + draw(st.integers(0, 4))] = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 8, 16, 255]))
            else:
                size = draw(st.sampled_from([0, 1, 27, 28, 29, 64, 65, 10_000, 2**31 - 1, 2**32 - 1]))
                offset = 16 if field == "width" else 20
                data[offset:offset + 4] = struct.pack(">I", size)
            fix_checksum(data, 8, 33)
        elif op in ("chunk", "chunk type", "repeat") and spans:
            start, end = draw(st.sampled_from(spans))
            if op == "chunk" and end - start > 12:
                data[draw(st.integers(start + 8, end - 5))] = draw(st.integers(0, 255))
            elif op == "chunk type":
                data[start + 4:start + 8] = draw(st.sampled_from([b"IDAT", b"IEND", b"PLTE", b"tRNS", b"IHDR",
                                                                  b"acTL", b"fcTL", b"iCCP", b"zTXt", b"xxxx"]))
            else:
                data[end:end] = data[start:end]
            fix_checksum(data, start, end)
    return bytes(data)


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_trees = st.recursive(json_leaves, lambda children: st.lists(children, max_size=6)
                          | st.dictionaries(st.text(max_size=6), children, max_size=4), max_leaves=40)
near_images = st.builds(lambda value, rows, cols: [[value] * cols] * rows,  # close to a valid image
                        st.floats() | st.integers(-3, 300), st.sampled_from([27, 28]), st.sampled_from([28, 29]))


@st.composite
def json_bodies(draw) -> bytes:
    """Random JSON of random types, wrapped in 0 to 3,000 levels of [ ] or {"image": }; sometimes cut."""
    value = draw(json_trees | near_images)
    depth = draw(st.sampled_from([0, 0, 1, 2, 50, 999, 1000, 3000]))
    text = json.dumps(value)
    text = ("[" * depth + text + "]" * depth) if draw(st.booleans()) else ('{"image": ' * depth + text + "}" * depth)
    body = text.encode()
    if draw(st.integers(0, 9)) == 0:
        body = body[:draw(st.integers(0, len(body)))]
    return body


def multipart(payload: bytes, field: str = "file") -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/predict", files={field: ("d.png", payload, "image/png")})
    return request.read(), request.headers["content-type"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["application/json", "image/png", "multipart/form-data",
                                                   "multipart/form-data; boundary=x", "application/octet-stream",
                                                   "text/plain", ""]))
def test_random_bytes_never_break_the_parsers(body, content_type):
    assert_answer_or_4xx(serve.images_from_body, body, content_type)


@settings(max_examples=200, deadline=None)
@given(json_bodies())
def test_random_json_never_breaks_the_json_parser(body):
    assert_answer_or_4xx(serve.images_from_json, body)


@settings(max_examples=200, deadline=None)
@given(mutated_pngs())
def test_mutated_pngs_never_break_the_png_decoder(data):
    assert_answer_or_4xx(serve.images_from_png, data)
    assert_answer_or_4xx(serve.images_from_body, *multipart(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.tuples(json_bodies(), st.just("application/json")),
    st.tuples(mutated_pngs(), st.sampled_from(["image/png", "application/octet-stream"])),
    mutated_pngs().map(multipart),
    st.tuples(st.binary(max_size=2000), st.sampled_from(["application/json", "image/png", "multipart/form-data"])),
))
def test_random_bodies_through_the_app_never_get_a_5xx(client, request_body):
    body, content_type = request_body
    r = client.post("/predict", content=body, headers={"content-type": content_type})
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.json()["detail"], r.text
    else:
        assert r.json()["digit"] == 9


# ---- a real server (uvicorn in a thread): the event loop, load shedding, timeouts ------------------------

@contextlib.contextmanager
def live_server(app, **config):
    """Serve ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yield (host, port)."""
    port = serve.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the server did not stop"


def health_time_while_a_slow_request_runs(app) -> tuple[float, int]:
    """(seconds /health took while a 1.5 s prediction was in progress, that prediction's status)."""
    with live_server(app) as (host, port), ThreadPoolExecutor(1) as pool:
        url = f"http://{host}:{port}"
        slow = pool.submit(httpx.post, url + "/predict", json=[[0.0] * 28] * 28, timeout=10)
        assert app.state.session.started.acquire(timeout=10), "the prediction did not start"  # it takes 1.5 s
        start = time.perf_counter()
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        took = time.perf_counter() - start
        return took, slow.result(timeout=10).status_code


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_health_answers_while_a_slow_prediction_runs_in_the_thread_pool():
    took, status = health_time_while_a_slow_request_runs(fake_app(delay=1.5))
    assert status == 200 and took < 0.5, f"/health took {took:.2f} s: the event loop was blocked"
    # the check can fail: the old inline handler blocks the loop, so /health waits for the prediction
    took, status = health_time_while_a_slow_request_runs(fake_app(delay=1.5, inline=True))
    assert status == 200 and took > 0.8, f"/health took {took:.2f} s although the loop was blocked"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_requests_beyond_the_concurrency_limit_get_a_503_and_health_still_answers():
    server_app = fake_app(delay=1.5, max_concurrency=2)
    with live_server(server_app) as (host, port), ThreadPoolExecutor(2) as pool:
        url = f"http://{host}:{port}"
        slow = [pool.submit(httpx.post, url + "/predict", json=[[0.0] * 28] * 28, timeout=10) for _ in range(2)]
        for _ in range(2):  # both are in flight (each takes 1.5 s)
            assert server_app.state.session.started.acquire(timeout=10), "the predictions did not start"
        busy = httpx.post(url + "/predict", json=[[0.0] * 28] * 28, timeout=10)
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        assert [f.result(timeout=10).status_code for f in slow] == [200, 200]
        after = httpx.post(url + "/predict", json=[[0.0] * 28] * 28, timeout=10)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in busy.json()["detail"] and "limit is 2" in busy.json()["detail"]
    assert after.status_code == 200, "the limit counts requests in flight, not requests ever made"


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (or ``limit`` s pass): (bytes, seconds)."""
    start, data = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - start < limit:
        try:
            part = sock.recv(65536)
        except TimeoutError:
            continue
        if not part:
            return data, time.monotonic() - start
        data += part
    return data, float("inf")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_body_sent_too_slowly_gets_a_408_and_the_connection_is_closed():
    with live_server(fake_app(body_timeout=0.5)) as (host, port), socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n[[0")
        start = time.monotonic()
        answer = b""
        for _ in range(30):  # a trickle, one byte every 0.1 s: each read is quick, the whole body is not
            try:
                sock.sendall(b",")
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        rest, _ = read_until_closed(sock, limit=5)
        took = time.monotonic() - start
    head, _, body = (answer + rest).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer + rest
    assert b"connection: close" in head.lower()
    assert "did not arrive within 0.5 s" in json.loads(body)["detail"]
    assert took < 2.5, f"the 408 came after {took:.1f} s"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_an_idle_keep_alive_connection_is_closed_after_the_timeout():
    with live_server(fake_app(), timeout_keep_alive=0.5) as (host, port), \
            socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data, idle = read_until_closed(sock, limit=10)
    assert data.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in data
    assert 0.4 < idle < 3, f"the idle connection was closed after {idle:.1f} s, expected about 0.5 s"
