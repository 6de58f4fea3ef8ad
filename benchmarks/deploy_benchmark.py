"""Deploying the small CNN (chapter 10): inference latency/throughput per runtime, int8, and the service under load.

    .venv/bin/python benchmarks/deploy_benchmark.py --out data/deploy_benchmark.md \\
        --json-out data/deploy_openloop.json          # the recorded run, on a quiet machine: about 13 min
    .venv/bin/python benchmarks/deploy_benchmark.py --skip-runtimes --epochs 0 --requests 200 \\
        --rates 250,500 --rate-requests 300           # a smoke run of the service parts: about 1 min

Prints a Markdown report (``--out`` also writes it), measured in one process so the ratios hold:

1. batch-1 latency (median and p99 over ``--repeats`` calls) and large-batch throughput for PyTorch
   eager, ``inference_mode``, ``channels_last``, ``torch.compile``, ONNX Runtime fp32 and static int8;
   the int8 file size and accuracy against fp32 (``--skip-runtimes`` leaves these out);
2. the HTTP service (``helpers.serve``, a real uvicorn process) under a **closed loop**:
   ``--concurrency`` clients each sending its next request when its answer came, JSON bodies and PNG
   uploads: requests/s, p50, p99 and failures;
3. the service under an **open loop** (``benchmarks/loadgen.py``): ``--rate-requests`` requests per
   rate, sent on a schedule fixed in advance at each of ``--rates`` requests/s, latency counted from
   each scheduled send (no coordinated omission), for JSON bodies and PNG uploads and three servers:
   ``inline`` (parsing and inference on the event loop, the service's old handler), ``threadpool``
   (today's handler) and ``workers2`` (``--workers 2``). Where ``taskset`` exists, the client runs on
   ``--client-core`` and the server on ``--server-cores`` (one core each on a 2-core machine).
   ``--json-out`` writes these figures for ``helpers.serve.plot_latency_vs_load``.

The load generator is this script's own asyncio code (requests encoded once, raw keep-alive sockets,
like wrk), because wrk2, vegeta and k6 are not installed here.
"""
import argparse
import copy
import datetime
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import helpers
from helpers import serve

if str(Path(__file__).resolve().parent) not in sys.path:  # imported by path (a test), not run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import load, open_loop, run  # noqa: E402  (benchmarks/loadgen.py)
from report import Report, cpu_name, markdown_table  # noqa: E402  (benchmarks/report.py)

# name: (uvicorn worker processes, extra command-line options of helpers.serve)
MODES = {"inline": (1, ("--inline",)), "threadpool": (1, ()), "workers2": (2, ())}
FORMATS = ("json", "png")
RATES = (250, 500, 1000, 2000, 4000)
SLO_MS = 20.0  # the knee: the highest offered rate up to which every rate kept p99 within this


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


def train(epochs: int, seed: int) -> nn.Module:
    """The small CNN trained for ``epochs`` on the embedded data (0: untrained, enough to time the service)."""
    helpers.set_seed(seed)
    torch.manual_seed(seed)
    model = helpers.small_cnn()
    if epochs > 0:
        # as in chapter 10: 3,200 training images, 800 for validation, one-cycle stepped per batch
        train_loader, val_loader, _ = helpers.mnist_loaders("embedded", batch_size=64, seed=seed,
                                                            val_fraction=0.2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01,
                                                        total_steps=epochs * len(train_loader))
        helpers.fit(model, train_loader, val_loader, nn.CrossEntropyLoss(), optimizer, epochs=epochs,
                    scheduler=scheduler, scheduler_step="batch", progress=False, verbose=False)
    return model.eval()


def export_onnx(model: nn.Module, x: torch.Tensor, workdir: Path) -> Path:
    """The model as an fp32 ONNX file with a dynamic batch dimension."""
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (x[:2],), dynamo=True, verbose=False, input_names=["image"],
                                output_names=["logits"], dynamic_shapes={"input": {0: batch}})
    path = workdir / "cnn.onnx"
    program.save(str(path))
    return path


