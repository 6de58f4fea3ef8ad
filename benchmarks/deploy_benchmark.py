"""Deploying the small CNN (chapter 10): inference latency/throughput per runtime, int8, and the service under load.

    .venv/bin/python benchmarks/deploy_benchmark.py [--epochs 4] [--threads 2] [--requests 2000]
                                                    [--concurrency 16] [--no-compile]

Prints, measured in one process so the ratios hold: batch-1 latency (median and p99 over
``--repeats`` calls) and large-batch throughput for PyTorch eager, ``inference_mode``,
``channels_last``, ``torch.compile``, ONNX Runtime fp32 and static int8; the int8 file size and
accuracy against fp32; then the HTTP service (``helpers.serve``, a real uvicorn process) under
``--concurrency`` clients of this script's own asyncio load generator (keep-alive connections,
requests encoded once, like ``wrk``), with JSON bodies and
with PNG uploads: requests/s, p50, p99 and failures. The load generator runs on the same CPU as
the server, so on a 2-core machine the service figures are a lower bound.
"""
import argparse
import asyncio
import contextlib
import copy
import datetime
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import helpers
from helpers import serve


def raw_request(url: str, path: str, payload: dict) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive POST, built once by httpx (headers, multipart encoding)."""
    import httpx
    request = httpx.Request("POST", url + path, **payload)
    body = request.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers.setdefault("content-length", str(len(body)))
    headers["connection"] = "keep-alive"
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response with a Content-Length (uvicorn sends one for JSON): (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")),
                  None)
    if length is None:
        raise ValueError(f"response without Content-Length: {lines[0]!r}")
    return status, await reader.readexactly(length)


async def load(url: str, payloads: list[dict], *, n: int, concurrency: int, path: str = "/predict") -> dict:
    """POST ``n`` requests (cycling through ``payloads``, httpx keyword dicts) with ``concurrency`` in flight.

    Each of the ``concurrency`` clients holds one keep-alive connection and sends its next request as
    soon as the previous answer has arrived. The requests are encoded once, before the clock starts,
    and written to the socket as bytes (like ``wrk``), so that the load generator spends as little of
    the shared CPU as it can. Returns requests/s, p50/p99 latency (ms), the number of failures (a
    status other than 200, or a broken connection) and the first failure's text.
    """
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    raw = [raw_request(url, path, p) for p in payloads]
    latencies, failures, first_failure = [], 0, None
    todo = iter(range(n))

    async def client():
        nonlocal failures, first_failure
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in todo:  # shared iterator: each request is taken by exactly one client
                start = time.perf_counter()
                try:
                    writer.write(raw[i % len(raw)])
                    status, body = await read_response(reader)
                    ok, text = status == 200, f"{status} {body[:200].decode('utf-8', 'replace')}"
                except (OSError, ValueError, asyncio.IncompleteReadError) as err:
                    ok, text = False, repr(err)
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                latencies.append(time.perf_counter() - start)
                if not ok:
                    failures += 1
                    first_failure = first_failure or text
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    return {"n": n, "seconds": seconds, "rps": n / seconds, "p50_ms": float(np.median(ms)),
            "p99_ms": float(np.percentile(ms, 99)), "failures": failures, "first_failure": first_failure}


def run(coroutine):
    """asyncio.run, on uvloop's faster event loop where it is installed (the deploy extra installs it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def json_payloads(raw: np.ndarray) -> list[dict]:
    """httpx keyword dicts with JSON bodies (pixels / 255), encoded once so the client stays cheap."""
    return [{"content": json.dumps((img / 255).round(4).tolist()).encode(),
             "headers": {"content-type": "application/json"}} for img in raw]


def png_payloads(raw: np.ndarray) -> list[dict]:
    """httpx keyword dicts uploading each image as a PNG file in the multipart field 'file'."""
    from PIL import Image
    out = []
    for img in raw:
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, format="PNG")
        out.append({"files": {"file": ("digit.png", buffer.getvalue(), "image/png")}})
    return out


def latency_us(fn, x, repeats: int, warmup: int = 10) -> tuple[float, float]:
    """Median and 99th percentile of fn(x)'s wall time in microseconds."""
    for _ in range(warmup):
        fn(x)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e6), float(np.percentile(times, 99) * 1e6)


def ort_session(path, threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def train(epochs: int, seed: int) -> nn.Module:
    helpers.set_seed(seed)
    train_loader, test_loader = helpers.mnist_loaders("embedded", batch_size=64, seed=seed)
    torch.manual_seed(seed)
    model = helpers.small_cnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=epochs)
    helpers.fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, epochs=epochs,
                scheduler=scheduler, progress=False, verbose=False)
    return model.eval()


