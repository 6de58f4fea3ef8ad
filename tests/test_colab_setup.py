"""The notebooks' first cell, as Colab runs it: torch is there, `helpers` is not.

A fresh venv sees this environment's packages (torch among them) through a .pth file, the way Colab's
preinstalled packages are visible, but not the course's own `helpers`. Running the setup cell, with the
repository URL pointed at this checkout, must install `helpers` and leave torch alone.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import ROOT


def setup_cell() -> str:
    nb = json.loads((ROOT / "notebooks" / "01_tensors.ipynb").read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_setup_cell_installs_helpers_and_keeps_torch(tmp_path):
    env_dir = tmp_path / "colab"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "COURSE_REPO_URL": f"file://{ROOT}"}
    env.pop("PYTHONPATH", None)
    run = lambda code: subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)

    before = run("import torch; print(torch.__file__)")
    assert before.returncode == 0, before.stderr
    missing = run("import helpers")
    assert missing.returncode != 0 and "No module named 'helpers'" in missing.stderr

    cell = run(setup_cell())
    assert cell.returncode == 0, cell.stderr[-3000:]

    after = run("import helpers, torch; print(torch.__file__); print(helpers.__file__); helpers.get_device()")
    assert after.returncode == 0, after.stderr
    torch_file, helpers_file = after.stdout.split()
    assert torch_file == before.stdout.strip(), "the setup cell must not reinstall torch"
    assert helpers_file.startswith(str(site)), helpers_file
    installed = subprocess.run([python, "-m", "pip", "list", "--path", str(site), "--format", "json"],
                               capture_output=True, text=True, env=env).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert "pytorch-course-helpers" in names and "torch" not in names and "torchvision" not in names

    again = run(setup_cell() + "\nprint('second run: nothing to install')")
    assert again.returncode == 0 and "nothing to install" in again.stdout

    # a learner's own helpers.py beside the notebook, on Colab after the install: one message naming it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "helpers.py").write_text("def fit(): pass\n")
    shadowed = subprocess.run([python, "-c", setup_cell()], cwd=tmp_path / "mine", env=env, capture_output=True,
                              text=True)
    assert shadowed.returncode != 0
    assert f"ImportError: 'import helpers' finds {tmp_path / 'mine' / 'helpers.py'}, not the course's package" \
        in shadowed.stderr, shadowed.stderr[-2000:]


@pytest.mark.parametrize("shadow", ["helpers.py", "helpers/__init__.py", "helpers/utils.py"],
                         ids=["module", "package", "namespace-folder"])
def test_setup_cell_names_a_learners_helpers_that_shadows_the_course_package(tmp_path, shadow):
    """Locally (the course package installed), a learner's helpers.py or helpers/ folder beside the notebook
    wins the import; the setup cell stops with one message that names it instead of failing later."""
    (tmp_path / shadow).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / shadow).write_text("def fit(): pass\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", setup_cell()], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    found = tmp_path / shadow if shadow != "helpers/utils.py" else tmp_path / "helpers"
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"ImportError: 'import helpers' finds {found}, not the course's package: rename that file or "
                    "folder, then restart the kernel"), proc.stderr[-2000:]


def test_setup_cell_passes_where_helpers_is_the_course_package(tmp_path):
    proc = subprocess.run([sys.executable, "-c", setup_cell() + "\nimport helpers; print(helpers.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(ROOT / "helpers" / "__init__.py")
