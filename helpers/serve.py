"""A small HTTP inference service for an MNIST classifier exported to ONNX (the deploying chapter).

    python -m helpers.serve --model cnn.onnx --port 8000 [--workers 2]

It loads the ONNX model once into an ONNX Runtime session and answers

- ``GET /health`` -> ``{"status": "ok", "pid": ..., ...}``;
- ``POST /predict`` with one of
  * JSON: a 28 x 28 array of floats in [0, 1] (pixel / 255, a white digit
    on black, like MNIST), bare or as ``{"image": [...]}``; an (N, 28, 28)
    array is a batch of N <= ``MAX_BATCH`` (64) images;
  * a PNG file (no other format) of 28 x 28 grey pixels 0-255, uploaded
    as the multipart field ``file`` or sent as the raw body
    (``Content-Type: image/png``); colour becomes grey, and transparent
    pixels become background: the image is composited on black;

  -> ``{"digit": d, "probabilities": [10 floats]}``
     (a batch: ``"digits"`` and a list of lists).

The service normalises with the training statistics (``MNIST_MEAN``,
``MNIST_STD``) itself: send raw pixels, never normalised ones. Parsing and
inference run in a thread pool; ONNX Runtime releases the GIL while it
computes, so ``/health`` answers during a model call (parsing holds the GIL:
hence the body limit). Bad input
gets a 4xx and ``{"detail": "what was wrong"}``: 400 malformed JSON or a
damaged PNG, 408 a body slower than ``body_timeout`` (10 s), 413 a body
over ``max_bytes`` (1 MiB) or a PNG declaring more than 64 x 64 pixels
(refused before decoding), 415 not a PNG or an unknown content type,
422 wrong shape or nesting, non-numeric values, NaN/inf or values outside
[0, 1]. A request beyond ``max_concurrency`` (64) in flight gets a 503; a
bug gets a 500 with a JSON detail (the traceback goes to the log only).
FastAPI, uvicorn and onnxruntime are imported only when the service is built (``install_extras("deploy")``).

Not covered here (put a reverse proxy such as nginx in front for these): uvicorn closes an idle
keep-alive connection after ``--timeout-keep-alive`` seconds, but not a connection that sends nothing
or sends its request *headers* slowly (its timer starts only after a first answer); nor limits per client.
"""
# no `from __future__ import annotations`: FastAPI must resolve the handlers' `Request` hints
import argparse
import contextlib
import io
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .data import MNIST_MEAN, MNIST_STD

MAX_BYTES = 1024 * 1024  # one 28 x 28 JSON image is about 16 KB at full float precision, a PNG < 1 KB
MAX_BATCH = 64           # a batch of 64 at 4 decimals is about 0.4 MB
SHAPE = (28, 28)
MAX_SIDE = 64            # a PNG declaring a larger width or height is refused before it is decoded
MAX_CONCURRENCY = 64     # requests in flight per worker process; more get 503
BODY_TIMEOUT = 10.0      # seconds to receive a whole body (1 MiB at 1 Mbit/s takes 8 s)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENV_OPTIONS = "HELPERS_SERVE_OPTIONS"  # create_app's arguments for the processes of --workers N

log = logging.getLogger(__name__)


