"""Where tensors live, and how to make a run repeatable."""
from __future__ import annotations

import os
import random
import re

import numpy as np
import torch

ACCEPTED = '"cpu", "cuda", "cuda:N" (GPU number N), "mps" (Apple GPU), or None / "auto" for the best available'


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return the best available device: cuda, then mps (Apple GPUs), then cpu.

    ``preferred`` ("cpu", "cuda", "cuda:1", "mps" or None for the best one) lets a notebook's
    parameter cell pin a device; asking for one that is not there is an error, not a silent
    fallback, because a run that quietly lands on the CPU is slower than its reader expects.
    """
    if preferred is not None and preferred != "auto":
        device = _parse(preferred)
        _check_available(device)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _parse(preferred) -> torch.device:
    """``torch.device(preferred)``, with one short message instead of torch's list of twenty device types."""
    try:
        return torch.device(preferred)
    except (RuntimeError, TypeError):
        pass
    meant = _suggestion(preferred) if isinstance(preferred, str) else None
    raise ValueError(f"device {preferred!r} is not a device name; expected {ACCEPTED}"
                     + (f". Did you mean {meant!r}?" if meant else "")) from None


def _suggestion(name: str) -> str | None:
    """The name probably meant ("gpu" -> "cuda", "CUDA" -> "cuda", "cuda0" -> "cuda:0"), or None."""
    guess = re.sub(r"^(gpu|nvidia)", "cuda", name.strip().lower())
    guess = re.sub(r"^(apple|metal)", "mps", guess)
    guess = re.sub(r"^(cuda|mps|cpu)(\d+)$", r"\1:\2", guess)
    try:
        torch.device(guess)
    except RuntimeError:
        return None
    return guess


def _check_available(device: torch.device) -> None:
    """Raise one clear error when ``device`` is a GPU this machine does not have."""
    if device.type == "cuda" and not torch.cuda.is_available():
        build = (f"this torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None else
                 f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no GPU or driver")
        raise RuntimeError(
            f"device {str(device)!r} was asked for, but CUDA is not available here: torch sees no CUDA GPU "
            f"({build}). Use device=None to take the best available device; for a GPU, install a CUDA "
            "build of torch (pytorch.org/get-started) or, on Colab, choose Runtime > Change runtime type > GPU"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        which = "only cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise RuntimeError(
            f"device {str(device)!r} was asked for, but this machine has {count} CUDA GPU"
            f"{'s' if count != 1 else ''} ({which}); use device='cuda' or device=None"
        )
    if device.type == "mps" and not _mps_available():
        raise RuntimeError(
            f"device {str(device)!r} was asked for, but MPS (the Apple-silicon GPU) is not available here: "
            "it needs a Mac with Apple silicon, macOS 12.3+ and a torch built with MPS. "
            "Use device=None to take the best available device"
        )


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def set_seed(seed: int, *, deterministic: bool = False) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a seeded CPU generator.

    Pass the returned generator to a ``DataLoader(generator=...)`` so the shuffling order is
    tied to ``seed`` too. ``deterministic=True`` also asks torch for deterministic kernels
    (slower on GPU; an error where no deterministic kernel exists). On CPU, same seed + same
    thread count already gives bit-identical runs.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic (see torch docs: Reproducibility).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    else:
        torch.use_deterministic_algorithms(False)
    return torch.Generator().manual_seed(seed)
