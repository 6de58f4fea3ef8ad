"""benchmarks/cnn_recipe.py: it trains on the chapter's own split, never reads or evaluates a test image,
runs the chapter's recipe with each candidate's settings, and chooses by its one-standard-error rule."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import helpers

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "cnn_recipe.py"
spec = importlib.util.spec_from_file_location("cnn_recipe", SCRIPT)
cnn_recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cnn_recipe)
Candidate, PREVIOUS = cnn_recipe.Candidate, cnn_recipe.PREVIOUS


@pytest.fixture
def no_test_split(monkeypatch):
    """Make every way to the test split fail loudly; return what was read from the cache file and evaluated."""
    helpers.load_mnist_arrays("embedded")  # the cache file exists before the guards go up
    seen = {"arrays": [], "evaluated": []}

    def refuse(*args, **kwargs):
        raise AssertionError("the script loaded the test split (through a helper that returns it)")
    for module in (helpers, helpers.data):
        for name in ("mnist_datasets", "mnist_loaders", "load_mnist_arrays"):
            monkeypatch.setattr(module, name, refuse)

    npz_getitem = np.lib.npyio.NpzFile.__getitem__

    def guarded_getitem(self, key):
        seen["arrays"].append(key)
        if "test" in key:
            raise AssertionError(f"the script read {key!r} from {self.fid}")
        return npz_getitem(self, key)
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", guarded_getitem)

    evaluate = helpers.evaluate

    def spy_evaluate(model, loader, *args, **kwargs):
        seen["evaluated"].append((getattr(loader, "split", None), len(loader.dataset)))
        if getattr(loader, "split", None) != "val":
            raise AssertionError(f"the script evaluated a loader of split {getattr(loader, 'split', None)!r}")
        return evaluate(model, loader, *args, **kwargs)
    monkeypatch.setattr(helpers, "evaluate", spy_evaluate)
    return seen


# ---- the whole script, at smoke size, in this process ------------------------------------------------------

@pytest.mark.timeout(120)
def test_smoke_run_reports_the_table_and_the_choice_and_never_touches_the_test_split(
        tmp_path, capsys, threads, no_test_split):
    with np.load(helpers.data_dir() / cnn_recipe.CACHE_FILE) as arrays:  # the guard is live
        with pytest.raises(AssertionError, match="x_test"):
            arrays["x_test"]
    no_test_split["arrays"].clear()

    out = tmp_path / "cnn_recipe.md"
    text = cnn_recipe.main(["--grid", "smoke", "--max-batches", "2", "--seeds", "1", "--threads", "1",
                            "--out", str(out)])
    report = out.read_text()
    assert report == text == capsys.readouterr().out  # what is printed is what is written

    assert sorted(set(no_test_split["arrays"])) == ["x_train", "y_train"]
    assert no_test_split["evaluated"] and set(no_test_split["evaluated"]) == {("val", 800)}
    assert "the test images are neither loaded nor evaluated" in report
    assert "3,200 training and 800 validation images" in report
    assert "- device: cpu" in report and "load average before the sweep" in report and "torch " in report
    assert "Rule (fixed before any run)" in report and "Estimate before the sweep" in report

    # width | augmentation | epochs | peak lr | accuracy | SE | SE of seeds (n/a: 1 seed) | within | seconds | marks
    row = (r"^\| (\d+) \| (none|chapter|double) \| (\d+) \| ([\d.e-]+) \| (0\.\d{4}|1\.0000) \| 0\.\d{4} \| n/a \| "
           r"(yes)? \| [\d.]+ \| (.*) \|$")
    rows = re.findall(row, report, flags=re.M)
    assert len(rows) == len(cnn_recipe.make_grid("smoke")) == 3, report
    accs = [float(r[4]) for r in rows]
    assert accs == sorted(accs, reverse=True)  # most accurate first
    chosen = [r for r in rows if "**chosen**" in r[6]]
    assert len(chosen) == 1 and chosen[0][5] == "yes", rows
    chapter = [r for r in rows if "previous" in r[6]]
    assert [r[:4] for r in chapter] == [("16", "chapter", "12", "0.01")], rows
    width, augment, epochs, lr = chosen[0][:4]
    assert f"Chosen: width {width}, augmentation {augment}, {epochs} epochs, peak lr {lr}:" in report


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--max-batches", "0"], "--max-batches must be >= 1"),
    (["--grid", "huge"], "argument --grid: invalid choice: 'huge'"),
])
def test_bad_arguments_are_refused_with_one_clear_message_each(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cnn_recipe.parse_args(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_out_that_is_a_folder_is_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cnn_recipe.parse_args(["--out", str(tmp_path)])
    assert "--out is a file to write the report to" in capsys.readouterr().err


# ---- the data and the recipe are the chapter's ------------------------------------------------------------

def test_the_split_is_the_chapters_to_the_bit():
    """The chapter's loaders (cell 20) as an oracle: same images, same split, same first shuffled batch."""
    train_loader, val_loader, _ = helpers.mnist_loaders("embedded", batch_size=128, seed=0, val_fraction=0.2)
    fit_ds, val = cnn_recipe.chapter_split(cnn_recipe.training_images())
    assert fit_ds.indices == train_loader.dataset.indices and len(fit_ds) == 3200
    assert val.dataset.indices == val_loader.dataset.indices and len(val.dataset) == 800
    for ours, theirs in zip(fit_ds.dataset.tensors, train_loader.dataset.dataset.tensors):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    for (x, y), (x_ref, y_ref) in zip(val, val_loader):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    x, y = next(iter(cnn_recipe.train_loader_for(fit_ds, seed=0)))
    x_ref, y_ref = next(iter(train_loader))  # a fresh loader, its generator seeded with 0
    assert x.shape == (128, 1, 28, 28) and torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_a_run_is_the_chapters_recipe_with_the_candidates_settings():
    fit_ds, _ = cnn_recipe.chapter_split(cnn_recipe.training_images())
    model, loader, loss_fn, optimizer, scheduler = cnn_recipe.build_run(Candidate(32, "double", 6, 3e-2), fit_ds, 7)
    torch.manual_seed(7)
    oracle = helpers.small_cnn(width=32)  # the chapter: torch.manual_seed(seed), then the model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), oracle.state_dict().values()))
    assert model.head[0].p == 0.2
    assert loss_fn.label_smoothing == 0.1
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["weight_decay"] == 0.01
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR) and scheduler.total_steps == 6 * 25
    assert math.isclose(optimizer.param_groups[0]["max_lr"], 3e-2)
    affine = loader.transform
    assert isinstance(affine, v2.RandomAffine) and loader.chunk == 16
    assert list(affine.degrees) == [-16, 16] and tuple(affine.translate) == (0.16, 0.16)
    assert tuple(affine.scale) == (0.84, 1.16) and affine.fill == -helpers.MNIST_MEAN / helpers.MNIST_STD
    chapter_affine = cnn_recipe.augmentation("chapter")
    assert list(chapter_affine.degrees) == [-8, 8] and tuple(chapter_affine.scale) == (0.92, 1.08)
    _, plain, *_ = cnn_recipe.build_run(Candidate(8, "none", 12, 1e-2), fit_ds, 0)
    assert isinstance(plain, torch.utils.data.DataLoader)  # no augmentation: the plain train loader


