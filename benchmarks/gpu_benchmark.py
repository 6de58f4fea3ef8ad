"""Chapter 9's GPU figures: matmul TFLOP/s, CNN training samples/s and time to 97.5 % test accuracy.

Prints a Markdown report (hardware, date, versions, then one table per measurement); ``--out`` also
writes it to a file, which chapter 9 displays when it is ``data/gpu_benchmark.md``:

    .venv/bin/python benchmarks/gpu_benchmark.py --out data/gpu_benchmark.md      # on an NVIDIA GPU
    .venv/bin/python benchmarks/gpu_benchmark.py --quick                          # CPU smoke run, ~1 min

The step-by-step speedrun of the same CNN (CUDA events, mean accuracy over seeds at a fixed step
budget, ``torch.compile(mode="reduce-overhead")``) is ``benchmarks/speedrun.py``; this script keeps
the raw throughput figures that ``data/gpu_benchmark.md`` records.

The CNN is the CNN chapter's small CNN (``helpers.small_cnn``: two conv-BatchNorm-ReLU blocks),
trained on the embedded MNIST split (4,000 train / 1,000 test). Its training pipelines, from naive to fast:

1. ``DataLoader`` over CPU tensors (num_workers=0), a host-to-device copy per batch, float32;
2. the whole data set on the device, batches indexed there (``helpers.TensorLoader``), float32;
3. as 2, under ``torch.autocast`` with bfloat16;
4. as 3, with the model wrapped in ``torch.compile`` (``--compile``; on by default on CUDA).

Every timing synchronises the device first (CUDA runs asynchronously) and excludes warm-up steps,
except the time to accuracy, which counts everything, compilation included, as a user waits for it.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers

logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # a CUDA_HOME note on GPU-less machines
from torch.utils import benchmark  # noqa: E402

if str(Path(__file__).resolve().parent) not in sys.path:  # imported by path (a test), not run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import Report, cpu_name, markdown_table  # noqa: E402  (benchmarks/report.py)

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


def small_cnn() -> nn.Module:
    """The CNN chapter's small CNN, the one definition the course shares (helpers.small_cnn)."""
    return helpers.small_cnn()


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls: the fp32_precision API of torch 2.9+, allow_tf32 before it."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = "tf32" if enabled else "ieee"
    else:
        matmul.allow_tf32 = enabled