class BadInput(Exception):
    """Input the service refuses: an HTTP status and a message that says what was wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def images_from_json(body: bytes) -> np.ndarray:
    """Parse a JSON body into float32 images (N, 28, 28) in [0, 1], or raise BadInput."""
    try:
        data = json.loads(body)
    except RecursionError:  # json recurses once per [ or {: a 1 MiB body can nest 500,000 levels
        raise BadInput(422, "the JSON is nested hundreds of levels deep; an image is a (28, 28) or "
                            "(N, 28, 28) array: 2 or 3 levels of [ ]") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise BadInput(400, f"the body is not valid JSON ({str(err).split(';')[0][:100]})") from None
    if isinstance(data, dict):
        if "image" not in data:
            keys = [key[:20] for key in sorted(data)[:5]]
            raise BadInput(422, f"expected a key 'image', got keys {keys}")
        data = data["image"]
    try:
        array = np.asarray(data)
    except ValueError:  # ragged nested lists, or more than numpy's 64 dimensions
        depth = nesting_depth(data)
        if depth > 3:
            raise BadInput(422, f"the arrays are nested {depth} levels deep; an image is a (28, 28) or "
                                "(N, 28, 28) array: 2 or 3 levels of [ ]") from None
        raise BadInput(422, "the image is not a rectangular array (rows of different lengths)") from None
    if array.dtype.kind not in "iuf":
        kind = {"b": "booleans", "U": "strings", "O": "mixed or nested values"}.get(array.dtype.kind, array.dtype)
        raise BadInput(422, f"the values must be numbers, got {kind}")
    # checked before the cast: 1e300 is out of range, not infinite (float32 would make it inf)
    return check_images(array, "[0, 1]", 1.0).astype(np.float32)


def nesting_depth(data) -> int:
    """How many lists deep the first element of ``data`` sits (a loop, not recursion)."""
    depth = 0
    while isinstance(data, list) and data:
        data, depth = data[0], depth + 1
    return depth + isinstance(data, list)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by a PNG's header chunk (IHDR), read without decoding; or BadInput."""
    if not data.startswith(PNG_SIGNATURE):
        raise BadInput(415, "the upload is not a PNG image (no PNG signature); the service accepts PNG "
                            "only: send a 28 x 28 grey PNG")
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise BadInput(400, "the PNG is damaged or truncated (no IHDR header after the signature): "
                            "send the whole file")
    return struct.unpack(">II", data[16:24])


# What Pillow raises on damaged files: truncated data (OSError), broken chunks (SyntaxError), bad
# values (ValueError), short reads (EOFError, struct.error), bad zlib streams, bombs...
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
                 zlib.error)


