"""Instructors run chapters with papermill parameters; these runs must work (and really use them)."""
from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import course
import papermill as pm
import pytest
from conftest import ROOT, SMOKE, make_fake_mnist

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(autouse=True)
def venv_on_path(monkeypatch):
    """papermill's kernel and the notebooks' subprocesses use this environment's executables."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])


def fake_full_mnist(root: Path, monkeypatch, **sizes) -> Path:
    """IDX files standing in for the full-MNIST download, in a COURSE_DATA_DIR of their own."""
    make_fake_mnist(root, **sizes)
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    return root


def run(notebook: str, out: Path, **parameters) -> list[dict]:
    pm.execute_notebook(str(ROOT / "notebooks" / notebook), str(out), parameters=parameters,
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
    return json.loads(out.read_text())["cells"]


def text_of(cells: list[dict]) -> str:
    return "\n".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])


def test_papermill_injects_non_default_parameters(tmp_path):
    cells = run("02_autograd.ipynb", tmp_path / "out.ipynb", lr=0.5, steps=30)
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "lr = 0.5" in "".join(injected[0]["source"])
    out = text_of(cells)
    # 30 steps at lr 0.5 converge to the same closed-form answer as the default run
    assert "w = 2.914, b = -2.005" in out and "closed form: w = 2.914, b = -2.005" in out


def test_full_dataset_path_runs_a_chapter_offline(tmp_path, monkeypatch):
    """dataset="full" reaches torchvision's MNIST; IDX files written here stand in for the download."""
    fake_full_mnist(tmp_path / "data", monkeypatch, n_train=60, n_test=20)
    cells = run("01_tensors.ipynb", tmp_path / "out.ipynb", dataset="full")
    out = text_of(cells)
    assert "torch.Size([60, 28, 28])" in out and "on 20 test digits" in out


CHAPTERS = [p.stem for p in course.chapters()]
MNIST_CHAPTERS = [c for c in CHAPTERS if c >= "03"]  # the chapters that train on MNIST
QUICK_FULL = {c: SMOKE[c] for c in MNIST_CHAPTERS if c in SMOKE}


def test_every_chapter_has_smoke_run_parameters():
    missing = [p.stem for p in course.notebooks() if p.stem not in SMOKE]
    assert not missing, f"add the smoke-run parameters of {missing} to SMOKE in tests/conftest.py"


@pytest.mark.parametrize("chapter", sorted(QUICK_FULL))
def test_chapter_runs_end_to_end_on_the_full_dataset_path(chapter, tmp_path, monkeypatch):
    """dataset="full" with IDX files written here: the chapter runs top to bottom through torchvision's
    MNIST and never touches the embedded subset (whose cache would appear in COURSE_DATA_DIR)."""
    data = fake_full_mnist(tmp_path / "data", monkeypatch, n_train=1200, n_test=400)
    cells = run(f"{chapter}.ipynb", tmp_path / "out.ipynb", dataset="full", **QUICK_FULL[chapter])
    injected = "".join(next(c["source"] for c in cells if "injected-parameters" in c["metadata"].get("tags", [])))
    assert 'dataset = "full"' in injected
    assert not any(o.get("output_type") == "error" for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert not (data / "cache").exists(), "the chapter loaded the embedded subset despite dataset='full'"


def validation_rules(path: Path) -> dict[str, ast.Call]:
    cells = json.loads(path.read_text())["cells"]
    i = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    cell = next(c for c in cells[i + 1:] if c["cell_type"] == "code")
    call = next(n for n in ast.walk(ast.parse("".join(cell["source"]))) if isinstance(n, ast.Call)
                and ast.unparse(n.func) == "helpers.check_params")
    return {k.arg: k.value for k in call.keywords}


def out_of_range(rules: dict[str, ast.Call]) -> tuple[str, object]:
    """A parameter and a value its rule refuses: a number below (or above) its range, or a wrong choice."""
    for name, rule in rules.items():
        kind = ast.unparse(rule.func).split(".")[-1]
        args = [ast.literal_eval(a) for a in rule.args]
        if kind == "Int":
            return name, args[0] - 1
        if kind == "Float":
            return name, args[1] * 10 if len(args) > 1 else args[0] - 1
    name = next(iter(rules))
    return name, "not-a-valid-value"


NOTEBOOK_PATHS = course.notebooks()


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_an_out_of_range_parameter_stops_with_one_message_that_names_it(path, tmp_path):
    """An instructor's bad value stops in the validation cell, with the parameter, the value and the
    accepted range, and no traceback from deep inside torch."""
    name, value = out_of_range(validation_rules(path))
    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(path), str(out), parameters={name: value}, kernel_name="python3",
                            cwd=str(path.parent), progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"] if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "ParameterError", errors
    assert f"{name} = {value!r} is not allowed: expected" in errors[0]["evalue"]
    traceback = "\n".join(errors[0]["traceback"])
    assert "site-packages/torch" not in traceback and len(errors[0]["traceback"]) <= 2, traceback
    failed = next(i for i, c in enumerate(cells) if any(o["output_type"] == "error" for o in c.get("outputs", [])))
    assert "helpers.check_params" in "".join(cells[failed]["source"]), "it must stop in the validation cell"
