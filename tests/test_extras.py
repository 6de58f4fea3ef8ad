"""helpers.install_extras: a chapter's extra packages come from the course package's pip extras."""
import subprocess

import pytest

import helpers
from helpers import extras


def test_extras_are_read_from_the_package_metadata():
    assert any(r.startswith("onnxruntime") for r in extras.extra_requirements("deploy"))
    assert any(r.startswith("captum") for r in extras.extra_requirements("interpret"))
    assert any(r.startswith("statsmodels") for r in extras.extra_requirements("timeseries"))


def test_an_unknown_extra_names_the_known_ones():
    with pytest.raises(ValueError, match="no extra 'onnx'.*deploy"):
        helpers.install_extras("onnx")


def test_nothing_is_installed_when_everything_is_there(monkeypatch):
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: pytest.fail("pip must not run"))
    assert helpers.install_extras("deploy") == []


def test_a_missing_package_is_pip_installed(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **k: calls.append(cmd))
    monkeypatch.setattr(extras, "_missing", lambda requirement: requirement.startswith("captum"))
    installed = helpers.install_extras("interpret")
    assert installed == [r for r in extras.extra_requirements("interpret") if r.startswith("captum")]
    assert calls and calls[0][1:4] == ["-m", "pip", "install"] and installed[0] in calls[0]


def test_a_requirement_whose_marker_is_false_here_is_left_out(monkeypatch):
    requires = ["onnx>=1.17; extra == 'deploy'",
                "uvloop>=0.19; sys_platform == 'no-such-platform' and extra == 'deploy'",
                "httptools>=0.6; sys_platform != 'no-such-platform' and extra == 'deploy'"]
    monkeypatch.setattr(extras.importlib.metadata, "requires", lambda dist: requires)
    assert extras.extra_requirements("deploy") == ["onnx>=1.17", "httptools>=0.6"]


def test_an_outdated_package_counts_as_missing_and_is_upgraded(monkeypatch):
    installed = {"onnx": "1.10.0", "onnxscript": "0.2.0", "onnxruntime": "1.22.1", "fastapi": "0.115.0",
                 "uvicorn": "0.30.0", "uvloop": "0.21.0", "httptools": "0.6.4", "python-multipart": "0.0.9",
                 "httpx": "0.28.1", "pillow": "11.0.0"}
    monkeypatch.setattr(extras, "_installed_version", lambda dist: installed.get(dist))
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **k: calls.append(cmd))
    installed_now = helpers.install_extras("deploy")
    assert "onnx>=1.17" in installed_now, "onnx 1.10 is older than the extra's onnx>=1.17: it must be upgraded"
    assert not any(r.startswith(("onnxscript", "onnxruntime", "pillow", "python-multipart")) for r in installed_now)
    assert len(calls) == 1 and calls[0][1:4] == ["-m", "pip", "install"] and "onnx>=1.17" in calls[0]


@pytest.mark.parametrize("requirement, version, missing", [
    ("onnx>=1.17", "1.10.0", True), ("onnx>=1.17", "1.17.0", False), ("onnx>=1.17", None, True),
    ("pillow", "11.0.0", False), ("captum>=0.7", "0.7.0rc1", True), ("captum>=0.7", "0.8.0rc1", False),
    ("onnx>=1.17", "unknown", False),  # importable, but says no version: trust it, as before
])
def test_missing_compares_the_installed_version_with_the_requirement(monkeypatch, requirement, version, missing):
    monkeypatch.setattr(extras, "_installed_version", lambda dist: version)
    assert extras._missing(requirement) is missing


def test_versions_are_found_when_the_import_name_differs():
    import PIL

    assert extras._installed_version("pillow") == PIL.__version__  # pip name pillow, import name PIL
    assert extras._installed_version("python-multipart") is not None  # import name multipart
    assert extras._installed_version("no-such-package-here") is None


def test_extra_all_installs_the_packages_of_every_extra(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **k: calls.append(cmd))
    monkeypatch.setattr(extras, "_installed_version", lambda dist: None)  # a bare machine
    installed = helpers.install_extras("all")
    assert "statsmodels" in installed and "captum>=0.7" in installed and "onnx>=1.17" in installed
    assert not any(r.startswith("pytorch-course-helpers") for r in installed)  # not the course package from PyPI
