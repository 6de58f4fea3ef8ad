"""The training loop every chapter repeats: train_epoch, evaluate, fit -> History.

A batch is ``(x, y)``. Classification passes integer class labels as ``y`` and gets accuracy;
anything else (regression, an autoencoder's ``(x, x)``) gets the loss only. Losses and
accuracies are per-example averages, right even when the last batch is short.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns (with a machine-specific path) and falls back to text bars.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .device import _check_available, get_device

# Losses that compare output and target element by element: their shapes must match exactly,
# because broadcasting (say output (64, 1) against target (64,)) silently computes the wrong thing.
_ELEMENTWISE_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss)


@dataclass
class History:
    """Per-epoch metrics of a ``fit`` run; accuracy is NaN where it does not apply."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict[str, list[float]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: list(v) for k, v in d.items()})


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """``torch.autocast`` when mixed precision is asked for; otherwise a no-op context (cheaper per batch)."""
    return contextlib.nullcontext() if amp_dtype is None else torch.autocast(device.type, dtype=amp_dtype)


def _check_loss_inputs(loss_fn, output: torch.Tensor, y: torch.Tensor) -> None:
    """Raise one clear error for output/target shapes the loss would reject or silently broadcast."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(_not_a_tensor(output))
    name = type(loss_fn).__name__
    if output.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: the model returned {output.shape[0]} outputs for a batch of "
                         f"{y.shape[0]} targets (output {tuple(output.shape)}, target {tuple(y.shape)}); "
                         "check the model's forward and the loader's batches")
    if isinstance(loss_fn, _ELEMENTWISE_LOSSES) and output.shape != y.shape:
        raise ValueError(f"{name} compares element by element, but output is {tuple(output.shape)} and "
                         f"target is {tuple(y.shape)}; broadcasting would silently compute the wrong loss. "
                         "Make them equal, e.g. output.squeeze(-1) or y.view_as(output)")
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)) and not y.is_floating_point():
        expected = output.shape[:1] + output.shape[2:]
        if y.shape != expected:
            raise ValueError(f"{name} with class-index targets wants target shape {tuple(expected)} for output "
                             f"{tuple(output.shape)} (batch, classes, ...), got {tuple(y.shape)}. Pass class "
                             "indices like tensor([3, 7, ...]), not one-hot rows or a (batch, 1) column: "
                             "y.argmax(1) or y.squeeze(1)")


def _not_a_tensor(output) -> str:
    """The message for a model whose forward returns a tuple (nn.LSTM: output, state) or a dict."""
    kind = type(output).__name__
    if isinstance(output, (tuple, list)):
        parts = [f"tensor {tuple(o.shape)}" if isinstance(o, torch.Tensor) else type(o).__name__ for o in output]
        kind = f"{kind} of {len(output)} ({', '.join(parts)})"
    return (f"the model returned a {kind}, not a tensor of logits: the loss and the accuracy need one tensor. "
            "nn.LSTM, nn.GRU and nn.RNN return (output, state); wrap the layer in a module whose forward "
            "returns one tensor, e.g. `output, _ = self.lstm(x); return self.head(output[:, -1])` "
            "(output[0][:, -1] of the tuple: the last time step, as chapter 6 does)")


def _correct(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Number of right predictions as a 0-dim tensor on the device (no sync), or None when targets are
    not class indices."""
    if y.is_floating_point() or y.dtype == torch.bool or output.ndim != y.ndim + 1:
        return None
    return (output.argmax(1) == y).sum()


class _Totals:
    """Per-example sums of loss and right predictions, kept on the device: reading a value from a GPU
    waits for all the work queued before it, so the sums are read once, at the end of the epoch."""

    def __init__(self, device: torch.device):
        # float64 sums give the same numbers as summing loss.item() * len(y) in Python (MPS has no float64)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.loss_sum = torch.zeros((), dtype=dtype, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.counts_correct, self.n, self.batch_losses = True, 0, []

    def add(self, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor, *, keep: bool = False) -> None:
        loss = loss.detach()
        self.loss_sum += loss.to(self.loss_sum.dtype) * len(y)
        if keep:
            self.batch_losses.append(loss)
        batch_correct = _correct(output, y)
        if batch_correct is None:
            self.counts_correct = False
        elif self.counts_correct:
            self.correct += batch_correct
        self.n += len(y)

    def summary(self) -> dict:
        loss_sum = self.loss_sum.item()  # the one CPU-GPU sync of the epoch
        return _summary(loss_sum, int(self.correct) if self.counts_correct else None, self.n)

    def first_non_finite_batch(self) -> tuple[int, float] | None:
        """(index, value) of the first batch whose loss was NaN or infinite, found after the epoch."""
        if not self.batch_losses:
            return None
        losses = torch.stack(self.batch_losses).float().cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        return (int(bad[0]), float(losses[bad[0]])) if len(bad) else None


