import builtins

import helpers


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
