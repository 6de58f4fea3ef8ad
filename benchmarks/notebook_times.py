"""Execute each notebook at its default parameters and print the wall-clock time (kernel start included).

    .venv/bin/python benchmarks/notebook_times.py [notebooks/04_mlp.ipynb ...]

Run it on a quiet machine: the figures go into book/instructors.md.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import course  # noqa: E402  (the chapter list, stated once)


def main(paths: list[str]) -> None:
    notebooks = [Path(p).resolve() for p in paths] or course.notebooks()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f} (a busy machine inflates every time)")
    total = 0.0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        client = NotebookClient(nb, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{path.relative_to(ROOT)}: {seconds:.1f} s", flush=True)
    print(f"total: {total:.1f} s; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
