"""``helpers.install_extras(name)``: the packages a chapter needs beyond ``helpers``' own, installed
only when missing (on Colab, say), from the course package's pip extras in ``pyproject.toml``."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys

DIST = "pytorch-course-helpers"
# import name of each distribution whose import name differs from its pip name
IMPORT_NAMES = {"python-multipart": "multipart", "pillow": "PIL"}


def extra_requirements(name: str) -> list[str]:
    """The requirement strings (``"onnx>=1.17"``) of the course package's extra ``name`` that apply here.

    A requirement with an environment marker (``uvloop; sys_platform != 'win32'``) is left out where
    its marker is false, so nothing tries to install uvloop on Windows.
    """
    # packaging is a dependency of matplotlib, so always here
    from packaging.requirements import Requirement

    extras = importlib.metadata.metadata(DIST).get_all("Provides-Extra") or []
    if name not in extras:
        raise ValueError(f"the course package has no extra {name!r}; its extras are {', '.join(sorted(extras))}")
    found = []
    for line in importlib.metadata.requires(DIST) or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": name}):
            req.marker = None  # "uvloop>=0.19", extras kept: "pytorch-course-helpers[deploy,...]"
            found.append(str(req))
    return found


def _installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` ("onnx", "python-multipart"), or None when absent.

    The version comes from the distribution's metadata, so the import name does not matter; a
    module importable without metadata (copied onto sys.path) is asked for its ``__version__``
    ("unknown" if it has none: it is there, and nothing says it is too old).
    """
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    module = IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))
    if importlib.util.find_spec(module) is None:
        return None
    return str(getattr(importlib.import_module(module), "__version__", "unknown"))


def _missing(requirement: str) -> bool:
    """True when ``requirement`` ("onnx>=1.17") is not installed, or installed at a version it excludes."""
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    req = Requirement(requirement)
    installed = _installed_version(req.name)
    if installed is None:
        return True
    try:
        version = Version(installed)
    except InvalidVersion:  # "unknown", or a version packaging cannot read: it is there, trust it
        return False
    # an installed pre-release (0.8.0rc1) satisfies >=0.7, as pip itself judges it
    return not req.specifier.contains(version, prereleases=True)


def _expand(requirements: list[str]) -> list[str]:
    """Replace a requirement on the course package itself (extra "all": ``"pytorch-course-helpers[deploy,...]"``)
    by the requirements of those extras: the package is installed already, its extras' packages may not be."""
    from packaging.requirements import Requirement

    found = []
    for line in requirements:
        req = Requirement(line)
        if req.name == DIST:
            found += [r for extra in sorted(req.extras) for r in _expand(extra_requirements(extra))]
        else:
            found.append(line)
    return list(dict.fromkeys(found))  # once each, in order


def install_extras(name: str, *, quiet: bool = True) -> list[str]:
    """pip-install the packages of extra ``name`` that are missing or too old here; return what was installed.

    Locally ``pip install -r requirements.txt`` has already installed every extra, so this does
    nothing; on Colab, where only ``helpers`` was installed, it adds what the chapter needs.
    """
    missing = [r for r in _expand(extra_requirements(name)) if _missing(r)]
    if missing:
        print(f"installing what this chapter needs: {' '.join(missing)}")
        subprocess.check_call([sys.executable, "-m", "pip", "install", *(["-q"] if quiet else []), *missing])
        importlib.invalidate_caches()
    return missing
