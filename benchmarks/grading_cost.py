"""What grading a class costs: N submissions of one chapter's assignment, against one execution of it.

    python benchmarks/grading_cost.py                       # chapter 05, 30 submissions, default size
    python benchmarks/grading_cost.py --chapter 01 --n 30 --smoke --out data/grading_cost.md

Builds the assignment (scripts/assignment.py build), makes N submissions (copies of the reference
submission, the worst case: every cell runs to the end), grades them with the sandbox on, and prints
the cost per submission next to one execution of the chapter (the build's reference run, the same
runner outside the sandbox): the overhead is what grading adds (sandbox, process start, the hidden
tests' process). Issue 21's target: at most the chapter's own time plus 15 s per submission.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="05")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="the chapter's smoke-size parameters")
    parser.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grading-cost-"))
    command = [sys.executable, "scripts/assignment.py", "build", args.chapter, "--out", str(work / "built")]
    build = subprocess.run(command + (["--smoke"] if args.smoke else []), cwd=ROOT, capture_output=True,
                           text=True, check=True)
    m = re.search(r"^(\S+): version (\w+), .* reference run ([\d.]+) s", build.stdout, flags=re.M)
    chapter, version, one_run = m.group(1), m.group(2), float(m.group(3))
    folder = work / "built" / chapter
    subs = work / "submissions"
    subs.mkdir()
    reference = (folder / "bundle" / "reference_submission.ipynb").read_text()
    for i in range(args.n):
        (subs / f"learner{i:02d}.ipynb").write_text(reference)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "scripts/assignment.py", "grade", str(folder), str(subs), "--out",
                    str(work / "grades")], cwd=ROOT, check=True, capture_output=True, text=True)
    total = time.perf_counter() - start
    with open(work / "grades" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    full = all(r["total"] == r["max"] for r in rows)
    per = total / args.n
    size = "smoke-size parameters" if args.smoke else "default parameters"
    lines = [
        f"# Grading cost: `python benchmarks/grading_cost.py --chapter {args.chapter} --n {args.n}"
        f"{' --smoke' if args.smoke else ''}`",
        "",
        f"Chapter {chapter} (assignment version {version}), {size}, {os.cpu_count()} cores, "
        f"load average {load:.1f} at the start.",
        "",
        "| what | seconds |",
        "|---|---:|",
        f"| one execution of the chapter (reference run, no sandbox) | {one_run:.1f} |",
        f"| grading {args.n} submissions (sandboxed, one after another) | {total:.1f} |",
        f"| per submission | {per:.1f} |",
        f"| per submission minus one execution (grading's overhead) | {per - one_run:.1f} |",
        "",
        f"Ratio, per submission to one execution: {per / one_run:.2f}. All {len(rows)} submissions at full "
        f"marks: {full}. Issue 21's target is an overhead of at most 15 s.",
    ]
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.out:
        args.out.write_text(report)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
