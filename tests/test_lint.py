"""ruff over the whole repository, notebooks included (rules: pyproject.toml's [tool.ruff])."""
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ruff check . found:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"


def test_ruff_checks_the_notebooks(tmp_path):
    """The lint must reach notebook code: a notebook with an unused import fails it."""
    (tmp_path / "bad.ipynb").write_text('{"cells": [{"cell_type": "code", "execution_count": null, "metadata": {}, '
                                        '"outputs": [], "source": ["import os\\n"]}], "metadata": {}, '
                                        '"nbformat": 4, "nbformat_minor": 5}')
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run([str(ruff), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), "."],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "F401" in proc.stdout, proc.stdout + proc.stderr
