"""What the benchmark scripts share: their Markdown report, printed as it is measured and written at the end.

The scripts run as ``python benchmarks/NAME.py``, so this folder is first on ``sys.path`` and they
``import report``. It needs only the standard library: a GPU machine with nothing but PyTorch runs
``benchmarks/speedrun.py``.
"""
from __future__ import annotations

import datetime
import platform
from pathlib import Path


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: one header row, then one row per list of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


class Report:
    """A Markdown report built section by section: each is printed at once, so a long run shows progress."""

    def __init__(self) -> None:
        self.sections: list[str] = []

    def emit(self, *parts: str) -> None:
        """Print one section (its parts joined by newlines) and keep it for :meth:`finish`."""
        text = "\n".join(parts)
        self.sections.append(text)
        print(text, flush=True)

    def finish(self, out: Path | None = None) -> str:
        """Return the whole report, exactly what was printed; also write it to ``out`` when given."""
        text = "\n".join(self.sections) + "\n"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        return text


def machine_lines(device: str, threads: int, torch_version: str, when: str = "at the start") -> list[str]:
    """A report's machine lines: the device, torch's threads, the load average ``when``, date, versions."""
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "unknown"
    return [f"- device: {device}, {threads} torch threads",
            f"- load average {when} (1, 5, 15 min): {load}",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- torch {torch_version}, Python {platform.python_version()}"]
