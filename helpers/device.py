"""Where tensors live, and how to make a run repeatable."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def get_device(preferred: str | None = None) -> torch.device:
    """Return the best available device: cuda, then mps (Apple GPUs), then cpu.

    ``preferred`` ("cpu", "cuda", "cuda:1", "mps" or None for the best one) lets a notebook's
    parameter cell pin a device; asking for one that is not there is an error, not a silent
    fallback, because a run that quietly lands on the CPU is slower than its reader expects.
    """
    if preferred is not None and preferred != "auto":
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {preferred!r} was asked for but torch sees no CUDA GPU "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "use device=None to take the best available device"
            )
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(
                f"device {preferred!r} was asked for but MPS is not available on this machine; "
                "use device=None to take the best available device"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


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
