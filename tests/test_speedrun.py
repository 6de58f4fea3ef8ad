"""benchmarks/speedrun.py: it runs with PyTorch alone (no NumPy, mlxtend or course package, as on the GPU
machine), reads the course's cached split exactly, chooses its recipe on held-out training images, trains
every run with one warmed-up model and compiled step (no recompilation), and reports its statistics."""
from __future__ import annotations

import importlib.util
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "speedrun.py"
spec = importlib.util.spec_from_file_location("speedrun", SCRIPT)
speedrun = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speedrun)


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile with the "eager" backend: dynamo traces, guards and counts graphs as with inductor, but
    generates no code, so a test sees every compilation and recompilation in seconds."""
    torch._dynamo.reset()
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: compile_(fn, backend="eager",
                                                                                       dynamic=dynamic))
    yield
    torch._dynamo.reset()
    torch._logging.set_logs()  # main() turns on the recompile and graph-break logs


def embedded(n: int):
    """The first n embedded training images and labels, through the course's own loader."""
    train_ds, _ = helpers.mnist_datasets("embedded")
    return train_ds.tensors[0][:n], train_ds.tensors[1][:n]


# ---- data -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_read_npz_returns_what_numpy_reads(tmp_path, save):
    arrays = {"images": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), "labels": np.array([-1, 2**40, 7]),
              "f32": np.linspace(0, 1, 5, dtype=np.float32), "i32": np.array([[1, -2], [3, 4]], dtype=np.int32)}
    save(tmp_path / "a.npz", **arrays)
    got = speedrun.read_npz(tmp_path / "a.npz")
    assert got.keys() == arrays.keys()
    with np.load(tmp_path / "a.npz") as oracle:
        for name in arrays:
            assert torch.equal(got[name], torch.from_numpy(oracle[name])), name


def test_read_npz_refuses_what_it_cannot_read(tmp_path):
    np.savez(tmp_path / "f64.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="<f8"):
        speedrun.read_npz(tmp_path / "f64.npz")
    np.savez(tmp_path / "fortran.npz", x=np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="fortran_order=True"):
        speedrun.read_npz(tmp_path / "fortran.npz")


def test_the_split_it_reads_is_the_courses_to_the_bit():
    helpers.load_mnist_arrays("embedded")  # creates the cache file if this checkout has none yet
    (x_train, y_train), (x_test, y_test) = speedrun.load_embedded(speedrun.default_data_file())
    train_ds, test_ds = helpers.mnist_datasets("embedded")
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    for mine, course in ((x_train, train_ds.tensors[0]), (y_train, train_ds.tensors[1]),
                         (x_test, test_ds.tensors[0]), (y_test, test_ds.tensors[1])):
        assert mine.dtype == course.dtype and torch.equal(mine, course)
    assert (speedrun.MNIST_MEAN, speedrun.MNIST_STD) == (helpers.MNIST_MEAN, helpers.MNIST_STD)


def test_where_the_course_is_installed_a_missing_file_is_created_where_helpers_caches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))  # helpers.data_dir() and the script both follow it
    assert speedrun.default_data_file() == tmp_path / "cache" / "mnist_embedded_v1.npz"
    (x_train, _), (x_test, _) = speedrun.load_embedded()
    assert speedrun.default_data_file().exists() and len(x_train) == 4000 and len(x_test) == 1000


def test_a_missing_file_is_named_with_how_to_create_it(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        speedrun.load_embedded(tmp_path / "elsewhere.npz")
    assert str(tmp_path / "elsewhere.npz") in str(err.value) and "helpers.load_mnist_arrays()" in str(err.value)
    # the default file, on a machine without the course: nothing can create it
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "helpers", None)  # "import helpers" fails, as where it is not installed
    with pytest.raises(FileNotFoundError, match="--data FILE") as err:
        speedrun.load_embedded()
    assert str(tmp_path / "cache" / "mnist_embedded_v1.npz") in str(err.value)