def quantize_int8(fp32: Path, x_train: torch.Tensor) -> Path:
    """Static int8 quantisation of ``fp32`` (QDQ, per channel), calibrated on 500 training images."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )
    pre, int8 = fp32.with_name("cnn_pre.onnx"), fp32.with_name("cnn_int8.onnx")

    class Calibration(CalibrationDataReader):
        def __init__(self, images):
            self.batches = iter([{"image": images[i:i + 50].numpy()} for i in range(0, len(images), 50)])

        def get_next(self):
            return next(self.batches, None)

    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(int8), Calibration(x_train[torch.randperm(len(x_train))[:500]]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return int8


def runtime_sections(args, model: nn.Module, fp32_path: Path, train_x: torch.Tensor, emit) -> None:
    """Emit the latency/throughput table of each runtime and the int8 comparison."""
    _, test_ds = helpers.mnist_datasets("embedded")
    x_test, y_test = test_ds.tensors
    int8_path = quantize_int8(fp32_path, train_x)
    session, session_int8 = serve.ort_session(fp32_path, args.threads), serve.ort_session(int8_path, args.threads)
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def inference(m, cl=False):
        def call(x):
            with torch.inference_mode():
                return m(x.contiguous(memory_format=torch.channels_last) if cl else x)
        return call

    variants = {"eager": lambda x: model(x), "inference_mode": inference(model),
                "channels_last": inference(model_cl, cl=True)}
    notes = []
    if not args.no_compile:
        compiled = torch.compile(copy.deepcopy(model))
        start = time.perf_counter()
        inference(compiled)(x_test[:1])  # compile for batch 1, then (dynamic) for the big batch
        inference(compiled)(x_test[:7])
        notes.append(f"torch.compile: first calls took {time.perf_counter() - start:.1f} s (compilation)\n")
        variants["torch.compile"] = inference(compiled)
    variants["ONNX Runtime"] = lambda x: session.run(None, {"image": x.numpy()})
    variants["ONNX Runtime int8"] = lambda x: session_int8.run(None, {"image": x.numpy()})

    x1 = x_test[:1]
    xb = x_test.repeat(-(-args.big_batch // len(x_test)), 1, 1, 1)[:args.big_batch]
    rows, eager_med = [], None
    for name, fn in variants.items():
        med, p99 = latency_us(fn, x1, args.repeats)
        big, _ = latency_us(fn, xb, 10, warmup=2)
        eager_med = eager_med or med
        rows.append([name, f"{med:.0f}", f"{p99:.0f}", f"{med / eager_med:.2f}x", f"{big / 1e3:.1f}",
                     f"{args.big_batch / big * 1e6:,.0f}"])
    emit(*notes, f"## Inference latency and throughput (CPU, {args.threads} threads)\n",
         markdown_table(["variant", "batch 1 median (us)", "batch 1 p99 (us)", "vs eager",
                         f"batch {args.big_batch} (ms)", "images/s"], rows), "")

    accs = {name: float((s.run(None, {"image": x_test.numpy()})[0].argmax(1) == y_test.numpy()).mean())
            for name, s in (("fp32", session), ("int8", session_int8))}
    emit("## int8 (ONNX Runtime static quantisation, QDQ, per-channel)\n",
         f"fp32: {fp32_path.stat().st_size / 1024:.1f} KiB, accuracy {accs['fp32']:.4f}",
         f"int8: {int8_path.stat().st_size / 1024:.1f} KiB, accuracy {accs['int8']:.4f} "
         f"({100 * (accs['int8'] - accs['fp32']):+.1f} points)", "")


def closed_loop_section(args, fp32_path: Path, raw_test: np.ndarray) -> str:
    """The service under ``args.concurrency`` closed-loop clients, JSON and PNG: a Markdown section."""
    rows, failures = [], []
    with serve.running(fp32_path) as (url, _proc):
        for name, payloads in (("JSON", json_payloads(raw_test[:100])), ("PNG upload", png_payloads(raw_test[:100]))):
            run(load(url, payloads, n=200, concurrency=args.concurrency))  # warm-up
            r = run(load(url, payloads, n=args.requests, concurrency=args.concurrency))
            rows.append([name, f"{r['rps']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", r["failures"]])
            if r["failures"]:
                failures.append(f"{name}: first failure: {r['first_failure']}")
    return "\n".join([f"## Service under load, closed loop ({args.requests} requests, {args.concurrency} concurrent, "
                      "1 uvicorn worker, thread-pool handler, ONNX Runtime 1 thread)\n",
                      "Each client sends its next request when its answer has come, so a slow server is "
                      "offered less load: see the open-loop figures below for latency under a fixed load.\n",
                      markdown_table(["payload", "requests/s", "p50 (ms)", "p99 (ms)", "failures"], rows), *failures,
                      ""])


def cores(text: str) -> set[int]:
    """The CPU numbers of a taskset-style list: ``"1"``, ``"1,3"``, ``"2-5"``."""
    out = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def pin(client_core: int, server_cores: str) -> tuple[tuple[str, ...], str]:
    """Pin this process (the load generator) to ``client_core``; return the server's ``taskset`` prefix
    and a sentence saying what was pinned. Without taskset or enough cores nothing is pinned."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_setaffinity"):
        return (), "not pinned: `taskset` is not installed (client and server share every core)"
    available = os.sched_getaffinity(0)
    wanted = {client_core} | cores(server_cores)
    if not wanted <= available or client_core in cores(server_cores):
        return (), (f"not pinned: cores {sorted(wanted)} are not {len(wanted)} distinct cores of the "
                    f"{len(available)} available (client and server share every core)")
    os.sched_setaffinity(0, {client_core})
    return ("taskset", "-c", server_cores), (f"client (this script) on core {client_core}, server on core(s) "
                                             f"{server_cores} (`taskset`)")


