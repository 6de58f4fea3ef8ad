"""Shared fixtures: tiny models and loaders, and fake MNIST IDX files for the offline 'full' path."""
from __future__ import annotations

import functools
import http.server
import struct
import subprocess
import sys
import threading
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # course.py: the chapter list and the lowest torch, stated once
import course  # noqa: E402

# Smoke-size parameters of every notebook (an instructor's quick run): the papermill tests run each
# chapter with them, on the full-data path, with other valid values and on the lowest torch release.
SMOKE = course.SMOKE  # smoke-size parameters per notebook: scripts/course.py


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format MNIST uses: magic, dims (big-endian), raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim))  # 0x08: unsigned byte
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.tobytes())


def make_fake_mnist(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    """Write the four MNIST IDX files torchvision expects under ``root/MNIST/raw``; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    raw = root / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", arrays["x_train"])
    write_idx(raw / "train-labels-idx1-ubyte", arrays["y_train"])
    write_idx(raw / "t10k-images-idx3-ubyte", arrays["x_test"])
    write_idx(raw / "t10k-labels-idx1-ubyte", arrays["y_test"])
    return arrays


@pytest.fixture
def fake_mnist_root(tmp_path):
    arrays = make_fake_mnist(tmp_path)
    return tmp_path, arrays


@pytest.fixture
def blobs():
    """A small 3-class problem a tiny MLP learns in a few epochs: (train_loader, val_loader)."""
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    y = torch.arange(3).repeat(100)
    x = centers[y] + 0.7 * torch.randn(300, 2, generator=g)
    train = DataLoader(TensorDataset(x[:240], y[:240]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(1))
    val = DataLoader(TensorDataset(x[240:], y[240:]), batch_size=25)
    return train, val


def tiny_mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def build_book(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Build the site from the stored notebook outputs with warnings as errors; return (process, html dir)."""
    proc = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT), "--path-output",
                           str(out), "-W", "-n", "--keep-going", *extra], capture_output=True, text=True)
    return proc, out / "_build" / "html"


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site, English in html/ and Chinese in html/zh/ (session-wide: the book test and the
    browser tests share one build)."""
    proc, html = build_book(tmp_path_factory.mktemp("site"))
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    import i18n  # scripts/i18n.py: the Chinese site, built as scripts/build-site.sh does, into html/zh

    proc = i18n.build_zh(html, tmp_path_factory.mktemp("site-zh"))
    assert proc.returncode == 0, (f"the Chinese site's build failed (run .venv/bin/python scripts/i18n.py check):"
                                  f"\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return html


@pytest.fixture(scope="session")
def served(site):
    """Serve the built site on 127.0.0.1 (a free port) for the browser tests; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def pytest_collection_modifyitems(config, items):
    """nbval's items (one per notebook cell) are slow notebook tests: `pytest -m "not slow"` skips them."""
    for item in items:
        if item.nodeid.endswith(".ipynb") or ".ipynb::" in item.nodeid:
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def threads():
    """A script's main() sets torch's thread count for the whole process: give it back."""
    import torch
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
