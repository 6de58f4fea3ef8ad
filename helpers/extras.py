"""``helpers.install_extras(name)``: the packages a chapter needs beyond ``helpers``' own, installed
only when missing (on Colab, say), from the course package's pip extras in ``pyproject.toml``."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
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
    from packaging.requirements import Requirement  # a dependency of matplotlib, so always here

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


def _missing(requirement: str) -> bool:
    dist = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
    module = IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))
    return importlib.util.find_spec(module) is None


def install_extras(name: str, *, quiet: bool = True) -> list[str]:
    """pip-install the packages of extra ``name`` that are missing here; return what was installed.

    Locally ``pip install -r requirements.txt`` has already installed every extra, so this does
    nothing; on Colab, where only ``helpers`` was installed, it adds what the chapter needs.
    """
    missing = [r for r in extra_requirements(name) if _missing(r)]
    if missing:
        print(f"installing what this chapter needs: {' '.join(missing)}")
        subprocess.check_call([sys.executable, "-m", "pip", "install", *(["-q"] if quiet else []), *missing])
        importlib.invalidate_caches()
    return missing
