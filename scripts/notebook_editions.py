"""The editions of the course's notebooks, generated from the sources in notebooks/ and book/, never by hand.

    .venv/bin/python scripts/notebook_editions.py colab            # rewrite colab/*.ipynb and colab/zh/*.ipynb
    .venv/bin/python scripts/notebook_editions.py colab --check    # exit 1 if colab/ or colab/zh/ is stale
    .venv/bin/python scripts/notebook_editions.py student DIR      # copies without any solution

- The **Colab edition** (`colab/`, committed; the site's launch button and "download .ipynb" give it)
  reads well where MyST directives do not render (Colab, plain Jupyter): exercises become numbered
  bold paragraphs, a text solution a collapsed HTML `<details>` block, and an executed solution's code
  cells start collapsed (Colab's form view with a title, JupyterLab's `source_hidden`). No directive
  syntax (```` ```{ ````, `:label:`, `:class:`) is left. `colab/zh/` is the same in Chinese: each
  Markdown cell's prose and each figure's alt text replaced by its translation from the catalogs
  (`locale/zh_CN`, scripts/i18n.py), code, comments and outputs unchanged.
- The **student edition** drops every solution, text and executed ("gated") alike, with their outputs.
  sphinx-exercise's `hide_solutions` cannot do that: it crashes on gated solutions.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import course  # scripts/course.py: the chapter list, stated once

ROOT = Path(__file__).resolve().parents[1]
COLAB_DIR = ROOT / "colab"
FENCE = r"(?P<fence>`{3,}|:{3,})"
EXERCISE = re.compile(FENCE + r"\{exercise\}[^\n]*\n(?P<body>.*?)\n(?P=fence)[ \t]*(?:\n|$)", re.S)
SOLUTION = re.compile(FENCE + r"\{solution\}[^\n]*\n(?P<body>.*?)\n(?P=fence)[ \t]*(?:\n|$)", re.S)
SOLUTION_START = re.compile(FENCE + r"\{solution-start\}[^\n]*\n(?P<body>.*?)\n(?P=fence)[ \t]*(?:\n|$)", re.S)
SOLUTION_END = re.compile(FENCE + r"\{solution-end\}[^\n]*\n(?P<body>.*?)(?P=fence)[ \t]*(?:\n|$)", re.S)
OPTION = re.compile(r"^:(\w[\w-]*):[ \t]*(.*)$", re.M)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def solution_cells(cells: list[dict]) -> list[int]:
    """Indices of the cells that belong to a solution: a `{solution}` markdown cell, or a gated
    solution from its `{solution-start}` cell to its `{solution-end}` cell inclusive."""
    inside, found = False, []
    for i, cell in enumerate(cells):
        text = source(cell) if cell["cell_type"] == "markdown" else ""
        if "{solution-start}" in text:
            if inside:
                raise ValueError(f"cell {i}: a solution-start inside another gated solution (missing solution-end?)")
            inside = True
        if inside or (cell["cell_type"] == "markdown" and SOLUTION.search(text)):
            found.append(i)
        if "{solution-end}" in text:
            if not inside:
                raise ValueError(f"cell {i}: a solution-end without its solution-start")
            inside = False
    if inside:
        raise ValueError("a solution-start without its solution-end")
    return found


def split_options(body: str) -> tuple[dict, str]:
    """A directive body's leading `:name: value` lines as a dict, and the rest."""
    options, lines = {}, body.split("\n")
    while lines and (m := OPTION.match(lines[0])):
        options[m.group(1)] = m.group(2).strip()
        lines.pop(0)
    return options, "\n".join(lines).strip("\n")


def strip_text_solutions(text: str) -> str:
    """The markdown without its `{solution}` blocks (a cell may hold an exercise and its solution)."""
    return SOLUTION.sub("", text).strip("\n")