def sync(device: torch.device) -> None:
    """Wait for the device to finish queued work (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hardware(device: torch.device) -> list[str]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
               f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    else:
        gpu = "none (this run measures the CPU)"
    return [f"- device: {device}", f"- GPU: {gpu}",
            f"- CPU: {cpu_name()}, {torch.get_num_threads()} torch threads",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- torch {torch.__version__}, Python {platform.python_version()}"]


def matmul_table(device: torch.device, sizes: list[int], precisions: list[str], min_run_time: float) -> str:
    """TFLOP/s of an n x n @ n x n matmul (2 n^3 flops) for each size and precision."""
    rows = []
    for n in sizes:
        row = [n]
        for precision in precisions:
            if precision == "tf32" and device.type != "cuda" or precision == "fp16" and device.type == "cpu":
                row.append("n/a")
                continue
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
            set_tf32(precision == "tf32")  # fp32 means true fp32 here
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            # Timer synchronises CUDA around its measurements; blocked_autorange repeats until min_run_time.
            seconds = benchmark.Timer("a @ b", globals={"a": a, "b": b}).blocked_autorange(
                min_run_time=min_run_time).median
            row.append(f"{2 * n**3 / seconds / 1e12:.2f}")
            print(f"  measured: n={n} {precision} {row[-1]} TFLOP/s", file=sys.stderr, flush=True)
        rows.append(row)
    set_tf32(False)
    return markdown_table(["n"] + [f"{p} TFLOP/s" for p in precisions], rows)


def pipeline(name: str, data: tuple, device: torch.device, batch_size: int, seed: int):
    """Return (train_batches, amp_dtype, compile) for one of the pipelines in the module docstring."""
    x_train, y_train = data
    if name == "naive":
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(seed))
        return loader, None, False
    loader = helpers.TensorLoader(x_train.to(device), y_train.to(device), batch_size=batch_size, shuffle=True,
                                  generator=torch.Generator().manual_seed(seed), drop_last=True)
    amp_dtype = torch.bfloat16 if name in ("resident+bf16", "resident+bf16+compile") else None
    return loader, amp_dtype, name.endswith("compile")


def make_model(device: torch.device, seed: int, compiled: bool, lr: float):
    torch.manual_seed(seed)
    model = small_cnn().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    return model, (torch.compile(model) if compiled else model), optimizer


def train_step(model, optimizer, loss_fn, x, y, device, amp_dtype):
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # no-ops for resident data
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()


def batches_forever(loader):
    if len(loader) == 0:  # else the loop below would spin for ever without yielding
        raise ValueError(f"batch size {loader.batch_size} is larger than the training set, and drop_last=True "
                         "leaves no batch: choose a smaller --batch-size/--batch-sizes")
    while True:
        yield from loader


def throughput(name: str, data, device, batch_size: int, steps: int, warmup: int, seed: int) -> tuple[float, float]:
    """Training samples/s of pipeline ``name`` over ``steps`` steps after ``warmup``; also the warm-up seconds."""
    loader, amp_dtype, compiled = pipeline(name, data, device, batch_size, seed)
    _, model, optimizer = make_model(device, seed, compiled, lr=1e-3)
    loss_fn, batches = nn.CrossEntropyLoss(), batches_forever(loader)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(warmup):  # cuDNN autotuning, allocator warm-up, compilation
        train_step(model, optimizer, loss_fn, *next(batches), device, amp_dtype)
    sync(device)
    t1 = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, loss_fn, *next(batches), device, amp_dtype)
    sync(device)  # without it we would time the kernel launches, not the kernels
    return steps * batch_size / (time.perf_counter() - t1), t1 - t0


def throughput_table(names, data, device, batch_size, steps, warmup, seed) -> str:
    rows, base = [], None
    for name in names:
        samples_per_s, warmup_s = throughput(name, data, device, batch_size, steps, warmup, seed)
        base = base or samples_per_s
        rows.append([name, f"{samples_per_s:,.0f}", f"{samples_per_s / base:.1f}x", f"{warmup_s:.1f}"])
        print(f"  measured: {rows[-1]}", file=sys.stderr, flush=True)
    return markdown_table(["pipeline", "train samples/s", "vs naive", f"first {warmup} steps, s"], rows)


def memory_table(data, device, batch_sizes: list[int], steps: int, seed: int) -> str:
    """Samples/s and peak memory against batch size, GPU-resident data, bf16 autocast."""
    rows = []
    for batch_size in batch_sizes:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        samples_per_s, _ = throughput("resident+bf16", data, device, batch_size, steps, 3, seed)
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}" if device.type == "cuda" else "n/a"
        rows.append([batch_size, f"{samples_per_s:,.0f}", peak])
    return markdown_table(["batch size", "train samples/s", "peak allocated MiB"], rows)


@torch.no_grad()
def accuracy(model, x, y, device, amp_dtype) -> float:
    model.eval()
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(1000), y.split(1000)))
    model.train()
    return correct / len(y)


def time_to_accuracy(name, data, test, device, batch_size, lr, target, max_epochs, seed):
    """Wall-clock seconds (everything included) and epochs until test accuracy >= target, or None."""
    sync(device)
    t0 = time.perf_counter()
    loader, amp_dtype, compiled = pipeline(name, data, device, batch_size, seed)
    _, model, optimizer = make_model(device, seed, compiled, lr)
    x_test, y_test = test[0].to(device), test[1].to(device)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, max_epochs + 1):
        for x, y in loader:
            train_step(model, optimizer, loss_fn, x, y, device, amp_dtype)
        acc = accuracy(model, x_test, y_test, device, amp_dtype)  # .item() inside: a sync point
        if acc >= target:
            return time.perf_counter() - t0, epoch, acc
    return None, max_epochs, acc


def tta_table(names, data, test, device, batch_size, lr, target, max_epochs, seed) -> str:
    rows = []
    for name in names:
        seconds, epochs, acc = time_to_accuracy(name, data, test, device, batch_size, lr, target, max_epochs, seed)
        reached = f"{seconds:.1f}" if seconds is not None else f"not reached in {max_epochs} epoch(s)"
        rows.append([name, reached, epochs, f"{acc:.3f}"])
        print(f"  measured: {rows[-1]}", file=sys.stderr, flush=True)
    return markdown_table(["pipeline", f"seconds to {target:.1%}", "epochs", "test accuracy"], rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: the best available)")
    parser.add_argument("--dataset", default="embedded", choices=helpers.DATASETS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--batch-size", type=int, default=256, help="for the samples/s table")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024, 2048], help="memory table")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per pipeline")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--compile", choices=("auto", "yes", "no"), default="auto", help="auto: only on CUDA")
    parser.add_argument("--target", type=float, default=0.975, help="test accuracy to reach")
    parser.add_argument("--tta-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW, for the time-to-accuracy runs")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per matmul measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes: a CPU smoke test of the script")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (Markdown)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batch_sizes, args.steps, args.warmup = [128, 256, 512], [64, 256], 10, 2
        args.max_epochs, args.min_run_time = 1, 0.2
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    device = helpers.get_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest convolutions
    compiled = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
    names = ["naive", "resident", "resident+bf16"] + (["resident+bf16+compile"] if compiled else [])
    train_ds, test_ds = helpers.mnist_datasets(args.dataset)
    report = Report()  # prints each section as soon as it is measured: a long run shows progress
    emit = report.emit
    emit(f"# GPU benchmark (chapter 9)\n\nCommand: `python benchmarks/gpu_benchmark.py "
         f"{' '.join(sys.argv[1:] if argv is None else argv)}`\n", "\n".join(hardware(device)), "")
    emit("## Matmul throughput (n x n @ n x n, 2n^3 flops)\n",
         matmul_table(device, args.sizes, args.precisions, args.min_run_time), "")
    emit(f"## Small CNN training, batch {args.batch_size}, {args.steps} timed steps\n",
         throughput_table(names, train_ds.tensors, device, args.batch_size, args.steps, args.warmup, args.seed), "")
    emit("## Batch size: speed and memory (GPU-resident data, bf16 autocast)\n",
         memory_table(train_ds.tensors, device, args.batch_sizes, args.steps, args.seed), "")
    emit(f"## Time to {args.target:.1%} test accuracy ({args.dataset} data, AdamW lr {args.lr}, "
         f"batch {args.tta_batch_size}, evaluated after every epoch, compilation included)\n",
         tta_table([names[0], names[-1]], train_ds.tensors, test_ds.tensors, device, args.tta_batch_size,
                   args.lr, args.target, args.max_epochs, args.seed))
    return report.finish(args.out)


if __name__ == "__main__":
    main()
