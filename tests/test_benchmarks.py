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

