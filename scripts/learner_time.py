"""How long a learner needs for each chapter, computed from its content (the method on book/instructors.md).

    .venv/bin/python scripts/learner_time.py            # print the table
    .venv/bin/python scripts/learner_time.py --write    # rewrite each notebook's "**Time:**" sentence
                                                        # and the table on book/instructors.md

A guess goes stale as a chapter grows; a count does not. The chapter is split at its exercises (the first
`{exercise}` directive). Each part costs: its prose at a technical reading speed, each visible code cell
read, run and looked at, each line of code read; the exercises add a fixed time each for the attempt
before the solution is opened. tests/test_course_rules.py fails when a stated time is off by more than a
quarter.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import course

WORDS_PER_MINUTE = 100  # technical prose with formulas, read to learn, not skimmed
MINUTES_PER_CODE_CELL = 1.0  # read the cell, run it, look at what it prints or draws
SECONDS_PER_CODE_LINE = 4  # read one line of code (setup and solution cells included)
MINUTES_PER_EXERCISE = 15  # an honest attempt before the solution is opened

DIRECTIVE_LINE = re.compile(r"^\s*(:\w[\w-]*:.*|`{3,}.*|:{3,}.*)$", re.M)  # :label:, fences
CODE_FENCE = re.compile(r"^(`{3,})(?!\{).*?^\1", re.M | re.S)  # quoted code, not a directive
TIME = re.compile(r"\*\*Time:\*\*.*?(?=\n\n|\Z)", re.S)  # to the end of its paragraph
STATED = re.compile(r"\*\*Time:\*\* about (?:(\d+) h )?(\d+) min(?:, plus about (\d+) min for the exercises)?")


@dataclass
class Estimate:
    words: int
    code_cells: int
    code_lines: int
    exercises: int = 0

    def minutes(self) -> float:
        return (self.words / WORDS_PER_MINUTE + self.code_cells * MINUTES_PER_CODE_CELL
                + self.code_lines * SECONDS_PER_CODE_LINE / 60 + self.exercises * MINUTES_PER_EXERCISE)


def text(cell: dict) -> str:
    return "".join(cell["source"])


def estimate(cells: list[dict]) -> Estimate:
    """Words of prose, visible code cells and their lines, and exercises, in ``cells``."""
    words = cells_ = lines = exercises = 0
    for cell in cells:
        src = text(cell)
        if cell["cell_type"] == "markdown":
            exercises += src.count("{exercise}")
            prose = DIRECTIVE_LINE.sub("", CODE_FENCE.sub("", src))
            words += len(re.sub(r"<!--.*?-->", "", prose, flags=re.S).split())
            lines += sum(len(m.group(0).splitlines()) - 2 for m in CODE_FENCE.finditer(src))
        elif src.strip() and "remove-cell" not in cell.get("metadata", {}).get("tags", []):
            cells_ += 1
            lines += len([ln for ln in src.splitlines() if ln.strip()])
    return Estimate(words, cells_, lines, exercises)


def chapter_times(path: Path) -> tuple[int, int]:
    """(minutes for the chapter, minutes for its exercises), each rounded to 5."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    split = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "{exercise}" in text(c)),
                 len(cells))
    return tuple(5 * round(estimate(part).minutes() / 5) for part in (cells[:split], cells[split:]))


def sentence(path: Path, main: int, exercises: int) -> str:
    hours, minutes = divmod(main, 60)
    said = f"**Time:** about {f'{hours} h ' if hours else ''}{minutes} min"
    if exercises:
        said += f", plus about {exercises} min for the exercises"
    method = os.path.relpath(course.ROOT / "book" / "instructors.md", path.parent)
    return said + f" ([how this is estimated]({method}#learner-time))."


def stated(path: Path) -> tuple[int, int] | None:
    """The (chapter, exercises) minutes that the notebook's first cell states, or None."""
    m = STATED.search(text(json.loads(path.read_text(encoding="utf-8"))["cells"][0]))
    return None if not m else (60 * int(m.group(1) or 0) + int(m.group(2)), int(m.group(3) or 0))


def write(path: Path) -> bool:
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    first = text(nb["cells"][0])
    if not TIME.search(first):
        raise SystemExit(f"{path.name}: the first cell has no '**Time:** ...' sentence to rewrite")
    new = TIME.sub(lambda _: sentence(path, *chapter_times(path)), first, count=1)
    if new == first:
        return False
    nb["cells"][0]["source"] = new.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def table_row(path: Path) -> str:
    """The notebook's row of the learner-time table on book/instructors.md."""
    e = estimate(json.loads(path.read_text(encoding="utf-8"))["cells"])
    main_min, ex_min = chapter_times(path)
    return (f"| {path.stem} | {e.words:,} | {e.code_cells} | {e.code_lines} | {main_min} min | "
            f"{f'{ex_min} min' if ex_min else '—'} |")


def write_table() -> bool:
    """Rewrite the rows of the learner-time table on book/instructors.md; return whether it changed."""
    page = course.ROOT / "book" / "instructors.md"
    old = page.read_text(encoding="utf-8")
    new = old
    for path in course.notebooks():
        row = re.compile(rf"^\| {re.escape(path.stem)} \|.*$", re.M)
        if not row.search(new):
            raise SystemExit(f"book/instructors.md's learner-time table has no row for {path.stem}; add one")
        new = row.sub(lambda _, p=path: table_row(p), new, count=1)
    if new != old:
        page.write_text(new, encoding="utf-8")
    return new != old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="rewrite each notebook's Time sentence and the instructors' table")
    args = parser.parse_args()
    print(f"{'notebook':18} {'words':>6} {'cells':>5} {'lines':>5} {'chapter':>8} {'exercises':>9}  stated")
    for path in course.notebooks():
        if args.write and write(path):
            print(f"rewrote the Time sentence of {path.name}")
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        e = estimate(cells)
        main_min, ex_min = chapter_times(path)
        print(f"{path.stem:18} {e.words:6} {e.code_cells:5} {e.code_lines:5} {main_min:6} min {ex_min:5} min  "
              f"{stated(path)}")
    if args.write and write_table():
        print("rewrote the learner-time table of book/instructors.md")


if __name__ == "__main__":
    main()