def without_hidden_tests(cells: list[dict]) -> list[dict]:
    """The cells less the graded assignments' hidden tests (tag grade-hidden, scripts/assignment.py):
    they are in no edition a learner receives."""
    return [c for c in cells if "grade-hidden" not in c.get("metadata", {}).get("tags", [])]


def student_edition(nb: dict) -> dict:
    """A copy of ``nb`` without any solution: text solutions, gated solutions' cells and outputs."""
    nb = copy.deepcopy(nb)
    nb["cells"] = without_hidden_tests(nb["cells"])
    drop = set(solution_cells(nb["cells"]))
    kept = []
    for i, cell in enumerate(nb["cells"]):
        if i in drop:
            if cell["cell_type"] == "markdown" and not SOLUTION_START.search(source(cell)) \
                    and SOLUTION.search(source(cell)):
                rest = strip_text_solutions(source(cell))  # keep an exercise sharing the cell
                if rest.strip():
                    set_source(cell, rest)
                    kept.append(cell)
            continue
        kept.append(cell)
    nb["cells"] = kept
    return nb


def _plain_markdown(text: str, labels: dict[str, str]) -> str:
    """MyST roles and targets that plain Jupyter would show raw, as plain Markdown."""
    text = re.sub(r"^\((?P<name>[\w-]+)\)=[ \t]*$", r'<a id="\g<name>"></a>', text, flags=re.M)
    text = re.sub(r"\{(?:ref|numref)\}`([^`<]*?)\s*<([^`>]+)>`", r"\1", text)
    text = re.sub(r"\{(?:ref|numref)\}`([^`]+)`", lambda m: labels.get(m.group(1), m.group(1)), text)
    text = re.sub(r"\{(?:doc|download|term)\}`([^`<]*?)\s*(?:<[^`>]+>)?`", r"\1", text)
    return text


# The words the Colab edition adds itself, per language (the Chinese edition's prose comes from the
# catalogs in locale/, scripts/i18n.py)
WORDS = {
    "en": {"exercise": "exercise {n}", "Exercise": "Exercise {n}.", "Solution": "Solution",
           "Solution to": "Solution to {name}", "the exercise": "the exercise",
           "collapsed": "the code cells below start collapsed; open them to see the code.",
           "checks": "A check of the text's claims", "double-click": "(double-click to show the code)"},
    "zh": {"exercise": "练习 {n}", "Exercise": "练习 {n}", "Solution": "参考答案",
           "Solution to": "{name}的参考答案", "the exercise": "本练习",
           "collapsed": "下面的代码单元格默认折叠，展开即可查看代码。",
           "checks": "对正文论断的检查", "double-click": "（双击显示代码）"},
}


