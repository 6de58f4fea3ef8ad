"""Instructors run chapters with papermill parameters; these runs must work (and really use them)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import papermill as pm
import pytest

from conftest import make_fake_mnist

ROOT = Path(__file__).resolve().parents[1]


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


# Small values an instructor would pass for a smoke run of each chapter on the full-data path.
QUICK_FULL = {
    "04_mlp": dict(epochs=1, max_batches=3),
    "05_cnn": dict(epochs=1, short_epochs=1, pretrain_epochs=1, finetune_epochs=1, max_batches=3),
    "06_rnn": dict(epochs=1, max_batches=3, forecast_epochs=2),
    "07_autoencoder": dict(epochs=1, vae_epochs=1, max_batches=3),
    "09_training_fast": dict(epochs=1, max_batches=3, ddp_epochs=1, ddp_train_examples=256),
}


def test_every_training_chapter_has_a_quick_full_run_here():
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("0[3-9]_*.ipynb"))
    assert chapters == sorted(QUICK_FULL), "add the new chapter's smoke-run parameters to QUICK_FULL"


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