def open_loop_sweep(args, fp32_path: Path, raw_test: np.ndarray, prefix: tuple[str, ...]) -> dict:
    """{format: {mode: [one ``loadgen.open_loop`` result per rate]}}: every mode, format and rate."""
    payloads = {"json": json_payloads(raw_test[:100]), "png": png_payloads(raw_test[:100])}
    results = {fmt: {mode: [] for mode in args.modes} for fmt in args.formats}
    for mode in args.modes:
        workers, extra = MODES[mode]
        with serve.running(fp32_path, workers=workers, extra_args=extra, prefix=prefix) as (url, _proc):
            for fmt in args.formats:
                run(open_loop(url, payloads[fmt], rate=min(args.rates), n=min(300, args.rate_requests)))  # warm-up
                for rate in args.rates:
                    r = run(open_loop(url, payloads[fmt], rate=rate, n=args.rate_requests))
                    results[fmt][mode].append(r)
                    print(f"  {fmt} {mode} {rate}/s: p99 {r['p99_ms']} ms, {r['errors']} errors", file=sys.stderr,
                          flush=True)
                    time.sleep(0.5)  # let the server drain before the next rate
    return results


def open_loop_section(args, results: dict, pinning: str) -> str:
    """The open-loop figures as Markdown: one table per format, and each mode's knee."""
    def cell(value):
        return "-" if value is None else f"{value:.1f}"

    parts = [f"## Service under load, open loop ({args.rate_requests:,} requests per rate, latency from each "
             "scheduled send)\n",
             f"Requests sent on a schedule fixed in advance; {pinning}. `inline`: parsing and inference on the "
             "event loop (the old handler); `threadpool`: in the thread pool (today's); `workers2`: "
             "`--workers 2`. A failed request (503 when over the concurrency limit, a timeout...) counts as "
             "infinitely slow, so over 1% failures leaves no p99 (-). A large client lag means the load "
             "generator, not the server, fell behind.\n"]
    for fmt in args.formats:
        rows = [[mode, f"{r['offered_rps']:,}", f"{r['achieved_rps']:,.0f}", cell(r["p50_ms"]), cell(r["p90_ms"]),
                 cell(r["p99_ms"]), cell(r["max_ms"]), r["errors"], cell(r["client_lag_p99_ms"])]
                for mode, rs in results[fmt].items() for r in rs]
        knees = ", ".join(f"{mode} {k:,} req/s" if (k := serve.knee(rs, SLO_MS)) else f"{mode} none"
                          for mode, rs in results[fmt].items())
        parts += [f"### {'JSON bodies' if fmt == 'json' else 'PNG uploads'}\n",
                  markdown_table(["server", "offered req/s", "achieved req/s", "p50 (ms)", "p90 (ms)", "p99 (ms)",
                                  "max (ms)", "errors", "client lag p99 (ms)"], rows), "",
                  f"Knee (highest offered rate up to which every rate kept p99 <= {SLO_MS:g} ms): {knees}.\n"]
    return "\n".join(parts)