def _check_model_device(model: nn.Module, device: torch.device) -> None:
    _check_available(device)  # "cuda" on a machine without CUDA: say so, not "the model is on cpu"
    param = next(model.parameters(), None)
    if param is not None and (param.device.type != device.type or
                              (device.index is not None and param.device.index != device.index)):
        raise ValueError(f"the model is on {param.device} but the data goes to {device}; "
                         f"move it first: model.to({str(device)!r}) (before creating the optimizer)")


def _batches(loader, device: torch.device, max_batches: int | None, desc: str, progress: bool):
    """Yield (batch_index, x, y) on ``device``; refuses empty loaders and batches that are not (x, y)."""
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    total = len(loader) if hasattr(loader, "__len__") else None
    if total is not None and max_batches is not None:
        total = min(total, max_batches)
    seen = 0
    # The bar is updated by hand rather than wrapping the loader: tqdm.auto calls iter() on what it
    # wraps an extra time, which draws from the loader's generator and changes the shuffle order.
    bar = tqdm(total=total, desc=desc, leave=False, disable=not progress)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(f"{desc}: each batch must be a pair (x, y), got {type(batch).__name__}"
                             f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}; "
                             "an autoencoder passes (x, x)")
        x, y = batch
        seen += 1
        yield i, x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        bar.update(1)
    bar.close()
    if seen == 0:
        raise ValueError(f"{desc}: the loader yielded no batches (empty dataset, or drop_last=True with "
                         "fewer examples than batch_size); check the dataset and batch_size")


def _summary(loss_sum: float, correct: int | None, n: int) -> dict:
    return {"loss": loss_sum / n, "acc": correct / n if correct is not None else math.nan, "n": n}


def train_epoch(model: nn.Module, loader, loss_fn, optimizer: torch.optim.Optimizer, device=None, *,
                max_batches: int | None = None, grad_clip: float | None = None, progress: bool = False,
                epoch: int = 1, amp_dtype: torch.dtype | None = None, scaler=None,
                scheduler=None) -> dict:
    """Train for one pass over ``loader``; return ``{"loss", "acc", "n"}`` averaged per example.

    ``scheduler``, if given, is stepped after every optimizer step (a per-batch schedule such as
    ``OneCycleLR`` with ``total_steps = epochs * len(loader)``).

    ``amp_dtype`` (torch.bfloat16 or torch.float16) runs forward and loss under ``torch.autocast``;
    float16 also needs a ``torch.amp.GradScaler`` as ``scaler`` (``fit`` makes one).
    """
    device = get_device(device)
    _check_model_device(model, device)
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be a positive max-norm or None, got {grad_clip!r}")
    model.train()
    totals = _Totals(device)
    for _, x, y in _batches(loader, device, max_batches, f"train epoch {epoch}", progress):
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp_dtype):
            output = model(x)
            _check_loss_inputs(loss_fn, output, y)
            loss = loss_fn(output, y)
        if loss.ndim != 0:
            raise ValueError(f"loss_fn returned shape {tuple(loss.shape)}, not a scalar; use reduction='mean'")
        # No loss.item() here: it would make the CPU wait for the GPU on every batch. The losses stay on
        # the device and are checked for NaN/inf once, after the epoch.
        if scaler is None:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        else:  # float16: scale the loss so small gradients do not underflow, unscale before clipping
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        totals.add(loss, output, y, keep=True)
    result = totals.summary()
    if not math.isfinite(result["loss"]):
        i, value = totals.first_non_finite_batch() or (None, result["loss"])
        raise FloatingPointError(f"loss is {value} at epoch {epoch}, batch {i}: training diverged. "
                                 "Lower the learning rate, clip gradients (grad_clip=1.0) or check the inputs")
    return result


