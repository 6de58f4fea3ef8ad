"""The benchmark scripts run and print what they claim to print (their figures are not checked here:
timings belong in the scripts' output, not in assertions)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_gpu_benchmark_quick_mode_prints_every_table_and_writes_the_report(tmp_path):
    out = tmp_path / "report.md"
    result = run_script("benchmarks/gpu_benchmark.py", "--quick", "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report == result.stdout  # what is printed is what is written
    for heading in ("## Matmul throughput", "## Small CNN training", "## Batch size", "## Time to 97.5%"):
        assert heading in report, heading
    assert "- device: cpu" in report
    # one row per matmul size, with a number in the fp32 column; tf32 is n/a off CUDA
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| n/a \| ([\d.]+) \|$", report, flags=re.M)
    assert [int(n) for n, _, _ in rows] == [128, 256, 512], report
    assert all(float(fp32) > 0 for _, fp32, _ in rows)
    for pipeline in ("naive", "resident", "resident+bf16"):
        assert re.search(rf"^\| {re.escape(pipeline)} \| [\d,]+ \| [\d.]+x \|", report, flags=re.M), pipeline


def test_gpu_benchmark_rejects_a_batch_larger_than_the_data_instead_of_hanging():
    result = run_script("benchmarks/gpu_benchmark.py", "--device", "cpu", "--sizes", "64", "--steps", "2",
                        "--warmup", "1", "--batch-size", "8192", timeout=120)
    assert result.returncode != 0
    assert "ValueError: batch size 8192" in result.stderr and "choose a smaller" in result.stderr, result.stderr[-2000:]



def test_speedrun_quick_mode_prints_the_journey_and_the_seeds_and_writes_the_report(tmp_path):
    out = tmp_path / "speedrun.md"
    result = run_script("benchmarks/speedrun.py", "--quick", "--threads", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report == result.stdout
    assert "- device: cpu" in report and "load average" in report
    for stage in ("naive", "in-memory", "no-sync", "channels-last", "fused-adamw", "batch-256"):
        assert re.search(rf"^\| {stage} \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.]+ \|$", report, flags=re.M), stage
    assert "| compiled |" not in report  # compilation is off on CPU unless --compile yes
    seeds = re.findall(r"^\| (\d) \| (0\.\d{4}) \| ([\d.]+) \|$", report, flags=re.M)
    assert [s for s, _, _ in seeds] == ["0", "1"], report
    assert re.search(r"^\| \*\*mean\*\* \| \*\*0\.\d{4}\*\* \|", report, flags=re.M)
    assert "Warm-up" in report and "Reference CNN" not in report  # --quick skips the 40 s reference


def test_speedrun_random_shift_moves_each_image_by_its_own_offset():
    import importlib.util
    import torch
    spec = importlib.util.spec_from_file_location("speedrun", ROOT / "benchmarks" / "speedrun.py")
    speedrun = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speedrun)
    x = torch.randn(64, 1, 28, 28)
    assert torch.equal(speedrun.random_shift(x, 0, torch.Generator()), x)
    shifted = speedrun.random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    # every output is its input translated by some (dy, dx) in [-2, 2]^2, and not all by the same one
    background = -speedrun.helpers.MNIST_MEAN / speedrun.helpers.MNIST_STD
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=background)
    offsets = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(padded[i, :, dy:dy + 28, dx:dx + 28], shifted[i])]
        assert len(found) == 1, i
        offsets.add(found[0])
    assert len(offsets) > 5


def test_speedrun_refuses_bad_arguments_with_a_clear_message():
    result = run_script("benchmarks/speedrun.py", "--quick", "--threads", "1", "--batch-size", "1024", timeout=180)
    assert result.returncode != 0
    assert "ValueError: batch size 1024" in result.stderr and "choose a smaller" in result.stderr, result.stderr[-2000:]
    result = run_script("benchmarks/speedrun.py", "--seeds", "0", timeout=60)
    assert result.returncode == 2 and "--seeds must be >= 1" in result.stderr
