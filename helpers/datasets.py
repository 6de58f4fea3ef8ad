"""Datasets and a collate function that DataLoader worker processes can import (chapter 3).

With ``num_workers > 0`` every worker process needs the dataset object. Under the "spawn" start
method (the default on macOS and Windows) and "forkserver" (the default on Linux from Python 3.14)
each worker is a fresh Python that unpickles the dataset and imports its class **by module and
name**: a class defined in a notebook (or in ``python -c``) cannot be found there, and the worker
dies. A script's top-level class is found (the worker re-imports the script, so its training code
must sit under ``if __name__ == "__main__":``). Classes used with workers from a notebook therefore
live in an importable ``.py`` module such as this one, and so do their transforms and
``collate_fn``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, IterableDataset, get_worker_info


class ArrayDataset(Dataset):
    """Map-style dataset: item i is ``(transform(images[i]), int(labels[i]))``."""

    def __init__(self, images, labels, transform: Callable | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels: "
                             "pass one label per image")
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])


class TextLines(IterableDataset):
    """Streams ``parse(line)`` (or the line itself) for each line of a text file.

    The file is read lazily, one line at a time, so it may be larger than memory. With
    ``shard=True`` and several DataLoader workers, worker k of n yields lines k, k + n, k + 2n...
    so every line is yielded exactly once; ``shard=False`` shows what happens without it
    (every worker streams the whole file: each line n times).
    """

    def __init__(self, path: str | Path, parse: Callable[[str], object] | None = None, *,
                 shard: bool = True):
        self.path, self.parse, self.shard = Path(path), parse, shard
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} is not a file: write the records first, "
                                    "one per line")

    def __iter__(self):
        info = get_worker_info()               # None in the main process
        if info is None or not self.shard:
            worker, workers = 0, 1
        else:
            worker, workers = info.id, info.num_workers
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if n % workers == worker:      # this worker's share of the lines
                    line = line.rstrip("\n")
                    yield self.parse(line) if self.parse is not None else line


class DigitLine:
    """Parses ``"label,p0,...,p783"`` into ``(transform(image), label)``; image uint8 (28, 28)."""

    def __init__(self, transform: Callable | None = None):
        self.transform = transform

    def __call__(self, line: str):
        values = np.array(line.split(","), dtype=np.int64)
        if values.size != 785:
            raise ValueError(f"a digit line holds a label and 784 pixels, got {values.size} values")
        image = values[1:].astype(np.uint8).reshape(28, 28)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(values[0])


class PadCollate:
    """collate_fn for ``(sequence (T_i, F), label)`` pairs of different lengths T_i.

    Returns ``(padded, lengths, labels)``: padded (B, T_max, F), lengths (B,) int64 on the CPU
    (where ``pack_padded_sequence`` wants them), labels (B,).
    """

    def __init__(self, padding_value: float = 0.0):
        self.padding_value = padding_value

    def __call__(self, batch):
        sequences, labels = zip(*batch)
        lengths = torch.tensor([len(s) for s in sequences])
        padded = pad_sequence(list(sequences), batch_first=True,
                              padding_value=self.padding_value)
        return padded, lengths, torch.as_tensor(labels)


class WhoLoads(Dataset):
    """Item i is ``(i, worker id or -1 in the main process, a torch draw, a NumPy draw)``.

    A probe for seeding: it shows which worker loaded an item and what its generators gave.
    """

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        info = get_worker_info()
        worker = -1 if info is None else info.id
        return i, worker, int(torch.randint(1000, ())), int(np.random.randint(1000))
