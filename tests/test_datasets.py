"""helpers.datasets: the Dataset classes of chapter 3, including under DataLoader worker processes."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers.datasets import (
    ArrayDataset,
    DigitLine,
    PadCollate,
    TextLines,
    WhoLoads,
)


def write_lines(path, n):
    path.write_text("".join(f"record {i}\n" for i in range(n)), encoding="utf-8")
    return path


def test_array_dataset_returns_transformed_image_and_int_label():
    images = np.arange(3 * 4, dtype=np.uint8).reshape(3, 2, 2)
    labels = np.array([7, 8, 9])
    ds = ArrayDataset(images, labels, transform=lambda a: torch.from_numpy(a).float() * 2)
    image, label = ds[1]
    assert len(ds) == 3 and label == 8 and isinstance(label, int)
    assert torch.equal(image, torch.tensor([[8.0, 10.0], [12.0, 14.0]]))
    raw, _ = ArrayDataset(images, labels)[2]
    assert np.array_equal(raw, images[2])


def test_array_dataset_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="one label per image"):
        ArrayDataset(np.zeros((3, 2, 2)), np.zeros(2))


def test_array_dataset_batches_through_the_default_collate():
    ds = ArrayDataset(np.zeros((10, 28, 28), np.uint8), np.arange(10),
                      transform=lambda a: torch.from_numpy(a).unsqueeze(0).float())
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 1, 28, 28) and y.tolist() == [0, 1, 2, 3] and y.dtype == torch.int64


def test_pad_collate_pads_and_keeps_lengths():
    g = torch.Generator().manual_seed(0)
    batch = [(torch.randn(n, 3, generator=g), label) for n, label in ((2, 0), (5, 1), (1, 2))]
    padded, lengths, labels = PadCollate(padding_value=-1.0)(batch)
    assert padded.shape == (3, 5, 3) and lengths.tolist() == [2, 5, 1] and labels.tolist() == [0, 1, 2]
    for (seq, _), row, n in zip(batch, padded, lengths):
        assert torch.equal(row[:n], seq) and (row[n:] == -1.0).all()


def test_text_lines_streams_every_line_in_order(tmp_path):
    path = write_lines(tmp_path / "r.txt", 7)
    assert list(TextLines(path)) == [f"record {i}" for i in range(7)]
    assert list(TextLines(path, parse=len)) == [len(f"record {i}") for i in range(7)]


def test_text_lines_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="one per line"):
        TextLines(tmp_path / "missing.txt")


def test_two_spawned_workers_yield_every_record_exactly_once(tmp_path):
    """The check of the chapter's claim, under "spawn" (macOS/Windows): the class is importable,
    and sharding by get_worker_info gives no duplicates and loses nothing."""
    path = write_lines(tmp_path / "r.txt", 101)
    loader = DataLoader(TextLines(path), batch_size=None, num_workers=2, multiprocessing_context="spawn")
    counts = Counter(loader)
    assert sum(counts.values()) == 101, "records lost or duplicated"
    assert set(counts) == {f"record {i}" for i in range(101)} and max(counts.values()) == 1


def test_without_sharding_two_workers_duplicate_every_record(tmp_path):
    """The failure the sharding prevents (so the test above can fail)."""
    path = write_lines(tmp_path / "r.txt", 20)
    counts = Counter(DataLoader(TextLines(path, shard=False), batch_size=None, num_workers=2))
    assert len(counts) == 20 and set(counts.values()) == {2}


def test_digit_line_parses_label_and_pixels():
    image = (np.arange(784) % 256).astype(np.uint8).reshape(28, 28)
    line = "7," + ",".join(map(str, image.ravel()))
    parsed, label = DigitLine()(line)
    assert label == 7 and parsed.dtype == np.uint8 and np.array_equal(parsed, image)
    scaled, _ = DigitLine(transform=lambda a: torch.from_numpy(a).float() / 255)(line)
    assert scaled.shape == (28, 28) and float(scaled.max()) == 1.0
    with pytest.raises(ValueError, match="784 pixels"):
        DigitLine()("1,2,3")


def test_digit_lines_batch_through_workers(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    path = tmp_path / "digits.csv"
    path.write_text("".join(f"{i}," + ",".join(map(str, im.ravel())) + "\n" for i, im in enumerate(images)))
    parse = DigitLine(transform=lambda a: torch.from_numpy(a))
    batches = list(DataLoader(TextLines(path, parse=parse), batch_size=2, num_workers=2))
    labels = sorted(int(v) for _, y in batches for v in y)
    assert labels == list(range(6))
    for x, y in batches:
        for image, label in zip(x, y):
            assert torch.equal(image, torch.from_numpy(images[int(label)]))


def draws(seed, **kwargs):
    loader = DataLoader(WhoLoads(8), batch_size=2, num_workers=2,
                        generator=torch.Generator().manual_seed(seed), **kwargs)
    return [tuple(int(v) for v in item) for batch in loader for item in zip(*batch)]


def test_worker_draws_repeat_with_the_generator_seed_and_differ_between_workers():
    first, again, other = draws(0), draws(0), draws(1)
    assert [i for i, *_ in first] == list(range(8))
    assert {w for _, w, _, _ in first} == {0, 1}, "both workers should load batches"
    assert first == again, "same generator seed, same random draws in the workers"
    assert [d[2:] for d in first] != [d[2:] for d in other]
    by_worker = {w: [(t, n) for _, w2, t, n in first if w2 == w] for w in (0, 1)}
    assert by_worker[0] != by_worker[1], "the two workers must not share a random stream"


def test_who_loads_reports_the_main_process():
    assert WhoLoads(3)[1][:2] == (1, -1) and len(WhoLoads(3)) == 3
