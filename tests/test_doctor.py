import builtins
import importlib
import re
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

import helpers

doctor_module = importlib.import_module("helpers.doctor")  # helpers.doctor is the function


def pyproject_torch_requirement() -> str:
    """The torch requirement in pyproject.toml's dependencies: where the lowest supported torch is stated."""
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            tomllib = None
    if tomllib is not None:
        dependencies = tomllib.loads(text)["project"]["dependencies"]
    else:
        block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.M | re.S).group(1)
        dependencies = re.findall(r'"([^"]+)"', block)
    return next(str(Requirement(d)) for d in dependencies if Requirement(d).name == "torch")


def test_doctor_reports_versions_device_data_and_colab(capsys):
    facts = helpers.doctor()
    out = capsys.readouterr().out
    assert facts["torch"] in out and facts["device"] in out
    assert facts["embedded_data"] is True and facts["colab"] is False
    assert len(out.strip().splitlines()) <= 12 and "Traceback" not in out


def test_doctor_says_what_to_do_about_missing_packages(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision":
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    monkeypatch.setattr("importlib.import_module", lambda name: no_torchvision(name))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    facts = helpers.doctor()
    out = capsys.readouterr().out
    assert facts["torchvision"] is None and "torchvision MISSING" in out
    assert "pip install torchvision" in out and "pip install mlxtend" in out
    assert facts["colab"] is True and ("Runtime > Change runtime type" in out or facts["device"] != "cpu")


def test_the_lowest_torch_is_read_from_the_package_metadata_as_pyproject_states_it():
    assert doctor_module.torch_requirement() == pyproject_torch_requirement()


def test_an_old_torch_gets_the_bound_pyproject_states(monkeypatch, capsys):
    requirement = pyproject_torch_requirement()  # "torch>=2.7"
    lowest = next(iter(Requirement(requirement).specifier)).version  # "2.7"
    monkeypatch.setattr(torch, "__version__", "2.0.1+cpu")
    facts = helpers.doctor()
    out = capsys.readouterr().out
    advice = f"torch 2.0.1+cpu is older than {lowest}: pip install -U '{requirement}' torchvision"
    assert advice in facts["advice"] and advice in out
    assert "ready: every chapter can run here" not in out


@pytest.mark.parametrize("version", ["2.99.0", "2.99.0a0+git1234"])
def test_the_bound_is_not_hard_coded(monkeypatch, version):
    """With metadata saying torch>=2.99 (a made-up future bound), the advice follows it."""
    requires = ["torch>=2.99", "numpy", "statsmodels; extra == 'timeseries'"]
    monkeypatch.setattr(doctor_module.importlib.metadata, "requires", lambda dist: requires)
    monkeypatch.setattr(torch, "__version__", "2.98.5")
    assert "torch 2.98.5 is older than 2.99: pip install -U 'torch>=2.99' torchvision" in \
        helpers.doctor(verbose=False)["advice"]
    monkeypatch.setattr(torch, "__version__", version)  # a nightly of the bound release counts as that release
    assert not any(a.startswith("torch ") for a in helpers.doctor(verbose=False)["advice"])