def rate_list(text: str) -> list[int]:
    """An argparse type: comma-separated positive request rates."""
    try:
        rates = [int(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated requests/s such as 250,500, got {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"every rate must be > 0, got {text!r}")
    return rates


def choices(allowed):
    """An argparse type: a comma-separated subset of ``allowed``."""
    def parse(text: str) -> list[str]:
        picked = text.split(",")
        unknown = [p for p in picked if p not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {','.join(allowed)}")
        return picked
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="training epochs (0: untrained, times only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--repeats", type=int, default=500, help="timed calls at batch 1")
    parser.add_argument("--big-batch", type=int, default=1000)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    parser.add_argument("--skip-runtimes", action="store_true", help="only the service: no runtime or int8 tables")
    parser.add_argument("--requests", type=int, default=2000, help="closed loop: requests per payload (0: skip)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed loop: clients")
    parser.add_argument("--rates", type=rate_list, default=list(RATES), help="open loop: requests/s, e.g. 250,500")
    parser.add_argument("--rate-requests", type=int, default=10_000, help="open loop: requests per rate (0: skip)")
    parser.add_argument("--modes", type=choices(MODES), default=list(MODES), help="open loop: servers to compare")
    parser.add_argument("--formats", type=choices(FORMATS), default=list(FORMATS), help="open loop: json,png")
    parser.add_argument("--client-core", type=int, default=0, help="open loop: the load generator's core")
    parser.add_argument("--server-cores", default="1", help="open loop: the server's cores (taskset -c syntax)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (Markdown)")
    parser.add_argument("--json-out", type=Path, default=None, help="write the open-loop figures here (JSON)")
    args = parser.parse_args(argv)
    if args.epochs < 0 or args.requests < 0 or args.rate_requests < 0:
        parser.error("--epochs, --requests and --rate-requests must be >= 0")
    if 0 < args.rate_requests < 100:
        parser.error(f"--rate-requests {args.rate_requests}: a p99 needs at least 100 requests per rate")
    if args.json_out is not None and args.rate_requests == 0:
        parser.error("--json-out needs the open loop: give --rate-requests > 0")
    try:
        cores(args.server_cores)
    except ValueError:
        parser.error(f"--server-cores {args.server_cores!r}: expected a core list such as 1 or 1-3")
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/deploy_benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
    date = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    report = Report()  # prints each section as soon as it is measured: a long run shows progress
    emit = report.emit
    emit(f"# Deploying the small CNN: `{command.strip()}`\n", f"{date}\n",
         f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, "
         f"load average {os.getloadavg()[0]:.1f}\n")

    model = train(args.epochs, args.seed)
    train_ds, _ = helpers.mnist_datasets("embedded")
    raw_test = helpers.load_mnist_arrays("embedded")[2]
    fp32_path = export_onnx(model, train_ds.tensors[0], Path(tempfile.mkdtemp(prefix="deploy-bench-")))
    if not args.skip_runtimes:
        runtime_sections(args, model, fp32_path, train_ds.tensors[0], emit)
    if args.requests:
        emit(closed_loop_section(args, fp32_path, raw_test))
    if args.rate_requests:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        prefix, pinning = pin(args.client_core, args.server_cores)
        try:
            results = open_loop_sweep(args, fp32_path, raw_test, prefix)
        finally:
            if affinity is not None:
                os.sched_setaffinity(0, affinity)
        emit(open_loop_section(args, results, pinning))
        if args.json_out is not None:
            meta = {"command": command.strip(), "date": date,
                    "cpu": cpu_name(), "cores": os.cpu_count(), "pinning": pinning,
                    "requests_per_rate": args.rate_requests, "rates": args.rates, "slo_ms": SLO_MS,
                    "server": "helpers.serve, ONNX Runtime 1 thread, max_concurrency "
                              f"{serve.MAX_CONCURRENCY} per worker",
                    "latency": "ms from each request's scheduled send; a failed request counts as infinitely slow "
                               "(null when over 1% failed)"}
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    emit(f"load average after the run: {os.getloadavg()[0]:.1f} (other processes share this CPU)")
    return report.finish(args.out)


if __name__ == "__main__":
    main()
