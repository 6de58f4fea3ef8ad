"""requirements.lock pins the whole stack: it follows requirements.txt, it resolves, and .venv matches it."""
from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

import course
import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = ROOT / "requirements.lock"
# installed by venv/pip themselves, or the course package (editable, from this checkout)
NOT_LOCKED = {"pip", "setuptools", "wheel", "pytorch-course-helpers"}


def lock_pins() -> dict[str, str]:
    """{canonical name: version} of the lock's lines whose environment marker holds on this interpreter."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if not line or line[0] in "# ":
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", line
            assert canonicalize_name(req.name) not in pins, f"two pins of {req.name} apply here"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_lock_was_generated_from_the_current_requirements():
    stated = re.search(r"^# inputs-sha256: ([0-9a-f]{64})", LOCK.read_text(), flags=re.M)
    assert stated, "requirements.lock must record what it was generated from: run bash scripts/lock.sh"
    assert stated.group(1) == course.lock_inputs_sha256(), (
        "requirements.txt, constraints.txt or pyproject.toml's [project] changed since requirements.lock was "
        "generated: run bash scripts/lock.sh (and re-execute the notebooks if an output changes)")


def test_lock_satisfies_every_requirement_and_the_torch_pin():
    pins = lock_pins()
    wanted = []
    for path in ("requirements.txt", "constraints.txt"):
        wanted += [ln.split("#")[0].strip() for ln in (ROOT / path).read_text().splitlines()]
    wanted += importlib.metadata.requires("pytorch-course-helpers")
    for line in filter(None, wanted):
        if line.startswith("-e "):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": "all"}):
            continue
        name = canonicalize_name(req.name)
        if name == "pytorch-course-helpers":
            continue
        assert name in pins, f"{req.name} is required but not pinned in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock pins {name}=={pins[name]}, not {req}"


def test_the_venv_has_exactly_the_locked_versions():
    pins = lock_pins()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {n: (v, pins.get(n)) for n, v in installed.items() if n not in NOT_LOCKED and pins.get(n) != v}
    assert not wrong, f"installed vs locked (None: not in the lock): {wrong}; run bash scripts/setup.sh"
    missing = sorted(set(pins) - set(installed))
    assert not missing, f"locked but not installed: {missing}; run bash scripts/setup.sh"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_requirements_resolve_to_exactly_the_locked_versions(tmp_path):
    """pip resolves requirements.txt afresh (dry run, from the registry) with the lock as constraints:
    every package it would install is pinned, at the pinned version; a lock that conflicts fails here."""
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                           "-r", "requirements.txt", "-c", "constraints.txt", "-c", "requirements.lock",
                           "--report", str(report)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pins = lock_pins()
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    off = {n: (v, pins.get(n)) for n, v in resolved.items() if n not in NOT_LOCKED and pins.get(n) != v}
    assert not off, f"resolved vs locked: {off}"
    assert {"torch", "numpy", "jupyter-book", "nbval"} <= set(resolved)