def export_models(model: nn.Module, x_train: torch.Tensor, workdir: Path) -> tuple[Path, Path]:
    """The fp32 ONNX file (dynamic batch) and its static int8 quantisation (calibrated on 500 train images)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (x_train[:2],), dynamo=True, verbose=False, input_names=["image"],
                                output_names=["logits"], dynamic_shapes={"input": {0: batch}})
    fp32, pre, int8 = workdir / "cnn.onnx", workdir / "cnn_pre.onnx", workdir / "cnn_int8.onnx"
    program.save(str(fp32))

    class Calibration(CalibrationDataReader):
        def __init__(self, images):
            self.batches = iter([{"image": images[i:i + 50].numpy()} for i in range(0, len(images), 50)])

        def get_next(self):
            return next(self.batches, None)

    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(int8), Calibration(x_train[torch.randperm(len(x_train))[:500]]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return fp32, int8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--repeats", type=int, default=500, help="timed calls at batch 1")
    parser.add_argument("--big-batch", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (Markdown)")
    args = parser.parse_args()
    if args.out is None:
        return report(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as file, contextlib.redirect_stdout(Tee(sys.stdout, file)):
        print(f"# Deploying the small CNN: `python benchmarks/deploy_benchmark.py {' '.join(sys.argv[1:])}`\n")
        print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n")
        report(args)


class Tee:
    """A text stream writing to several streams (the terminal and the --out file)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def report(args) -> None:
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}")

    model = train(args.epochs, args.seed)
    train_ds, test_ds = helpers.mnist_datasets("embedded")
    x_test, y_test = test_ds.tensors
    raw_test = helpers.load_mnist_arrays("embedded")[2]
    workdir = Path(tempfile.mkdtemp(prefix="deploy-bench-"))
    fp32_path, int8_path = export_models(model, train_ds.tensors[0], workdir)
    session, session_int8 = ort_session(fp32_path, args.threads), ort_session(int8_path, args.threads)

    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def inference(m, cl=False):
        def run(x):
            with torch.inference_mode():
                return m(x.contiguous(memory_format=torch.channels_last) if cl else x)
        return run

    variants = {"eager": lambda x: model(x), "inference_mode": inference(model),
                "channels_last": inference(model_cl, cl=True)}
    if not args.no_compile:
        compiled = torch.compile(copy.deepcopy(model))
        start = time.perf_counter()
        inference(compiled)(x_test[:1])  # compile for batch 1, then (dynamic) for the big batch
        inference(compiled)(x_test[:7])
        print(f"torch.compile: first calls took {time.perf_counter() - start:.1f} s (compilation)")
        variants["torch.compile"] = inference(compiled)
    variants["ONNX Runtime"] = lambda x: session.run(None, {"image": x.numpy()})
    variants["ONNX Runtime int8"] = lambda x: session_int8.run(None, {"image": x.numpy()})

    x1 = x_test[:1]
    xb = x_test.repeat(-(-args.big_batch // len(x_test)), 1, 1, 1)[:args.big_batch]
    print(f"\n## Inference latency and throughput (CPU, {args.threads} threads)\n")
    print(f"| variant | batch 1 median (us) | batch 1 p99 (us) | vs eager | batch {args.big_batch} (ms) | images/s |")
    print("|---|---|---|---|---|---|")
    eager_med = None
    for name, fn in variants.items():
        med, p99 = latency_us(fn, x1, args.repeats)
        big, _ = latency_us(fn, xb, 10, warmup=2)
        eager_med = eager_med or med
        print(f"| {name} | {med:.0f} | {p99:.0f} | {med / eager_med:.2f}x | {big / 1e3:.1f} | "
              f"{args.big_batch / big * 1e6:,.0f} |", flush=True)

    accs = {name: float((s.run(None, {"image": x_test.numpy()})[0].argmax(1) == y_test.numpy()).mean())
            for name, s in (("fp32", session), ("int8", session_int8))}
    print(f"\n## int8 (ONNX Runtime static quantisation, QDQ, per-channel)\n")
    print(f"fp32: {fp32_path.stat().st_size / 1024:.1f} KiB, accuracy {accs['fp32']:.4f}")
    print(f"int8: {int8_path.stat().st_size / 1024:.1f} KiB, accuracy {accs['int8']:.4f} "
          f"({100 * (accs['int8'] - accs['fp32']):+.1f} points)")

    print(f"\n## Service under load ({args.requests} requests, {args.concurrency} concurrent, 1 uvicorn worker, "
          "ONNX Runtime 1 thread)\n")
    print("| payload | requests/s | p50 (ms) | p99 (ms) | failures |")
    print("|---|---|---|---|---|")
    with serve.running(fp32_path) as (url, _proc):
        for name, payloads in (("JSON", json_payloads(raw_test[:100])), ("PNG upload", png_payloads(raw_test[:100]))):
            run(load(url, payloads, n=200, concurrency=args.concurrency))  # warm-up
            r = run(load(url, payloads, n=args.requests, concurrency=args.concurrency))
            print(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['failures']} |", flush=True)
            if r["failures"]:
                print(f"first failure: {r['first_failure']}")
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f} (other processes share this CPU)")


if __name__ == "__main__":
    main()