# Runs a script as `python script args...` would, in a Python where NumPy, mlxtend, matplotlib and the course
# package are missing: each `import` of them raises ModuleNotFoundError, as on the GPU machine.
WITHOUT_THE_COURSE = """
import runpy, sys
for name in ("numpy", "mlxtend", "matplotlib", "helpers"):
    sys.modules[name] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_mode_runs_with_pytorch_alone_and_reports_mean_sd_and_the_test_sets_standard_error(tmp_path):
    helpers.load_mnist_arrays("embedded")
    out = tmp_path / "speedrun.md"
    proc = subprocess.run([sys.executable, "-c", WITHOUT_THE_COURSE, str(SCRIPT), "--quick", "--threads", "1",
                           "--data", str(speedrun.default_data_file()), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    assert report == proc.stdout
    # the recipe is chosen among the candidates on 128 held-out training images; exactly one is chosen
    assert "## The recipe: chosen on 128 held-out training images, never on the test images" in report
    candidates = re.findall(r"^\| 1 \| (0\.0[12]) \| 6 \| (0\.\d{4}) \| (-?0\.\d{4}) \| (\**\w*\**) \|$", report,
                            flags=re.M)
    assert [lr for lr, *_ in candidates] == ["0.01", "0.02"], report
    assert [mark for *_, mark in candidates].count("**chosen**") == 1
    # per seed, then mean and sd: the figures agree with each other
    accs = [float(a) for a in re.findall(r"^\| \d \| (0\.\d{4}) \| [\d.]+ \|$", report, flags=re.M)]
    assert len(accs) == 2, report
    mean = float(re.search(r"^\| \*\*mean\*\* \| \*\*(0\.\d{4})\*\* \|", report, flags=re.M).group(1))
    sd = float(re.search(r"^\| sd \| (0\.\d{4}) \| [\d.]+ \|$", report, flags=re.M).group(1))
    assert mean == pytest.approx(statistics.mean(accs), abs=1e-4) and sd == pytest.approx(statistics.stdev(accs),
                                                                                         abs=1e-4)
    summary = re.search(r"Test accuracy (0\.\d{4}) ± (0\.\d{4}) \(mean ± sd over 2 seeds.*n = 200 images, is "
                        r"(0\.\d{4})", report)
    assert summary, report
    p = float(summary.group(1))
    assert (p, float(summary.group(2))) == (mean, sd)
    assert float(summary.group(3)) == pytest.approx(math.sqrt(p * (1 - p) / 200), abs=1e-4)


# ---- one model and one compiled step for every run ----------------------------------------------

def test_each_run_starts_from_its_seeds_fresh_initialisation_in_the_same_model():
    data = embedded(256)
    trainer = speedrun.Trainer(torch.device("cpu"))
    model, tensors = trainer.model, [t.data_ptr() for t in trainer.model.state_dict().values()]
    recipe = speedrun.Recipe(epochs=1, batch_size=32)

    def weights(seed):
        assert trainer.fit(recipe, data, seed) is model
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, other, again = weights(3), weights(4), weights(3)
    assert [t.data_ptr() for t in model.state_dict().values()] == tensors  # the same tensors, updated in place
    assert all(torch.equal(first[k], again[k]) for k in first)  # nothing of run 1 leaks into run 3
    assert not all(torch.equal(first[k], other[k]) for k in first)
    # the oracle for the initialisation: a new small CNN built after torch.manual_seed(seed)
    trainer.reset(7)
    torch.manual_seed(7)
    fresh = helpers.small_cnn()
    for name, value in fresh.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_after_the_warm_up_no_run_compiles_again(eager_compile):
    data = embedded(250)  # not a multiple of the batch: a short last batch would recompile
    trainer = speedrun.Trainer(torch.device("cpu"), compile_mode="default")
    before = speedrun.compile_counts()
    speedrun.warm_up(trainer, speedrun.Recipe(batch_size=32), data, steps=3)
    warm = speedrun.compile_counts()
    assert warm["graphs"] > before["graphs"], "the warm-up compiles"
    for epochs, lr, seed in ((1, 1e-2, 0), (2, 2e-2, 1), (1, 5e-3, 2)):  # other seeds and recipes, one batch size
        trainer.fit(speedrun.Recipe(epochs=epochs, batch_size=32, lr=lr), data, seed)
        speedrun.accuracy(trainer.model, *data)  # evaluation between runs: eval mode, eager
    assert speedrun.compile_counts()["graphs"] == warm["graphs"], "a run recompiled"


@pytest.mark.timeout(300)
def test_compiled_quick_mode_reports_no_recompilation(eager_compile, threads):
    report = speedrun.main(["--quick", "--threads", "1", "--compile", "yes"])
    assert re.search(r"^\| compiled \| 256 \|", report, flags=re.M)
    counts = re.search(r"torch\.compile: (\d+) graph\(s\) compiled in the warm-up, (\d+) recompilation\(s\) in the "
                       r"validation and timed runs after it \(0 is right\), (\d+) graph break\(s\)", report)
    assert counts, report
    compiled, recompiled, breaks = map(int, counts.groups())
    assert compiled >= 1 and recompiled == 0 and breaks == 0  # backward() outside the compiled function


# ---- the recipe, the shifts, the statistics -------------------------------------------------------

def test_the_recipe_is_the_fewest_steps_that_reach_the_target_by_one_standard_error():
    def c(steps, acc, se=0.005):
        return {"steps": steps, "val_acc": acc, "val_se": se}

    fast, medium, medium_better, slow = c(100, 0.978), c(150, 0.982), c(150, 0.985), c(200, 0.99)
    # 0.978 - 0.005 misses 0.975: not the fast one; of the two at 150 steps, the more accurate
    assert speedrun.choose([fast, medium, medium_better, slow], target=0.975) is medium_better
    assert speedrun.choose([fast, medium, slow], target=0.99) is slow  # none reaches: the most accurate
    assert speedrun.choose([c(100, 0.95), c(200, 0.95)], target=0.99)["steps"] == 100  # ...and the faster of equals


def test_standard_error():
    assert speedrun.standard_error(0.9, 100) == pytest.approx(0.03)
    assert speedrun.standard_error(1.0, 1000) == 0.0


def test_random_shift_draws_its_offsets_from_the_generator_it_is_given_only():
    x = torch.randn(16, 1, 28, 28)
    global_state = torch.get_rng_state()
    a = speedrun.random_shift(x, 2, torch.Generator().manual_seed(5))
    b = speedrun.random_shift(x, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(torch.get_rng_state(), global_state), "random_shift used the global generator"


def test_bad_splits_and_targets_are_refused_with_a_clear_message(threads):
    with pytest.raises(ValueError, match="after holding out --val-size 3990: choose a smaller --batch-size or"):
        speedrun.main(["--val-size", "3990", "--threads", "1"])
    with pytest.raises(SystemExit) as err:
        speedrun.parse_args(["--target", "97.5"])
    assert err.value.code == 2
