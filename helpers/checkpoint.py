"""Checkpoints that resume a run exactly: weights, optimizer, scheduler, epoch, history and RNG state.

Everything is stored as tensors and plain Python values, so it loads with
``torch.load(..., weights_only=True)``, which cannot run code hidden in a malicious file.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMAT = 1


def _rng_state(train_loader=None) -> dict:
    np_state = np.random.get_state()
    state = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # A DataLoader built with generator=... shuffles from that generator, not the global one.
        "loader": None,
    }
    generator = getattr(train_loader, "generator", None)
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def _set_rng_state(state: dict, train_loader=None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = getattr(train_loader, "generator", None)
    if state["loader"] is not None and generator is not None:
        generator.set_state(state["loader"])


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    epoch: int, scheduler=None, history=None, train_loader=None) -> Path:
    """Write the training state after ``epoch`` epochs to ``path``; return the path."""
    path = Path(path)
    state = {
        "format": FORMAT,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": history.to_dict() if history is not None else None,
        "rng": _rng_state(train_loader),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # an interruption mid-write never leaves a corrupt checkpoint behind
    return path


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    scheduler=None, train_loader=None, restore_rng: bool = True) -> dict:
    """Restore what ``save_checkpoint`` wrote into ``model`` (and optimizer, scheduler, RNG); return the dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first, e.g. fit(..., checkpoint={str(path)!r})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a checkpoint written by helpers.save_checkpoint (format {FORMAT}); "
                         "for a bare state_dict use model.load_state_dict(torch.load(path, weights_only=True))")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit this model; build the same architecture that "
                         f"saved it. PyTorch says: {err}") from err
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        _set_rng_state(state["rng"], train_loader)
    return state
