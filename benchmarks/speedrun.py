"""Chapter 9's speedrun: the small CNN from the naive loop to the fastest correct run, on CPU or GPU.

Prints a Markdown report; ``--out`` also writes it to a file.

    .venv/bin/python benchmarks/speedrun.py                     # this machine: CPU, 5 seeds + reference CNN
    .venv/bin/python benchmarks/speedrun.py --device cuda --seeds 10 --compile yes   # on an NVIDIA GPU
    .venv/bin/python benchmarks/speedrun.py --quick             # CPU smoke test of the script, seconds

Two measurements, as in a speedrun:

1. **The journey**: milliseconds per training step of the small CNN (``helpers.small_cnn``, the
   CNN chapter's) as one change after another is applied, each timed over ``--steps`` steps after
   ``--warmup`` untimed ones (warm-up reported beside). CPU: ``time.perf_counter``; CUDA: CUDA
   events around the timed steps (the GPU's own clock), with a synchronisation at the end.
2. **The speedrun**: the final recipe trained for a fixed step budget with ``--seeds`` seeds; per
   seed the test accuracy (embedded split, 1,000 images, evaluated once, after training) and the
   training seconds (evaluation excluded). The mean accuracy over the seeds is the result; no run
   stops early on the test set. On CPU the reference CNN (``benchmarks/cnn_reference.py``, the
   pytorch/examples network, 14 epochs) is timed in the same run, in a subprocess.
"""
from __future__ import annotations

import argparse
import datetime
import math
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import helpers

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("naive", "in-memory", "no-sync", "channels-last", "fused-adamw", "batch-256", "compiled")


class Recipe:
    """The speedrun recipe: one-cycle AdamW on the small CNN, batched random shifts, channels_last.

    The defaults are chapter 9's: 3 epochs of batch 64 (186 steps), peak lr 1e-2 after a 20 % warm-up.
    """

    def __init__(self, *, epochs: int = 3, batch_size: int = 64, lr: float = 1e-2, width: int = 16,
                 shift: int = 1, channels_last: bool = True, compile_mode: str | None = None):
        self.epochs, self.batch_size, self.lr, self.width = epochs, batch_size, lr, width
        self.shift, self.channels_last, self.compile_mode = shift, channels_last, compile_mode

    def __repr__(self) -> str:
        return (f"{self.epochs} epochs of batch {self.batch_size}, one-cycle AdamW max lr {self.lr:g}, "
                f"width {self.width}, random shifts of up to {self.shift} px, "
                f"{'channels_last' if self.channels_last else 'NCHW'}"
                + (f", torch.compile(mode={self.compile_mode!r})" if self.compile_mode else ""))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of (N, C, H, W) by its own random (dy, dx) in [-max_shift, max_shift]: one gather."""
    if max_shift == 0:
        return x
    n, c, h, w = x.shape
    background = -helpers.MNIST_MEAN / helpers.MNIST_STD  # a black pixel after normalisation
    padded = F.pad(x, (max_shift,) * 4, value=background)    # (N, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None] + dy[:, None]          # (N, H)
    cols = torch.arange(w, device=x.device)[None] + dx[:, None]          # (N, W)
    idx = (rows[:, :, None] * (w + 2 * max_shift) + cols[:, None, :]).view(n, 1, h * w)
    out = padded.flatten(2).gather(2, idx.expand(n, c, h * w)).view(n, c, h, w)
    return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
        memory_format=torch.channels_last) and c > 1 else out


def train(recipe: Recipe, data, device: torch.device, seed: int):
    """Train the small CNN with ``recipe`` from ``seed``; return the model in eval mode."""
    x_train, y_train = data
    n = len(x_train)
    steps_per_epoch = n // recipe.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {recipe.batch_size} is larger than the {n} training images: "
                         "choose a smaller --batch-size")
    torch.manual_seed(seed)
    model = helpers.small_cnn(width=recipe.width).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=5e-4, **fused_or_foreach(device))
    scheduler = one_cycle(optimizer, recipe.epochs * steps_per_epoch)
    step = make_step(model, optimizer, recipe.compile_mode)
    g = torch.Generator().manual_seed(seed)
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=g).to(device)
        for i in range(steps_per_epoch):          # drop_last: every step has the same shape
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            x = random_shift(x_train.index_select(0, idx), recipe.shift, g)
            step(x, y_train.index_select(0, idx))  # no .item(): nothing waits for the device
            scheduler.step()
    return model.eval()


def one_cycle(optimizer, total_steps: int, warmup_fraction: float = 0.2):
    """Linear warm-up to the optimizer's lr over the first 20 % of the steps, then linear decay to 0."""
    warm = max(1, round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: min((t + 1) / warm, max(0.0, (total_steps - t) / max(1, total_steps - warm))))