@torch.no_grad()
def evaluate(model: nn.Module, loader, loss_fn, device=None, *, max_batches: int | None = None,
             progress: bool = False, amp_dtype: torch.dtype | None = None) -> dict:
    """Return ``{"loss", "acc", "n"}`` over ``loader`` in eval mode; the model's mode is restored after."""
    device = get_device(device)
    _check_model_device(model, device)
    was_training = model.training
    model.eval()
    try:
        totals = _Totals(device)
        for _, x, y in _batches(loader, device, max_batches, "evaluate", progress):
            with _autocast(device, amp_dtype):
                output = model(x)
                _check_loss_inputs(loss_fn, output, y)
                totals.add(loss_fn(output, y), output, y)
        return totals.summary()
    finally:
        model.train(was_training)


def _check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model_params = {id(p) for p in model.parameters()}
    opt_params = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(id(p) in model_params for p in opt_params):
        raise ValueError("the optimizer holds none of this model's parameters (was it created for another "
                         "model, or before the model was rebuilt?); create it as optimizer = "
                         "torch.optim.SGD(model.parameters(), lr=...)")


def fit(model: nn.Module, train_loader, val_loader, loss_fn, optimizer: torch.optim.Optimizer, *,
        epochs: int, device=None, scheduler=None, grad_clip: float | None = None,
        max_batches: int | None = None, checkpoint: str | Path | None = None, progress: bool = True,
        verbose: bool = True, amp_dtype: torch.dtype | None = None,
        scheduler_step: str = "epoch") -> History:
    """Train for ``epochs`` epochs, evaluating on ``val_loader`` (may be None) after each; return the History.

    ``max_batches`` limits every epoch to that many batches (a quick run). With ``checkpoint``,
    the full training state is saved after every epoch, and a later call with the same path
    resumes from it, ending with the same weights as a run that was never interrupted.
    ``amp_dtype=torch.bfloat16`` (or ``torch.float16``, with a gradient scaler) turns on mixed precision.
    ``scheduler_step="batch"`` steps ``scheduler`` after every batch instead of after every epoch
    (``History.lr`` still records the learning rate at the start of each epoch).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
    per_batch = scheduler is not None and scheduler_step == "batch"
    if per_batch and isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau reacts to the validation loss, known once per epoch: "
                         "use scheduler_step='epoch' with it")
    if amp_dtype not in (None, torch.bfloat16, torch.float16):
        raise ValueError(f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {amp_dtype!r}")
    if getattr(val_loader, "split", None) == "test":
        raise ValueError("fit's val_loader is the test loader: validation chooses (epochs, learning rate, the "
                         "model), so the test split would stop being a fair final check. Pass the validation "
                         "loader, e.g. train_loader, val_loader, test_loader = "
                         "helpers.mnist_loaders(val_fraction=0.2), and evaluate test_loader once at the end")
    device = get_device(device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    _check_model_device(model, device)
    _check_optimizer(model, optimizer)
    history, start = History(), 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler=scheduler, train_loader=train_loader)
        history, start = History.from_dict(state["history"]), state["epoch"]
        if verbose:
            print(f"resumed from {checkpoint} after epoch {start}")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        lr_at_start = optimizer.param_groups[0]["lr"]
        train = train_epoch(model, train_loader, loss_fn, optimizer, device, max_batches=max_batches,
                            grad_clip=grad_clip, progress=progress, epoch=epoch, amp_dtype=amp_dtype,
                            scaler=scaler, scheduler=scheduler if per_batch else None)
        val = (evaluate(model, val_loader, loss_fn, device, max_batches=max_batches, progress=progress,
                        amp_dtype=amp_dtype)
               if val_loader is not None else {"loss": math.nan, "acc": math.nan})
        history.lr.append(lr_at_start)
        if scheduler is not None and not per_batch:
            is_plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            scheduler.step(val["loss"]) if is_plateau else scheduler.step()
        for key, value in (("train_loss", train["loss"]), ("train_acc", train["acc"]),
                           ("val_loss", val["loss"]), ("val_acc", val["acc"]),
                           ("seconds", time.perf_counter() - t0)):
            getattr(history, key).append(value)
        if verbose:
            print(format_epoch(history, epoch - 1, epochs))
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, epoch=epoch, scheduler=scheduler,
                            history=history, train_loader=train_loader)
    return history


def format_epoch(history: History, i: int, epochs: int | None = None) -> str:
    """One line for epoch ``i`` (0-based) of ``history``; no timings, so the line is reproducible."""
    parts = [f"epoch {i + 1}" + (f"/{epochs}" if epochs else "")]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        value = getattr(history, key)[i]
        if not math.isnan(value):
            parts.append(f"{key} {value:.4f}")
    return "  ".join(parts)
