"""The Colab edition (colab/) and the student edition, generated from the notebooks by
scripts/notebook_editions.py: legible without MyST, solutions collapsed, or no solutions at all."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT
from nbconvert.filters.markdown_mistune import markdown2html_mistune

spec = importlib.util.spec_from_file_location("notebook_editions", ROOT / "scripts" / "notebook_editions.py")
editions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(editions)
CHAPTERS = editions.chapter_notebooks()
RAW_MYST = re.compile(r":label:|:class:|```\{|:::\{|\{solution|\{exercise|\{ref\}|\{doc\}")


def md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text: str, **metadata) -> dict:
    return {"cell_type": "code", "metadata": metadata, "source": text, "outputs": [], "execution_count": 1}


SAMPLE = {"cells": [
    md("# 9. Sample\n(sample-target)=\n## A section"),
    md("```{exercise}\n:label: sample-ex-a\nCompute $x^2$ for {ref}`sample-ex-b`.\n```\n\n"
       "````{solution} sample-ex-a\n:class: dropdown\nIt is **four**.\n````"),
    md("```{exercise}\n:label: sample-ex-b\nPrint it.\n```"),
    md("```{solution-start} sample-ex-b\n:class: dropdown\n```\nRun this:"),
    code("print(2 ** 2)", jupyter={"source_hidden": True, "outputs_hidden": True}),
    code("assert True", tags=["remove-cell"]),
    md("```{solution-end}\n```"),
    code("print('after')"),
], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_colab_edition_of_a_sample_reads_well_without_myst():
    nb = editions.colab_edition(SAMPLE, "9")
    text = "\n".join(editions.source(c) for c in nb["cells"])
    assert not RAW_MYST.search(text), RAW_MYST.search(text)
    assert "**Exercise 9.1.** Compute $x^2$ for exercise 9.2." in text
    assert "<details>\n<summary>Solution</summary>\n\nIt is **four**." in text
    assert "<summary>Solution to exercise 9.2</summary>" in text and '<a id="sample-target"></a>' in text
    solution_code = nb["cells"][4]
    assert solution_code["metadata"]["cellView"] == "form"
    assert solution_code["metadata"]["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    assert editions.source(solution_code).startswith("#@title Solution to exercise 9.2")
    assert editions.source(nb["cells"][-1]) == "print('after')", "cells after a solution stay as they are"


def test_student_edition_of_a_sample_has_no_solution():
    nb = editions.student_edition(SAMPLE)
    text = "\n".join(editions.source(c) for c in nb["cells"])
    assert "four" not in text and "2 ** 2" not in text and "solution" not in text
    assert text.count("{exercise}") == 2 and "print('after')" in text


def test_a_solution_start_without_its_end_is_refused():
    broken = {**SAMPLE, "cells": SAMPLE["cells"][:5]}
    with pytest.raises(ValueError, match="without its solution-end"):
        editions.solution_cells(broken["cells"])


def test_the_colab_edition_is_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "notebook_editions.py"), "colab", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("edition", ["", "zh"])
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_colab_notebook_renders_with_plain_jupyter_markdown(path, edition):
    """nbconvert's own Markdown renderer (what plain Jupyter shows) finds no directive syntax, and every
    solution is collapsed: text in <details>, executed code in Colab's form view. The same for the
    Chinese edition (colab/zh/)."""
    colab = ROOT / "colab" / edition / path.name
    nb = nbformat.reads(colab.read_text(encoding="utf-8"), as_version=4)
    html = [markdown2html_mistune(c.source) for c in nb.cells if c.cell_type == "markdown"]
    body = "\n".join(html)
    rendered = re.sub(r"<[^>]+>", " ", body)
    assert rendered.strip(), "no rendered markdown found"
    assert not RAW_MYST.search(rendered), f"raw MyST in the rendered notebook: {RAW_MYST.search(rendered).group()}"
    source = json.loads(path.read_text(encoding="utf-8"))
    exercises = sum(editions.source(c).count("{exercise}") for c in source["cells"] if c["cell_type"] == "markdown")
    assert body.count("<details>") >= exercises, "every solution is collapsed in a <details> block"
    gated = [c for c in nb.cells if c.cell_type == "code"
             and ("#@title Solution" in c.source or re.match(r"#@title 练习 \S+的参考答案", c.source))]
    assert gated or not any("{solution-start}" in editions.source(c) for c in source["cells"])
    assert all(c.metadata.get("cellView") == "form" and c.metadata["jupyter"]["source_hidden"] for c in gated)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_edition_of_every_chapter_keeps_the_exercises_and_drops_every_solution(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    student = editions.student_edition(nb)
    assert editions.solution_cells(student["cells"]) == []
    text = "\n".join(editions.source(c) for c in student["cells"])
    assert "{solution" not in text
    assert text.count("{exercise}") == sum(editions.source(c).count("{exercise}") for c in nb["cells"]
                                           if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", sorted((ROOT / "assignments").glob("*.ipynb")), ids=lambda p: p.stem)
def test_assignment_notebooks_read_well_without_myst(path):
    """A learner may open the assignment in Colab, which renders no MyST: plain Markdown, as colab/."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    raw = [m.group() for c in nb["cells"] if c["cell_type"] == "markdown"
           for m in [RAW_MYST.search("".join(c["source"]))] if m]
    assert not raw, f"{path.name}: raw MyST {raw[:3]}"