def test_augmented_batches_draw_once_per_chunk_of_16():
    calls = []

    def transform(x):
        calls.append(len(x))
        return x + 1
    batches = [(torch.zeros(128, 1, 28, 28), torch.arange(128)), (torch.zeros(40, 1, 28, 28), torch.arange(40))]
    out = list(cnn_recipe.AugmentedLoader(batches, transform))
    assert calls == [16] * 8 + [16, 16, 8]
    assert [tuple(x.shape) for x, _ in out] == [(128, 1, 28, 28), (40, 1, 28, 28)]
    assert all(torch.equal(x, torch.ones_like(x)) for x, _ in out)


def test_the_grids():
    full, around = cnn_recipe.make_grid("full"), cnn_recipe.make_grid("around")
    assert len(full) == len(set(full)) == 54
    assert len(around) == 14 and set(around) <= set(full) and PREVIOUS in around
    for c in around:  # one factor at a time around the chapter's recipe (epochs free)
        assert (c.width != 16) + (c.augment != "chapter") + (c.lr != 1e-2) <= 1, c
    assert {(c.epochs, c.lr) for c in around} == {(e, lr) for e in (6, 12) for lr in (3e-3, 1e-2, 3e-2)}
    assert PREVIOUS in cnn_recipe.make_grid("smoke")