def fused_or_foreach(device: torch.device) -> dict:
    """fused=True where this torch has a fused AdamW for the device (CUDA; CPU since 2.4), else foreach."""
    return {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}


def make_step(model, optimizer, compile_mode: str | None):
    """One training step (forward, backward, optimizer step); compiled when ``compile_mode`` is set."""
    def forward_backward(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    fb = torch.compile(forward_backward, mode=compile_mode, dynamic=False) if compile_mode else forward_backward

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = fb(x, y)
        optimizer.step()
        return loss
    return step


@torch.no_grad()
def accuracy(model, x, y, batch_size: int = 1000) -> float:
    """Fraction of right predictions (eval mode, eager): one sync at the end."""
    correct = sum((model(xb).argmax(1) == yb).sum() for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    return int(correct) / len(y)


class Clock:
    """Seconds of device work between start() and stop(): CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self):
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            return self.begin.elapsed_time(self.end) / 1e3
        return time.perf_counter() - self.t0


# ---- the journey: ms per step as changes accumulate -----------------------------------------------

def stage_step(stage: str, data, device: torch.device, seed: int, compile_mode: str | None):
    """Return a function that runs one training step of ``stage`` (every change of the stages before it)."""
    i = STAGES.index(stage)
    batch_size = 256 if i >= STAGES.index("batch-256") else 64
    x_train, y_train = data
    torch.manual_seed(seed)
    model = helpers.small_cnn().to(device)
    channels_last = i >= STAGES.index("channels-last")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused = fused_or_foreach(device) if i >= STAGES.index("fused-adamw") else {"foreach": False}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, **fused)
    step = make_step(model, optimizer, compile_mode if stage == "compiled" else None)
    g = torch.Generator().manual_seed(seed)
    if i == 0:   # a DataLoader over CPU tensors, a copy per batch, and loss.item() every step
        loader = DataLoader(TensorDataset(x_train.cpu(), y_train.cpu()), batch_size=batch_size, shuffle=True,
                            drop_last=True, generator=g)
    else:        # the whole data set already in (device) memory, batches gathered by index
        loader = helpers.TensorLoader(x_train, y_train, batch_size=batch_size, shuffle=True, generator=g,
                                      drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"batch size {batch_size} is larger than the training set: use more data")
    batches = iter(())

    def run_one():
        nonlocal batches
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        x = random_shift(x, 1, g)
        loss = step(x, y)
        if i <= STAGES.index("in-memory"):
            loss.item()  # a host-device sync per step, as in a loop that logs every loss
    return run_one, batch_size


def journey_table(stages, data, device, steps: int, warmup: int, seed: int, compile_mode) -> tuple[str, list]:
    rows, results, base = [], [], None
    clock = Clock(device)
    for stage in stages:
        run_one, batch_size = stage_step(stage, data, device, seed, compile_mode)
        t0 = time.perf_counter()
        for _ in range(warmup):
            run_one()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        warmup_s = time.perf_counter() - t0
        clock.start()
        for _ in range(steps):
            run_one()
        seconds = clock.stop()
        ms = seconds / steps * 1e3
        per_sample = seconds / (steps * batch_size)
        base = base or per_sample
        results.append({"stage": stage, "ms_per_step": ms, "batch": batch_size, "us_per_sample": per_sample * 1e6,
                        "speedup": base / per_sample, "warmup_s": warmup_s})
        rows.append([stage, batch_size, f"{ms:.2f}", f"{per_sample * 1e6:.1f}", f"{base / per_sample:.2f}x",
                     f"{warmup_s:.2f}"])
        print(f"  measured: {rows[-1]}", file=sys.stderr, flush=True)
    table = markdown_table(["stage (adds to the one above)", "batch", "ms per step", "µs per sample",
                            "vs naive", f"warm-up ({warmup} steps), s"], rows)
    return table, results


# ---- the speedrun: mean accuracy over seeds at a fixed step budget -------------------------------

def speedrun(recipe: Recipe, data, test, device, seeds: list[int]) -> tuple[str, dict]:
    clock = Clock(device)
    t0 = time.perf_counter()
    warm = Recipe(epochs=1, batch_size=recipe.batch_size, lr=recipe.lr, width=recipe.width, shift=recipe.shift,
                  channels_last=recipe.channels_last, compile_mode=recipe.compile_mode)
    n_warm = min(len(data[0]), 10 * recipe.batch_size)   # 10 steps: allocator, kernel selection, compilation
    train(warm, (data[0][:n_warm], data[1][:n_warm]), device, seed=10_000)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - t0
    rows, accs, secs = [], [], []
    for seed in seeds:
        clock.start()
        model = train(recipe, data, device, seed)
        secs.append(clock.stop())
        accs.append(accuracy(model, *test))
        rows.append([seed, f"{accs[-1]:.4f}", f"{secs[-1]:.3f}"])
        print(f"  measured: seed {seed} acc {accs[-1]:.4f} {secs[-1]:.3f} s", file=sys.stderr, flush=True)
    mean_acc, mean_s = statistics.mean(accs), statistics.mean(secs)
    rows.append(["**mean**", f"**{mean_acc:.4f}**", f"**{mean_s:.3f}**"])
    steps = recipe.epochs * (len(data[0]) // recipe.batch_size)
    table = (f"Recipe: {recipe!r}; {steps} steps.\n"
             f"Warm-up (one untimed 10-step run before the seeds): {warmup_s:.2f} s.\n\n"
             + markdown_table(["seed", "test accuracy", "training seconds"], rows))
    return table, {"accs": accs, "seconds": secs, "mean_acc": mean_acc, "mean_s": mean_s, "warmup_s": warmup_s,
                   "steps": steps}


def reference_cnn(threads: int, epochs: int) -> tuple[str, float | None]:
    """Run benchmarks/cnn_reference.py in a subprocess; return its summary line and its training seconds."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cnn_reference.py"), "--threads", str(threads),
                           "--epochs", str(epochs)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"cnn_reference.py failed:\n{proc.stderr[-2000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    match = re.search(r"after (\d+(?:\.\d+)?) s of training", line)
    return line, float(match.group(1)) if match else None


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine(device: torch.device) -> list[str]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    else:
        try:
            with open("/proc/cpuinfo") as f:
                what = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            what = platform.processor() or platform.machine()
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "unknown"
    return [f"- device: {device} ({what}), {torch.get_num_threads()} torch threads",
            f"- load average at the start (1, 5, 15 min): {load}",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- torch {torch.__version__}, Python {platform.python_version()}"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--seeds", type=int, default=None, help="speedrun seeds (default 5 on CPU, 10 on CUDA)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="one-cycle AdamW peak learning rate")
    parser.add_argument("--width", type=int, default=16, help="channels of the small CNN's first block")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per journey stage")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per journey stage")
    parser.add_argument("--compile", choices=("auto", "yes", "no"), default="auto",
                        help="auto: reduce-overhead on CUDA, no on CPU (compilation exceeds the CPU budget)")
    parser.add_argument("--reference", choices=("auto", "yes", "no"), default="auto",
                        help="time benchmarks/cnn_reference.py too (auto: on CPU, not with --quick)")
    parser.add_argument("--quick", action="store_true", help="a CPU smoke test of the script: seconds")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (Markdown)")
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs", "batch_size", "width", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.warmup < 0 or not 0 < args.lr < 1:
        parser.error("--warmup must be >= 0 and --lr in (0, 1)")
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN time its algorithms once
    compile_mode = ("reduce-overhead" if device.type == "cuda" else "default") if (
        args.compile == "yes" or args.compile == "auto" and device.type == "cuda") else None
    if args.quick:
        args.seeds, args.steps, args.warmup, args.epochs = 2, 3, 1, 1
    seeds = list(range(args.seeds or (10 if device.type == "cuda" else 5)))
    train_ds, test_ds = helpers.mnist_datasets("embedded")
    data = tuple(t.to(device) for t in train_ds.tensors)
    test = tuple(t.to(device) for t in test_ds.tensors)
    if args.quick:
        data, test = (data[0][:512], data[1][:512]), (test[0][:200], test[1][:200])
    sections = []

    def emit(*parts: str) -> None:
        text = "\n".join(parts)
        sections.append(text)
        print(text, flush=True)

    command = " ".join(sys.argv[1:] if argv is None else argv)
    emit(f"# Speedrun (chapter 9): the small CNN on {device.type}\n\nCommand: "
         f"`python benchmarks/speedrun.py {command}`\n", "\n".join(machine(device)), "")
    stages = [s for s in STAGES if s != "compiled" or compile_mode]
    table, _ = journey_table(stages, data, device, args.steps, args.warmup, seed=0, compile_mode=compile_mode)
    emit(f"## The journey: one change at a time ({args.steps} timed steps each, warm-up excluded)\n", table, "")
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, width=args.width,
                    compile_mode=compile_mode)
    table, result = speedrun(recipe, data, test, device, seeds)
    emit(f"## Speedrun: {len(seeds)} seeds, fixed step budget, test accuracy after training\n", table, "")
    if args.reference == "yes" or args.reference == "auto" and device.type == "cpu" and not args.quick:
        line, ref_s = reference_cnn(torch.get_num_threads(), epochs=14)
        ratio = f"; the speedrun's mean training time is {ref_s / result['mean_s']:.0f}x shorter" if ref_s else ""
        emit("## Reference CNN (benchmarks/cnn_reference.py, same run)\n", line + ratio, "")
    report = "\n".join(sections) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return report


if __name__ == "__main__":
    main()
