"""scripts/train_ddp.py: 2 processes (torchrun, gloo, CPU) train exactly like 1 process with the same global batch;
rank 0 downloads before the others read, and its resume decision is broadcast."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_ddp.py"
# 1,024 images, 2 epochs = 32 SGD steps. The two runs add the same gradients in a different order
# (two means over 32, averaged, against one mean over 64), so they agree up to float32 rounding:
# measured max |weight difference| about 3e-7. A real mismatch (wrong sharding, no gradient
# averaging, another global batch) is orders of magnitude larger; see the last test.
TOLERANCE = 1e-4
COMMON = ["--device", "cpu", "--train-examples", "1024", "--epochs", "2", "--threads", "1", "--seed", "0"]


def torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]


def train(out: Path, *, nproc: int, batch_size: int, extra: tuple[str, ...] = ()) -> tuple[str, dict]:
    """Run the script (under torchrun when nproc > 1); return rank 0's stdout and the saved result."""
    launcher = [*torchrun(), "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]
    proc = subprocess.run([*launcher, str(SCRIPT), *COMMON, "--batch-size", str(batch_size), "--out", str(out),
                           *extra], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, f"train_ddp.py failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout, torch.load(out, weights_only=True)


def max_weight_difference(a: dict, b: dict) -> float:
    assert a["model"].keys() == b["model"].keys()
    return max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return train(tmp_path_factory.mktemp("ddp") / "single.pt", nproc=1, batch_size=64)


def test_two_processes_match_one_process_with_the_same_global_batch(single, tmp_path):
    single_log, one = single
    ddp_log, two = train(tmp_path / "ddp.pt", nproc=2, batch_size=32)
    assert (two["world_size"], two["global_batch"]) == (2, 64) and (one["world_size"], one["global_batch"]) == (1, 64)
    assert "backend gloo" in ddp_log
    assert ddp_log.count("world size") == 1 and ddp_log.count("epoch ") == 2, "only rank 0 logs"
    assert one["history"]["train_loss"][-1] < one["history"]["train_loss"][0], "the runs must actually train"
    assert max_weight_difference(one, two) < TOLERANCE
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        assert one["history"][key] == pytest.approx(two["history"][key], abs=TOLERANCE), key


def test_resuming_from_rank_0_checkpoint_ends_where_an_uninterrupted_run_does(single, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    train(tmp_path / "half.pt", nproc=1, batch_size=64, extra=("--checkpoint", str(ckpt), "--epochs", "1"))
    log, resumed = train(tmp_path / "resumed.pt", nproc=1, batch_size=64, extra=("--checkpoint", str(ckpt)))
    assert "resumed from" in log and "after epoch 1" in log
    assert max_weight_difference(single[1], resumed) < 1e-6
    assert resumed["history"]["val_acc"] == single[1]["history"]["val_acc"]


def test_the_comparison_notices_a_different_global_batch(single, tmp_path):
    # The tolerance is not vacuous: the same data and seed with global batch 32 instead of 64 is far outside it.
    _, other = train(tmp_path / "b32.pt", nproc=1, batch_size=32)
    assert max_weight_difference(single[1], other) > 100 * TOLERANCE


# A driver run under torchrun by the next test: it imports the script, replaces the data loading by a
# slow fake "download" that logs when it starts and ends, and asks each rank whether to resume from
# a checkpoint that only rank 0 is told about (rank 1 gets a path that does not exist).
PROBE = r'''
import importlib.util, json, os, sys, time
from pathlib import Path
import torch.distributed as dist
spec = importlib.util.spec_from_file_location("train_ddp", sys.argv[1])
train_ddp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_ddp)
out = Path(sys.argv[2])
rank, world_size, device = train_ddp.setup("cpu")

def fake_datasets(dataset):
    start = time.time()
    if rank == 0:
        time.sleep(1.0)          # a slow download
    return {"start": start, "end": time.time(), "dataset": dataset}

train_ddp.helpers.mnist_datasets = fake_datasets
log = train_ddp.load_data("full", rank)
ckpt = out / ("exists.pt" if rank == 0 else "missing.pt")
if rank == 0:
    ckpt.write_bytes(b"x")
log["resume"] = train_ddp.should_resume(ckpt, device)
log["resume_none"] = train_ddp.should_resume(None, device)
(out / f"rank{rank}.json").write_text(json.dumps(log))
dist.destroy_process_group()
'''


def test_rank_0_downloads_first_and_its_resume_decision_is_broadcast(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    proc = subprocess.run([*torchrun(), "--standalone", "--nproc_per_node=2", str(probe), str(SCRIPT), str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    import json
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["dataset"] == rank1["dataset"] == "full"
    # rank 1 starts reading only after rank 0 has finished its (1 s) download
    assert rank1["start"] >= rank0["end"] - 0.05, (rank0, rank1)
    # rank 1 cannot see a checkpoint, rank 0 can: both follow rank 0
    assert rank0["resume"] is True and rank1["resume"] is True
    assert rank0["resume_none"] is False and rank1["resume_none"] is False


def test_a_rank_that_cannot_see_rank_0s_checkpoint_stops_with_a_clear_error(tmp_path, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location("train_ddp_probe", SCRIPT)
    train_ddp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_ddp)
    monkeypatch.setattr(train_ddp, "should_resume", lambda checkpoint, device: True)  # "rank 0 has one"
    with pytest.raises(FileNotFoundError, match="shared|share"):
        train_ddp.main(["--device", "cpu", "--train-examples", "128", "--epochs", "1", "--threads", "1",
                        "--checkpoint", str(tmp_path / "not-here.pt")])
