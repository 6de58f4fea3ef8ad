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
