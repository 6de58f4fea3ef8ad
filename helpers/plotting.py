"""Plots the chapters draw again and again; each returns its axes so a notebook can add to them."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_history(history, ax=None):
    """Plot loss (and accuracy, when there is one) per epoch; return the axes (array of 1 or 2)."""
    if len(history) == 0:
        raise ValueError("history is empty: fit() has not completed an epoch yet")
    epochs = np.arange(1, len(history) + 1)
    has_acc = not all(math.isnan(a) for a in history.train_acc + history.val_acc)
    if ax is None:
        _, ax = plt.subplots(1, 2 if has_acc else 1, figsize=(9 if has_acc else 4.5, 3), squeeze=False)
    axes = np.atleast_1d(ax).ravel()
    panels = [("loss", history.train_loss, history.val_loss)]
    if has_acc and len(axes) > 1:
        panels.append(("accuracy", history.train_acc, history.val_acc))
    for a, (name, train, val) in zip(axes, panels):
        a.plot(epochs, train, "o-", label="train")
        if not all(math.isnan(v) for v in val):
            a.plot(epochs, val, "s--", label="validation")
        a.set_xlabel("epoch")
        a.set_ylabel(name)
        a.legend()
        a.grid(alpha=0.3)
    return axes


def show_images(images, labels=None, *, preds=None, ncols: int = 8, cmap: str = "gray", size: float = 1.2):
    """Show a grid of images (N, H, W), (N, 1, H, W) or (N, 3, H, W); titles from labels/preds; return the axes."""
    images = torch.as_tensor(images).detach().cpu()
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images.permute(0, 2, 3, 1)  # (N, H, W, C) for imshow
    elif images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), (N, 1, H, W) or (N, 3, H, W); got {tuple(images.shape)}")
    n = len(images)
    if n == 0:
        raise ValueError("no images to show")
    for name, values in (("labels", labels), ("preds", preds)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} images")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    _, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * nrows), squeeze=False)
    for i, a in enumerate(axes.ravel()):
        a.axis("off")
        if i >= n:
            continue
        img = images[i].squeeze(-1) if images[i].shape[-1] == 1 else images[i]
        a.imshow(img.numpy(), cmap=cmap if img.ndim == 2 else None)
        title = []
        if labels is not None:
            title.append(str(int(labels[i])))
        if preds is not None:
            title.append(f"→{int(preds[i])}")
        wrong = labels is not None and preds is not None and int(labels[i]) != int(preds[i])
        a.set_title(" ".join(title), fontsize=9, color="crimson" if wrong else "black")
    return axes
