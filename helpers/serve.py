"""A small HTTP inference service for an MNIST classifier exported to ONNX (the deploying chapter).

    python -m helpers.serve --model cnn.onnx --port 8000

It loads the ONNX model once into an ONNX Runtime session and answers

- ``GET /health`` -> ``{"status": "ok", ...}``;
- ``POST /predict`` with one of
  * JSON: a 28 x 28 array of floats in [0, 1] (pixel / 255, a white digit
    on black, like MNIST), bare or as ``{"image": [...]}``; an (N, 28, 28)
    array is a batch of N <= ``MAX_BATCH`` (64) images;
  * a PNG (or any image Pillow reads) of 28 x 28 grey pixels 0-255,
    uploaded as the multipart field ``file`` or sent as the raw body
    (``Content-Type: image/png``);

  -> ``{"digit": d, "probabilities": [10 floats]}``
     (a batch: ``"digits"`` and a list of lists).

The service normalises with the training statistics (``MNIST_MEAN``,
``MNIST_STD``) itself: send raw pixels, never normalised ones. Bad input
gets a 4xx and ``{"detail": "what was wrong"}``: 400 malformed JSON,
413 a body over ``max_bytes`` (1 MiB by default), 415 not an image or an
unknown content type, 422 wrong shape, non-numeric values, NaN/inf or values
outside [0, 1].
FastAPI, uvicorn and onnxruntime are imported only when the service is built (``install_extras("deploy")``).
"""
# no `from __future__ import annotations`: FastAPI must resolve the handlers' `Request` hints
import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from .data import MNIST_MEAN, MNIST_STD

MAX_BYTES = 1024 * 1024  # one 28 x 28 JSON image is about 16 KB at full float precision, a PNG < 1 KB
MAX_BATCH = 64           # a batch of 64 at 4 decimals is about 0.4 MB
SHAPE = (28, 28)


class BadInput(Exception):
    """Input the service refuses: an HTTP status and a message that says what was wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def images_from_json(body: bytes) -> np.ndarray:
    """Parse a JSON body into float32 images (N, 28, 28) in [0, 1], or raise BadInput."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadInput(400, f"the body is not valid JSON ({err})") from None
    if isinstance(data, dict):
        if "image" not in data:
            raise BadInput(422, f"expected a key 'image', got keys {sorted(data)[:5]}")
        data = data["image"]
    try:
        array = np.asarray(data)
    except ValueError:  # ragged nested lists
        raise BadInput(422, "the image is not a rectangular array (rows of different lengths)") from None
    if array.dtype.kind not in "iuf":
        kind = {"b": "booleans", "U": "strings", "O": "mixed or nested values"}.get(array.dtype.kind, array.dtype)
        raise BadInput(422, f"the values must be numbers, got {kind}")
    return check_images(array.astype(np.float32, copy=False), "[0, 1]", 1.0)


def images_from_png(data: bytes) -> np.ndarray:
    """Decode an image file into float32 images (1, 28, 28) in [0, 1], or raise BadInput."""
    from PIL import Image, UnidentifiedImageError
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        raise BadInput(415, "the upload is not an image Pillow can read (send a 28 x 28 grey PNG)") from None
    if image.size != SHAPE[::-1]:
        raise BadInput(422, f"expected a 28 x 28 image, got {image.size[0]} x {image.size[1]}")
    pixels = np.asarray(image.convert("L"), dtype=np.float32)  # grey 0-255
    return check_images(pixels, "0-255", 255.0) / 255.0


def check_images(array: np.ndarray, value_range: str, top: float) -> np.ndarray:
    """(28, 28) or (N, 28, 28) finite values in [0, top] -> (N, 28, 28), or BadInput."""
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != SHAPE:
        raise BadInput(422, f"shape {array.shape}: expected (28, 28) or (N, 28, 28)")
    if not 1 <= len(array) <= MAX_BATCH:
        raise BadInput(422, f"a batch holds 1 to {MAX_BATCH} images, got {len(array)}")
    if not np.isfinite(array).all():
        raise BadInput(422, "the image contains NaN or infinite values")
    if array.min() < 0 or array.max() > top:
        low, high = array.min(), array.max()
        raise BadInput(422, f"values must be in {value_range}, got {low:g} to {high:g}")
    return array


def create_app(model_path: str | Path, *, threads: int = 1, max_bytes: int = MAX_BYTES):
    """The FastAPI app serving the ONNX model at ``model_path`` (loaded once, here)."""
    import onnxruntime as ort
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    options = ort.SessionOptions()
    # One thread per request: concurrency comes from many requests, and threads would fight for cores.
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    app = FastAPI(title="MNIST digit classifier")

    def predict(images: np.ndarray) -> dict:
        x = ((images - MNIST_MEAN) / MNIST_STD)[:, None].astype(np.float32)  # (N, 1, 28, 28) as in training
        logits = session.run(None, {input_name: x})[0]                      # (N, 10)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = np.round((z / z.sum(axis=1, keepdims=True)).astype(np.float64), 6).tolist()
        digits = logits.argmax(axis=1).tolist()
        if len(images) == 1:
            return {"digit": digits[0], "probabilities": probs[0]}
        return {"digits": digits, "probabilities": probs}

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise BadInput(413, f"the body has {declared} bytes; the limit is {max_bytes}")
        body = b""
        async for chunk in request.stream():  # also bounds a body sent without Content-Length
            body += chunk
            if len(body) > max_bytes:
                raise BadInput(413, f"the body exceeds the limit of {max_bytes} bytes")
        return body

    async def upload(request: Request, body: bytes) -> bytes:
        async def replay():  # the body was already read (with its limit): hand it to the form parser
            return {"type": "http.request", "body": body, "more_body": False}
        form = await Request(request.scope, replay).form()
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise BadInput(422, "expected the image as a file in the multipart field 'file'")
        return await file.read()

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, err: BadInput):
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": Path(model_path).name, "input": session.get_inputs()[0].shape}

    @app.post("/predict")
    async def predict_endpoint(request: Request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_body(request)
        if kind == "application/json":
            images = images_from_json(body)
        elif kind == "multipart/form-data":
            images = images_from_png(await upload(request, body))
        elif kind.startswith("image/") or kind == "application/octet-stream":
            images = images_from_png(body)
        else:
            raise BadInput(415, f"unsupported content type {kind!r}: send application/json, "
                                "an image/png body or a multipart upload")
        # ~50 us of ONNX Runtime: cheaper inline than a thread hop. A JSONResponse skips FastAPI's
        # jsonable_encoder pass over a result that is already plain lists and numbers.
        return JSONResponse(predict(images))

    return app


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> dict:
    """Poll ``url + '/health'`` until it answers; return its JSON (fail early if ``proc`` exited)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return json.load(r)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from {url}/health after {timeout:.0f} s") from None
            time.sleep(0.1)


@contextlib.contextmanager
def running(model_path: str | Path, *, port: int | None = None, threads: int = 1):
    """Run the service in a subprocess on 127.0.0.1; yield ``(base_url, process)``; stop it by PID."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "helpers.serve", "--model", str(model_path), "--port", str(port),
           "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()          # SIGTERM to this PID: uvicorn shuts down gracefully
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m helpers.serve --model PATH [--host H] [--port P] [--threads T]``."""
    parser = argparse.ArgumentParser(description="Serve an MNIST ONNX model over HTTP.")
    parser.add_argument("--model", required=True, help="path of the .onnx file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, help="largest accepted body")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    import uvicorn
    app = create_app(args.model, threads=args.threads, max_bytes=args.max_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
