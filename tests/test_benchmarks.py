"""The benchmark scripts run and print what they claim to print (their figures are not checked here:
timings belong in the scripts' output, not in assertions)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    background = -speedrun.MNIST_MEAN / speedrun.MNIST_STD
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


# ---- benchmarks/deploy_benchmark.py and its load generator, benchmarks/loadgen.py ------------------------

def benchmark_module(name: str):
    """Import benchmarks/NAME.py by path (the folder is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_open_loop_send_times_are_fixed_in_advance():
    import numpy as np
    loadgen = benchmark_module("loadgen")
    times = loadgen.schedule(250, 10_000, start=5.0)
    assert len(times) == 10_000 and times[0] == 5.0
    assert np.allclose(np.diff(times), 1 / 250)  # t_i = t0 + i / rate, whatever the server does
    assert times[-1] == pytest.approx(5.0 + 9_999 / 250)
    with pytest.raises(ValueError, match="rate > 0"):
        loadgen.schedule(0, 10)


def test_open_loop_latency_counts_from_the_scheduled_send_so_it_includes_the_queueing():
    import numpy as np
    loadgen = benchmark_module("loadgen")
    # A fake clock: 100 requests/s offered to a server that answers one at a time in 50 ms, so request i
    # is answered at (i + 1) x 50 ms. From its scheduled time (i x 10 ms) it took 50 + 40 i ms; measured from
    # when it could be sent (coordinated omission) every request would look like 50 ms.
    scheduled = loadgen.schedule(100, 10)
    done = 0.05 * np.arange(1, 11)
    r = loadgen.summarise(100, scheduled, done, np.full(10, 200))
    assert (r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"]) == (250.0, 410.0, 410.0, 410.0)
    assert r["errors"] == 0 and r["n"] == 10 and r["achieved_rps"] == pytest.approx(20.0)
    status = np.full(10, 200)
    status[3] = 503
    r = loadgen.summarise(100, scheduled, done, status)  # a failure counts as infinitely slow
    assert r["errors"] == 1 and r["p99_ms"] is None and r["max_ms"] is None and r["p50_ms"] == 290.0


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_open_loop_sees_a_stalled_server_queue_up_where_the_closed_loop_does_not():
    import asyncio
    loadgen = benchmark_module("loadgen")

    async def handle(reader, writer):  # a server that takes 50 ms per request, one at a time per connection
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(re.search(rb"content-length: *(\d+)", head, re.I).group(1)))
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def measure():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        payloads = [{"content": b"{}", "headers": {"content-type": "application/json"}}]
        async with server:
            opened = await loadgen.open_loop(url, payloads, rate=100, n=10, max_connections=1, warm_connections=1)
            closed = await loadgen.load(url, payloads, n=10, concurrency=1)
        return opened, closed

    opened, closed = asyncio.run(measure())
    assert opened["errors"] == 0 and closed["failures"] == 0, (opened, closed)
    assert closed["p99_ms"] < 150, closed  # each request alone: about 50 ms
    assert opened["p50_ms"] > 150 and opened["max_ms"] > 350, opened  # the wait behind the others counts


def test_deploy_benchmark_refuses_bad_arguments_with_a_clear_message(capsys):
    bench = benchmark_module("deploy_benchmark")
    for argv, message in ((["--rates", "250,abc"], "expected comma-separated requests/s"),
                          (["--rates", "0"], "every rate must be > 0"),
                          (["--modes", "inline,fast"], "unknown ['fast']; choose from inline,threadpool,workers2"),
                          (["--rate-requests", "50"], "a p99 needs at least 100 requests per rate"),
                          (["--rate-requests", "0", "--json-out", "x.json"], "--json-out needs the open loop"),
                          (["--server-cores", "one"], "expected a core list")):
        with pytest.raises(SystemExit) as exit_info:
            bench.parse_args(argv)
        assert exit_info.value.code == 2, argv
        assert message in capsys.readouterr().err, argv


def test_pinning_degrades_gracefully_without_taskset_or_distinct_cores(monkeypatch):
    import os
    bench = benchmark_module("deploy_benchmark")
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert bench.pin(0, "1") == ((), "not pinned: `taskset` is not installed (client and server share every core)")
    monkeypatch.undo()
    prefix, note = bench.pin(0, "0")  # one core for both is no pinning
    assert prefix == () and note.startswith("not pinned")
    assert bench.cores("1,3-5") == {1, 3, 4, 5}
    if before is not None:
        assert os.sched_getaffinity(0) == before, "a refused pinning must leave this process alone"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_deploy_benchmark_tiny_sweep_writes_the_markdown_report_and_the_json(tmp_path):
    import json
    out, figures = tmp_path / "deploy.md", tmp_path / "openloop.json"
    result = run_script("benchmarks/deploy_benchmark.py", "--skip-runtimes", "--epochs", "0", "--requests", "100",
                        "--rates", "100,200", "--rate-requests", "100", "--out", str(out), "--json-out", str(figures),
                        timeout=360)
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report == result.stdout  # what is printed is what is written
    assert "## Service under load, closed loop" in report and "## Service under load, open loop" in report
    assert "## Inference latency" not in report  # --skip-runtimes
    assert re.search(r"^\| JSON \| [\d,]+ \| [\d.]+ \| [\d.]+ \| 0 \|$", report, flags=re.M), report
    data = json.loads(figures.read_text())
    assert data["meta"]["requests_per_rate"] == 100 and data["meta"]["rates"] == [100, 200]
    assert list(data["results"]) == ["json", "png"]
    for fmt, modes in data["results"].items():
        assert list(modes) == ["inline", "threadpool", "workers2"]
        for mode, rows in modes.items():
            assert [r["offered_rps"] for r in rows] == [100, 200]
            for r in rows:
                assert r["n"] == 100 and r["errors"] == 0, (fmt, mode, r)
                assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"], r
                assert r["achieved_rps"] > 0.5 * r["offered_rps"], r
                assert re.search(rf"^\| {mode} \| {r['offered_rps']} \| ", report, flags=re.M), (mode, r)
    assert report.count("Knee (highest offered rate up to which every rate kept p99 <= 20 ms)") == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_grading_cost_benchmark_grades_a_small_class_and_reports_the_ratio(tmp_path):
    out = tmp_path / "grading.md"
    result = run_script("benchmarks/grading_cost.py", "--chapter", "01", "--n", "2", "--smoke", "--out", str(out),
                        timeout=500)
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report == result.stdout
    assert re.search(r"^\| per submission \| [\d.]+ \|$", report, flags=re.M), report
    assert re.search(r"Ratio, per submission to one execution: [\d.]+\. All 2 submissions at full marks: True",
                     report), report


def test_the_instructors_page_quotes_the_recorded_grading_cost():
    """The cost the instructors' page states is the one data/grading_cost.md recorded (a benchmark
    figure, reported from the run, never asserted against the clock)."""
    report = (ROOT / "data" / "grading_cost.md").read_text()
    per = re.search(r"^\| per submission \| ([\d.]+) \|$", report, flags=re.M).group(1)
    one = re.search(r"^\| one execution of the chapter .*\| ([\d.]+) \|$", report, flags=re.M).group(1)
    ratio = re.search(r"to one execution: ([\d.]+)\. All 30 submissions at full marks: True", report).group(1)
    total = float(re.search(r"^\| grading 30 submissions .*\| ([\d.]+) \|$", report, flags=re.M).group(1))
    page = " ".join((ROOT / "book" / "instructors.md").read_text().split())
    assert f"{per} s per submission against {one} s for one execution of the chapter (ratio {ratio})" in page
    assert f"about {round(total / 60)} minutes for the class of 30" in page