# ---- the rule ---------------------------------------------------------------------------------------------

def result(width: int, epochs: int, acc: float, se: float, augment: str = "chapter", lr: float = 1e-2) -> dict:
    return {"candidate": Candidate(width, augment, epochs, lr), "val_acc": acc, "se": se}


def test_within_one_standard_error_of_the_best_the_cheapest_wins():
    best = result(32, 12, 0.985, 0.005)
    cheap = result(8, 6, 0.981, 0.006)
    results = [best, result(16, 12, 0.984, 0.005), result(32, 6, 0.983, 0.005), cheap, result(16, 6, 0.982, 0.005)]
    assert cnn_recipe.choose(results) is cheap  # fewest epochs, then the smallest width
    results.remove(cheap)
    assert cnn_recipe.choose(results)["candidate"] == Candidate(16, "chapter", 6, 1e-2)
    epochs_first = [best, result(8, 12, 0.984, 0.005), result(32, 6, 0.982, 0.005)]
    assert cnn_recipe.choose(epochs_first) is epochs_first[2]  # fewer epochs beat a smaller width


def test_a_clearly_better_candidate_wins():
    best = result(32, 12, 0.990, 0.003)
    results = [result(8, 6, 0.980, 0.006), result(16, 12, 0.985, 0.004), best]
    assert cnn_recipe.choose(results) is best


def test_the_band_is_the_best_ones_standard_error_not_each_candidates_own():
    best = result(16, 12, 0.990, 0.001)
    noisy = result(8, 6, 0.987, 0.010)  # its own SE would reach the best; the best's SE does not reach it
    assert cnn_recipe.choose([best, noisy]) is best


def test_at_equal_cost_the_chapters_settings_win_then_the_higher_mean():
    chapter = result(16, 12, 0.980, 0.005)
    results = [result(16, 12, 0.984, 0.005, "double", 3e-2), result(16, 12, 0.983, 0.005, "none"), chapter]
    assert cnn_recipe.choose(results) is chapter
    results.remove(chapter)
    assert cnn_recipe.choose(results)["candidate"] == Candidate(16, "none", 12, 1e-2)  # one change beats two
    one_change = [result(16, 12, 0.981, 0.005, lr=3e-2), result(16, 12, 0.983, 0.005, "none")]
    assert cnn_recipe.choose(one_change) is one_change[1]  # then the higher mean


def test_the_standard_error_combines_the_validation_images_and_the_seeds():
    r = cnn_recipe.summarise(PREVIOUS, [0.98, 0.97], [1.0, 3.0], n_val=800)
    se_images = math.sqrt(0.975 * 0.025 / 800)
    se_seeds = math.sqrt(((0.98 - 0.975) ** 2 + (0.97 - 0.975) ** 2) / 1) / math.sqrt(2)
    assert math.isclose(r["val_acc"], 0.975) and math.isclose(r["seconds"], 2.0)
    assert math.isclose(r["se_images"], se_images) and math.isclose(r["se_seeds"], se_seeds)
    assert math.isclose(r["se"], math.sqrt(se_images ** 2 + se_seeds ** 2))
    one = cnn_recipe.summarise(PREVIOUS, [0.98], [1.0], n_val=800)
    assert math.isnan(one["se_seeds"]) and math.isclose(one["se"], math.sqrt(0.98 * 0.02 / 800))