def images_from_png(data: bytes) -> np.ndarray:
    """Decode a PNG into float32 images (1, 28, 28) in [0, 1], or raise BadInput.

    The declared size is checked before any pixel is decoded (at most ``MAX_SIDE`` x ``MAX_SIDE``:
    a few hundred bytes of PNG can declare a gigapixel image). Colour is converted to grey; an alpha
    channel (or a transparent colour) is composited on black, MNIST's background, so a transparent
    pixel reads as 0. 16-bit grey is scaled to 0-255.
    """
    from PIL import Image, UnidentifiedImageError
    width, height = png_size(data)
    if width > MAX_SIDE or height > MAX_SIDE:
        raise BadInput(413, f"the PNG declares {width} x {height} pixels; the limit is {MAX_SIDE} x {MAX_SIDE} "
                            "(it is refused before decoding): send a 28 x 28 grey PNG")
    if (width, height) != SHAPE[::-1]:
        raise BadInput(422, f"expected a 28 x 28 image, got {width} x {height}: resize it to 28 x 28")
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        if image.format != "PNG" or image.size != SHAPE[::-1]:
            raise ValueError(f"Pillow read it as {image.format} {image.size}")
        image.load()
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: 0-65535
            pixels = np.asarray(image, dtype=np.float32) / 257.0
        elif "A" in image.mode or "transparency" in image.info:
            grey_alpha = np.asarray(image.convert("RGBA").convert("LA"), dtype=np.float32)  # (28, 28, 2)
            pixels = grey_alpha[..., 0] * grey_alpha[..., 1] / 255.0  # composited on black
        else:
            pixels = np.asarray(image.convert("L"), dtype=np.float32)  # grey 0-255
    except (*PILLOW_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        reason = "Pillow cannot identify it" if isinstance(err, UnidentifiedImageError) else str(err)[:80]
        raise BadInput(400, f"the PNG is damaged or truncated ({type(err).__name__}: {reason}): "
                            "send the whole file, saved as a 28 x 28 grey PNG") from None
    return check_images(pixels, "0-255", 255.0) / 255.0


def file_from_multipart(body: bytes, content_type: str) -> bytes:
    """The bytes of the multipart field ``file`` in ``body``, or raise BadInput."""
    from python_multipart import create_form_parser
    found = []

    def on_part(part):  # a File (the part has a filename) or a Field
        if part.field_name == b"file":
            found.append(part.file_object.getvalue() if hasattr(part, "file_object") else part.value or b"")

    try:  # every python_multipart error is a ValueError; keep files in memory (the body is small)
        parser = create_form_parser({"Content-Type": content_type}, on_part, on_part,
                                    config={"MAX_MEMORY_FILE_SIZE": float("inf")})
        parser.write(body)
        parser.finalize()
    except ValueError as err:
        raise BadInput(400, f"the multipart body is malformed ({str(err)[:80]}): upload the PNG as the "
                            "field 'file'") from None
    if not found:
        raise BadInput(422, "expected the image as a file in the multipart field 'file'")
    return found[0]


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


def images_from_body(body: bytes, content_type: str) -> np.ndarray:
    """Images (N, 28, 28) from a request body of the given Content-Type header, or raise BadInput."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return images_from_json(body)
    if kind == "multipart/form-data":
        return images_from_png(file_from_multipart(body, content_type))
    if kind.startswith("image/") or kind == "application/octet-stream":
        return images_from_png(body)
    raise BadInput(415, f"unsupported content type {kind[:40]!r}: send application/json, an image/png body "
                        "or a multipart upload")


def ort_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session for the model at ``path``, ``threads`` intra-op threads, one inter-op."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def create_app(model_path: str | Path, *, threads: int = 1, max_bytes: int = MAX_BYTES,
               max_concurrency: int = MAX_CONCURRENCY, body_timeout: float = BODY_TIMEOUT, inline: bool = False):
    """The FastAPI app serving the ONNX model at ``model_path`` (loaded once, here).

    ``inline=True`` parses and predicts on the event loop instead of in the thread pool: the old
    behaviour, kept only so that the benchmark can compare the two.
    """
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

    for name, value, low in (("threads", threads, 1), ("max_bytes", max_bytes, 1),
                             ("max_concurrency", max_concurrency, 1), ("body_timeout", body_timeout, 0.001)):
        if not value >= low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
    # One thread per request: concurrency comes from many requests, and threads would fight for cores.
    session = ort_session(model_path, threads)
    input_name = session.get_inputs()[0].name
    app = FastAPI(title="MNIST digit classifier")
    in_flight = 0

    def predict(images: np.ndarray) -> dict:
        x = ((images - MNIST_MEAN) / MNIST_STD)[:, None].astype(np.float32)  # (N, 1, 28, 28) as in training
        logits = session.run(None, {input_name: x})[0]                      # (N, 10)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = np.round((z / z.sum(axis=1, keepdims=True)).astype(np.float64), 6).tolist()
        digits = logits.argmax(axis=1).tolist()
        if len(images) == 1:
            return {"digit": digits[0], "probabilities": probs[0]}
        return {"digits": digits, "probabilities": probs}

    def answer(body: bytes, content_type: str) -> dict:
        return predict(images_from_body(body, content_type))

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise BadInput(413, f"the body has {declared} bytes; the limit is {max_bytes}")
        chunks, size = [], 0
        try:
            with anyio.fail_after(body_timeout):  # the whole body, not each read: a trickle times out too
                async for chunk in request.stream():  # also bounds a body sent without Content-Length
                    size += len(chunk)
                    if size > max_bytes:
                        raise BadInput(413, f"the body exceeds the limit of {max_bytes} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise BadInput(408, f"the body did not arrive within {body_timeout:g} s ({size} bytes came): "
                                "send the whole body at once") from None
        except ClientDisconnect:
            raise BadInput(400, "the client disconnected before sending the whole body") from None
        return b"".join(chunks)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, err: BadInput):
        # after a timeout or an oversized body the rest of the body may still be coming: close the connection
        headers = {"connection": "close"} if err.status in (408, 413) else None
        return JSONResponse({"detail": str(err)}, status_code=err.status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception):  # a bug: JSON for the client, traceback for the log
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=err)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": Path(model_path).name, "input": session.get_inputs()[0].shape,
                "pid": os.getpid()}

    @app.post("/predict")
    async def predict_endpoint(request: Request):
        nonlocal in_flight
        if in_flight >= max_concurrency:  # shed load now rather than queue it: the client may retry elsewhere
            return JSONResponse({"detail": f"the server is busy: {in_flight} requests in flight, the limit is "
                                           f"{max_concurrency}; retry shortly"},
                                status_code=503, headers={"retry-after": "1"})
        in_flight += 1
        try:
            body = await read_body(request)
            content_type = request.headers.get("content-type", "")
            if inline:
                result = answer(body, content_type)
            else:  # JSON parsing, PNG decoding and ONNX Runtime hold the CPU: keep them off the event loop
                result = await run_in_threadpool(answer, body, content_type)
        except BadInput:
            raise
        except Exception:
            log.exception("unexpected error in /predict")
            return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)
        finally:
            in_flight -= 1
        # A JSONResponse skips FastAPI's jsonable_encoder pass over a result that is already plain lists.
        return JSONResponse(result)

    return app


def app_from_environment():
    """The app built from the JSON options in ``$HELPERS_SERVE_OPTIONS`` (each process of ``--workers N``)."""
    options = json.loads(os.environ[ENV_OPTIONS])
    configure_logging(options.pop("log_level"))
    return create_app(**options)


def configure_logging(level: str = "warning") -> None:
    """Send this module's log records (errors with their tracebacks) to stderr, at uvicorn's ``level``."""
    level = "DEBUG" if level == "trace" else level.upper()  # uvicorn's "trace" is finer than logging's DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
def running(model_path: str | Path, *, port: int | None = None, threads: int = 1, workers: int = 1,
            extra_args: tuple[str, ...] = (), prefix: tuple[str, ...] = ()):
    """Run the service in a subprocess on 127.0.0.1; yield ``(base_url, process)``; stop it by PID.

    ``extra_args`` are more command-line options (``("--max-concurrency", "8")``); ``prefix`` goes
    before the command (``("taskset", "-c", "1")`` pins the server to core 1).
    """
    port = port or free_port()
    cmd = [*prefix, sys.executable, "-m", "helpers.serve", "--model", str(model_path), "--port", str(port),
           "--threads", str(threads), "--workers", str(workers), *extra_args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    # a session of its own: if the graceful stop times out, one signal stops the server and its
    # workers together, and no worker is left running without its parent
    proc = subprocess.Popen(cmd, env=env, start_new_session=os.name == "posix")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()          # SIGTERM to this PID: uvicorn shuts down gracefully (and stops its workers)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            if os.name == "posix":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)   # SIGKILL to the whole group: the server and its workers
            proc.kill()
            proc.wait()


def knee(rows: list[dict], slo_ms: float = 20.0) -> float | None:
    """The highest offered rate (req/s) up to which every measured rate kept p99 within ``slo_ms``, or None.

    A rate that misses the target ends the search: a lower rate that misses (a stall) is not
    excused by a higher one that happened to meet it.
    """
    best = None
    for r in sorted(rows, key=lambda r: r["offered_rps"]):
        if r["p99_ms"] is None or r["p99_ms"] > slo_ms:
            break
        best = r["offered_rps"]
    return best


def plot_latency_vs_load(results: dict | str | Path, fmt: str = "json", *, ax=None, slo_ms: float = 20.0):
    """Draw p99 (and p50) latency against offered load, one line per server mode; return the axes.

    ``results`` is what ``benchmarks/deploy_benchmark.py --json-out`` writes (or its path); ``fmt``
    is ``"json"`` or ``"png"``. The legend names each mode's knee: the highest offered rate up to
    which every measured rate kept p99 within ``slo_ms``. A rate with more than 1% failed requests
    has no p99: it is drawn as an ``x`` in its mode's colour above every latency measured for that
    format, one height per mode (a gap in a line would read as "not measured").
    """
    import matplotlib.pyplot as plt
    if not isinstance(results, dict):
        results = json.loads(Path(results).read_text())
    if fmt not in results["results"]:
        raise ValueError(f"no results for format {fmt!r}; the file has {sorted(results['results'])}")
    if ax is None:
        ax = plt.subplots(figsize=(6, 3.5))[1]
    failed = []
    for mode, rows in results["results"][fmt].items():
        rates = [r["offered_rps"] for r in rows]
        p99 = [np.nan if r["p99_ms"] is None else r["p99_ms"] for r in rows]
        p50 = [np.nan if r["p50_ms"] is None else r["p50_ms"] for r in rows]
        k = knee(rows, slo_ms)
        line, = ax.plot(rates, p99, "o-", label=f"{mode} p99 (knee {k:,.0f} req/s)" if k else f"{mode} p99 (no knee)")
        ax.plot(rates, p50, ":", color=line.get_color(), alpha=0.7)
        if any(r["p99_ms"] is None for r in rows):
            failed.append(([r["offered_rps"] for r in rows if r["p99_ms"] is None], line.get_color()))
    ax.axhline(slo_ms, color="grey", linestyle="--", linewidth=1, label=f"{slo_ms:g} ms")
    if failed:  # above every measured latency, so that a cross cannot be read as one
        top = 1.6 * max([slo_ms] + [r[key] for rows in results["results"][fmt].values() for r in rows
                                    for key in ("p50_ms", "p99_ms") if r[key] is not None])
        for k, (rates, color) in enumerate(failed):  # one height per mode: no cross hides another
            ax.plot(rates, [top * 1.5 ** k] * len(rates), "x", color=color, markersize=9, linestyle="none")
        ax.plot([], [], "x", color="black", linestyle="none", label="over 1% failed: no p99 (mode's colour)")
    ax.set(xscale="log", yscale="log", xlabel="offered load (requests/s, open loop)", ylabel="latency (ms)",
           title=f"{fmt.upper()} requests: p99 (solid) and p50 (dotted)")
    offered = sorted({r["offered_rps"] for rows in results["results"][fmt].values() for r in rows})
    ax.set_xticks(offered, [f"{rate:,}" for rate in offered], minor=False)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.legend(fontsize="small")
    return ax


def positive(kind):
    """An argparse type: ``kind(text)`` that must be > 0, with a message naming the value."""
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m helpers.serve --model PATH [--port P] [--workers N] ...`` (see ``--help``)."""
    parser = argparse.ArgumentParser(description="Serve an MNIST ONNX model over HTTP.")
    parser.add_argument("--model", required=True, help="path of the .onnx file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=positive(int), default=1, help="uvicorn worker processes")
    parser.add_argument("--threads", type=positive(int), default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--max-bytes", type=positive(int), default=MAX_BYTES, help="largest accepted body")
    parser.add_argument("--max-concurrency", type=positive(int), default=MAX_CONCURRENCY,
                        help="requests in flight per worker; more get 503")
    parser.add_argument("--body-timeout", type=positive(float), default=BODY_TIMEOUT,
                        help="seconds to receive a whole body; slower gets 408")
    parser.add_argument("--timeout-keep-alive", type=positive(float), default=5.0,
                        help="seconds an idle keep-alive connection stays open")
    parser.add_argument("--inline", action="store_true",
                        help="parse and predict on the event loop (the old behaviour; for the benchmark only)")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug",
                                                                    "trace"])
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        parser.error(f"--model {args.model}: no such file (export the model to ONNX first)")
    import uvicorn
    configure_logging(args.log_level)
    options = dict(model_path=args.model, threads=args.threads, max_bytes=args.max_bytes,
                   max_concurrency=args.max_concurrency, body_timeout=args.body_timeout, inline=args.inline)
    common = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                  timeout_keep_alive=args.timeout_keep_alive)
    if args.workers == 1:
        uvicorn.run(create_app(**options), **common)
    else:  # each worker process imports this module and builds its own app (and ONNX Runtime session)
        os.environ[ENV_OPTIONS] = json.dumps({**options, "log_level": args.log_level})
        uvicorn.run("helpers.serve:app_from_environment", factory=True, workers=args.workers, **common)


if __name__ == "__main__":
    main()
