"""Instructors' tools: running chosen chapters with parameters, and the student edition of the site."""
from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import course
import pytest
from conftest import ROOT

BIN = Path(sys.executable).parent
_spec = importlib.util.spec_from_file_location("notebook_editions", ROOT / "scripts" / "notebook_editions.py")
editions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(editions)
NOTEBOOKS = course.chapters()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_chapters.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_run_chapters_passes_each_chapter_only_its_own_parameters(tmp_path):
    proc = run_cli("02", "--param", "steps=20", "--param", "epochs=3", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[1/1] 02_autograd (steps=20) ..." in proc.stdout and "1 of 1 chapters ran" in proc.stdout
    cells = json.loads((tmp_path / "02_autograd.ipynb").read_text())["cells"]
    injected = "".join(next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))["source"])
    assert "steps = 20" in injected and "epochs" not in injected


def test_run_chapters_rejects_unknown_chapters_and_bad_parameters():
    proc = run_cli("99")
    assert proc.returncode != 0 and "no chapter matches '99'" in proc.stderr
    proc = run_cli("01", "--param", "epochs")
    assert proc.returncode != 0 and "--param wants name=value" in proc.stderr


def test_run_chapters_dry_run_plans_every_chapter():
    proc = run_cli("all", "--param", "dataset=full", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("...") == len(NOTEBOOKS)
    assert "01_tensors (dataset='full')" in proc.stdout


def split_solutions(path: Path) -> tuple[list[str], list[str]]:
    """(solution texts, everything else: sources and outputs) of one notebook; a solution is a
    `{solution}` block, or a gated solution's cells (their code and outputs included)."""
    solutions, rest = [], []
    cells = json.loads(path.read_text())["cells"]
    inside = set(editions.solution_cells(cells))
    for i, c in enumerate(cells):
        if "grade-hidden" in c["metadata"].get("tags", []):
            continue  # a graded assignment's hidden test: on no site (tests/test_book.py)
        text = "".join(c["source"])
        # text outputs only: an image's base64 holds random "words" no page shows as text
        outputs = ["".join(o.get("text", "")) + json.dumps({k: v for k, v in o.get("data", {}).items()
                                                          if k.startswith("text/")})
                   for o in c.get("outputs", [])]
        if i in inside and not (c["cell_type"] == "markdown" and "{solution}" in text):
            solutions += [text] + outputs
        elif c["cell_type"] == "markdown" and "{solution}" in text:
            parts = re.split(r"(`{3,}\{solution\}.*?\n`{4}|```\{solution\}.*?\n```)", text, flags=re.S)
            solutions += [p for p in parts if "{solution}" in p]
            rest += [p for p in parts if "{solution}" not in p]
        else:
            rest += [text] + outputs
    # directive syntax (```{solution} label, :class: dropdown) is not solution text
    return [re.sub(r"^(`{3,}.*|:\w+:.*)$", "", t, flags=re.M) for t in solutions], rest


def words(texts: list[str]) -> set[str]:
    return set(re.findall(r"[A-Za-z_]{6,}", " ".join(texts)))


def solution_only_words() -> dict[str, str]:
    """Words (6+ letters) that appear in some solution and nowhere else in the book -> the notebook."""
    everything_else = words([p.read_text() for p in (ROOT / "book").glob("*.md")])
    # the graded assignments' student notebooks are handed out by design (their stubs and check
    # cells come from solutions); tests/test_assignments.py proves they give no answer away
    everything_else |= words([p.read_text() for p in (ROOT / "assignments").glob("*.ipynb")])
    per_notebook = {}
    for path in course.notebooks():
        solutions, rest = split_solutions(path)
        everything_else |= words(rest)
        per_notebook[path.name] = words(solutions)
    return {w: name for name, ws in per_notebook.items() for w in ws - everything_else}


def site_text(html_dir: Path) -> str:
    parts = []
    for f in html_dir.rglob("*"):
        # searchindex.js holds stemmed words ("stretched" -> "stretch"), so word checks on it mislead
        if f.suffix in (".html", ".txt", ".ipynb", ".md") and "_static" not in f.parts:
            parts.append(html.unescape(re.sub(r"<[^>]+>", " ", f.read_text(errors="ignore"))))
    return " ".join(parts)


@pytest.fixture(scope="module")
def student_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "build-student-site.sh"), str(out)], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "JUPYTER_BOOK": str(BIN / "jupyter-book"), "PYTHON_BIN": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "_build" / "html"


def test_student_edition_has_no_solution_text(site, student_site):
    full, student = words([site_text(site)]), words([site_text(student_site)])
    unique = solution_only_words()
    assert len(set(unique.values())) == len(NOTEBOOKS), "every chapter's solutions should have words of their own"
    for word, name in unique.items():
        assert word in full, f"{word} ({name}) should be on the full site"
        assert word not in student, f"solution text {word!r} of {name} leaked into the student edition"
    assert 'class="solution' not in (student_site / "notebooks" / "01_tensors.html").read_text()
    assert 'class="exercise' in (student_site / "notebooks" / "01_tensors.html").read_text()


def test_student_edition_offers_no_way_back_to_the_solutions(student_site):
    page = (student_site / "notebooks" / "01_tensors.html").read_text()
    assert "colab.research.google.com" not in page and "mybinder.org" not in page
    assert not (student_site / "_sources").exists()


def test_student_edition_offers_each_chapters_assignment_next_to_it(student_site):
    graded = sorted((ROOT / "assignments").glob("*.ipynb"))
    assert graded
    for notebook in graded:
        page = (student_site / "notebooks" / f"{notebook.stem}.html").read_text()
        assert f"_downloads/assignments/{notebook.name}" in page, notebook.name
        assert (student_site / "_downloads" / "assignments" / notebook.name).read_bytes() == notebook.read_bytes()


def documented_commands() -> list[str]:
    page = (ROOT / "book" / "instructors.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", page, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.startswith(".venv/bin/") and ("run_chapters.py" in line or "papermill" in line)]


def test_the_commands_on_the_instructors_page_work(tmp_path):
    commands = documented_commands()
    assert len(commands) >= 3
    for command in commands:
        command = command.replace(".venv/bin/", f"{BIN}/").replace("runs/", f"{tmp_path}/")
        if "dataset=full" in command:
            command += " --dry-run"  # the full run downloads MNIST; check it parses and plans every chapter
        proc = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "quick" / "02_autograd.ipynb").exists() and (tmp_path / "02_autograd_lr.ipynb").exists()