def colab_edition(nb: dict, chapter: str, language: str = "en") -> dict:
    """A copy of ``nb`` that reads well without MyST: see the module docstring. With ``language="zh"``
    the notebook's prose must already be translated (scripts/i18n.py translate_notebook); the words this
    function adds are then Chinese too."""
    words = WORDS[language]
    nb = copy.deepcopy(nb)
    nb["cells"] = without_hidden_tests(nb["cells"])
    labels, count = {}, 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for m in EXERCISE.finditer(source(cell)):
                count += 1
                options, _ = split_options(m.group("body"))
                if "label" in options:
                    labels[options["label"]] = words["exercise"].format(n=f"{chapter}.{count}")

    def exercise(m: re.Match) -> str:
        options, body = split_options(m.group("body"))
        name = labels.get(options.get("label", ""), words["exercise"].format(n="").strip())
        if language == "en":
            return f"**{name[0].upper() + name[1:]}.** {body}\n"
        return f"**{name}** {body}\n"

    def text_solution(m: re.Match) -> str:
        _, body = split_options(m.group("body"))
        return f"<details>\n<summary>{words['Solution']}</summary>\n\n{body}\n\n</details>\n"

    cells, in_gated, title = [], False, words["Solution"]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = source(cell)
            if (m := SOLUTION_START.search(text)):
                label = re.search(r"\{solution-start\}[ \t]*([\w-]+)", text)
                title = (words["Solution to"].format(name=labels.get(label.group(1), words["the exercise"]))
                         if label else words["Solution"])
                _, body = split_options(m.group("body"))
                prose = (body + "\n" + SOLUTION_START.sub("", text)).strip()
                text = (f"<details>\n<summary>{title}</summary>\n\n{prose}\n\n</details>\n\n"
                        f"*{title}{'：' if language == 'zh' else ': '}{words['collapsed']}*")
                in_gated = True
            elif SOLUTION_END.search(text):
                in_gated = False
                text = SOLUTION_END.sub("", text).strip()
                if not text:
                    continue
            text = EXERCISE.sub(exercise, text)
            text = re.sub(FENCE + r"\{solution\}[^\n]*\n(?P<body>.*?)\n(?P=fence)[ \t]*(?:\n|$)",
                          text_solution, text, flags=re.S)
            text = _plain_markdown(text, labels)
            if language != "en":  # colab/zh/ is one folder deeper than colab/: the same files
                text = re.sub(r"\]\(\.\./", "](../../", text)
            set_source(cell, text)
        elif cell["cell_type"] == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            hidden = "remove-cell" in tags or "remove-input" in tags
            if in_gated or hidden:
                heading = title if in_gated and not hidden else words["checks"]
                meta = cell.setdefault("metadata", {})
                meta["cellView"] = "form"  # Colab: show the title, hide the code until opened
                meta.setdefault("jupyter", {}).update({"source_hidden": True})
                if in_gated:
                    meta["jupyter"]["outputs_hidden"] = True
                space = " " if language == "en" else ""
                set_source(cell, f"#@title {heading}{space}{words['double-click']}\n" + source(cell))
        cells.append(cell)
    nb["cells"] = cells
    return nb


def chapter_notebooks() -> list[Path]:
    return course.chapters()


def colab_files() -> dict[Path, str]:
    """colab/NAME.ipynb and colab/zh/NAME.ipynb -> their generated text, for every chapter."""
    import i18n  # scripts/i18n.py: the Chinese catalogs

    files = {}
    for p in chapter_notebooks():
        chapter = str(int(p.name[:2]))
        files[COLAB_DIR / p.name] = dump(colab_edition(load(p), chapter))
        files[COLAB_DIR / "zh" / p.name] = dump(colab_edition(i18n.translate_notebook(load(p), p), chapter, "zh"))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="edition", required=True)
    colab = sub.add_parser("colab", help="write colab/*.ipynb from notebooks/")
    colab.add_argument("--check", action="store_true", help="only check colab/ is up to date")
    student = sub.add_parser("student", help="write solution-free copies of every notebook")
    student.add_argument("out", type=Path, help="folder that receives notebooks/ and book/ copies")
    args = parser.parse_args(argv)
    if args.edition == "colab":
        files = colab_files()
        if args.check:
            stale = [str(p.relative_to(COLAB_DIR)) for p, text in files.items()
                     if not p.exists() or p.read_text(encoding="utf-8") != text]
            extra = sorted({p for p in COLAB_DIR.rglob("*.ipynb")} - set(files))
            extra = [str(p.relative_to(COLAB_DIR)) for p in extra]
            if stale or extra:
                print(f"colab/ is stale ({', '.join(stale + extra)}): run "
                      ".venv/bin/python scripts/notebook_editions.py colab", file=sys.stderr)
                return 1
            return 0
        (COLAB_DIR / "zh").mkdir(parents=True, exist_ok=True)
        for p in COLAB_DIR.rglob("*.ipynb"):
            if p not in files:
                p.unlink()
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
        print(f"wrote {len(files)} notebooks to {COLAB_DIR}")
        return 0
    for path in course.notebooks():
        target = args.out / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump(student_edition(load(path))), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
