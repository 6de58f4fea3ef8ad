"""The assignment builder's markup rules, without running a chapter: what a work cell becomes in the
student notebook, and what the version stamp does and does not depend on."""
from __future__ import annotations

import copy
import csv
import json

import assignment
import pytest
from conftest import ROOT


def test_solution_lines_and_blocks_become_placeholders():
    work = ("x = torch.zeros(3)  # SOLUTION\n"
            "    y: int = 2  # SOLUTION\n"
            "a = b = f(1)  # SOLUTION\n"
            "d['k'] = 3  # SOLUTION\n"
            "keep = 1\n"
            "# BEGIN SOLUTION\nz = secret(1)\n# END SOLUTION")
    assert assignment.strip_solution(work).splitlines() == [
        "x = ...  # your answer", "    y: int = ...  # your answer", "a = b = ...  # your answer",
        "d['k'] = ...  # your answer", "keep = 1", "...  # your code here"]
    assert "secret" not in assignment.strip_solution(work)
    assert "SOLUTION" not in assignment.unmark(work) and "secret(1)" in assignment.unmark(work)


@pytest.mark.parametrize("line", ["x += 1  # SOLUTION", "    return y  # SOLUTION",
                                  "x = f(  # SOLUTION", "print(answer)  # SOLUTION"])
def test_a_solution_mark_on_anything_but_one_assignment_is_refused(line):
    """`x += 1` would become `x + = ...` and `return y` would be handed out whole."""
    with pytest.raises(assignment.AssignmentError, match="not one complete assignment"):
        assignment.strip_solution(line)


@pytest.mark.parametrize("line", ["x = 16 * 7 * 7  # SOLUTION: 784", "x = 1  # SOLUTION here",
                                  "# BEGIN SOLUTION (the loop)"])
def test_a_solution_mark_not_in_its_exact_form_is_refused(line):
    """Not recognised, it would hand the answer out whole."""
    with pytest.raises(assignment.AssignmentError, match="not exactly '# SOLUTION'"):
        assignment.strip_solution(line)


def test_a_parenthesised_value_is_cut_at_its_equals_sign():
    assert assignment.strip_solution("x = (a + b)  # SOLUTION") == "x = ...  # your answer"
    assert assignment.strip_solution("d['k='] = (2)  # SOLUTION") == "d['k='] = ...  # your answer"


def test_unbalanced_solution_blocks_are_refused():
    with pytest.raises(assignment.AssignmentError, match="without its END"):
        assignment.strip_solution("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(assignment.AssignmentError, match="without its BEGIN"):
        assignment.strip_solution("x = 1\n# END SOLUTION")


def chapter_one():
    nb = json.loads((ROOT / "notebooks" / "01_tensors.ipynb").read_text(encoding="utf-8"))
    return nb, assignment.questions(nb), assignment.parameters(nb)


def test_the_version_follows_what_the_learner_gets_and_nothing_else():
    nb, qs, params = chapter_one()
    v = assignment.version(nb, qs, "01_tensors", params)
    rerun = copy.deepcopy(nb)  # the chapter re-executed: other outputs, other counts
    for c in rerun["cells"]:
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], 7
    assert assignment.version(rerun, qs, "01_tensors", params) == v
    hidden = copy.deepcopy(nb)  # a corrected hidden test: the handed-out notebooks stay gradable
    k = qs[0]["hidden"][0]
    hidden["cells"][k]["source"] = assignment.source(hidden["cells"][k]) + "\n# tolerance widened"
    assert assignment.version(hidden, qs, "01_tensors", params) == v
    work = copy.deepcopy(nb)  # another exercise: another version
    k = qs[0]["work"][0]
    work["cells"][k]["source"] = assignment.source(work["cells"][k]) + "\nextra = 1"
    assert assignment.version(work, qs, "01_tensors", params) != v
    assert assignment.version(nb, qs, "01_tensors", {**params, "seed": 7}) != v


def test_grading_finds_every_learners_file_and_reports_doubles(tmp_path, capsys):
    """Submissions as platforms export them: flat files, one folder per learner, `.IPYNB`;
    checkpoints skipped; a learner with two files gets two rows and two feedback files, reported.
    (Notebooks of another version: refused before any runs, so nothing executes here.)"""
    folder = tmp_path / "built" / "01_tensors"
    (folder / "bundle").mkdir(parents=True)
    (folder / "bundle" / "bundle.json").write_text(json.dumps({
        "chapter": "01_tensors", "version": "aaaaaaaaaaaa", "params": {},
        "questions": [{"id": "q", "points": 1, "manual": False}], "tests": {}}))
    other = json.dumps({"cells": [], "metadata": {"course_assignment": {"version": "bbbbbbbbbbbb"}}})
    subs = tmp_path / "subs"
    for name in ["doe_111_01_tensors.ipynb", "Roe Ann_222_assignsubmission_file/01_tensors.IPYNB",
                 "Roe Ann_222_assignsubmission_file/01_tensors_again.ipynb", "stranger_01_tensors.ipynb",
                 "doe_111_01_tensors.txt", ".ipynb_checkpoints/doe_111_01_tensors-checkpoint.ipynb"]:
        (subs / name).parent.mkdir(parents=True, exist_ok=True)
        (subs / name).write_text(other)
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\n111,Jo Doe\n222,Ann Roe\n")
    out = tmp_path / "grades"
    assignment.grade(folder, subs, out, roster_path=roster, timeout=10, memory_gb=1, sandbox=False)
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["student"], r["file"]) for r in rows] == [
        ("222", "Roe Ann_222_assignsubmission_file/01_tensors.IPYNB"),
        ("222", "Roe Ann_222_assignsubmission_file/01_tensors_again.ipynb"),
        ("111", "doe_111_01_tensors.ipynb")]
    assert all(r["status"].startswith("refused: built from version bbbbbbbbbbbb") for r in rows)
    assert sorted(p.name for p in (out / "feedback").iterdir()) == ["111.md", "222-2.md", "222.md"]
    assert [r["feedback"] for r in rows] == ["feedback/222.md", "feedback/222-2.md", "feedback/111.md"]
    assert [r["several_files"] for r in rows] == ["1 of 2", "2 of 2", ""]
    assert (out / "unmapped.txt").read_text().split("\n")[0] == "stranger_01_tensors.ipynb"
    assert "222: Roe Ann_222" in (out / "several_files.txt").read_text()
    assert "1 learner(s) handed in several files" in capsys.readouterr().out


def test_the_platforms_folder_names_the_learner_and_a_path_with_two_ids_is_not_guessed():
    roster = {"111": "", "222": ""}
    assert assignment.student_of("doe/05_cnn.ipynb", {}) == "doe"
    assert assignment.student_of("doe_05_cnn.ipynb", {}) == "doe_05_cnn"
    assert assignment.student_of("x_1234_05.ipynb", {"123": ""}) is None
    # the folder is the platform's; a file name the learner chose cannot move the file to another row
    assert assignment.student_of("Roe Ann_222_assignsubmission_file/doe_111_05_cnn.ipynb", roster) == "222"
    assert assignment.student_of("doe_111_and_222_05_cnn.ipynb", roster) is None
    assert assignment.safe_name("../Roe Ann") == "Roe_Ann" and assignment.safe_name("Zoë") == "Zoë"


def test_two_learners_whose_names_differ_only_in_spaces_keep_their_own_feedback(tmp_path):
    folder = tmp_path / "built" / "01_tensors"
    (folder / "bundle").mkdir(parents=True)
    (folder / "bundle" / "bundle.json").write_text(json.dumps({
        "chapter": "01_tensors", "version": "aaaaaaaaaaaa", "params": {},
        "questions": [{"id": "q", "points": 1, "manual": False}], "tests": {}}))
    subs = tmp_path / "subs"
    for learner in ("Doe John", "Doe_John", "doe john"):
        (subs / learner).mkdir(parents=True)
        (subs / learner / "01_tensors.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    out = tmp_path / "grades"
    assignment.grade(folder, subs, out, roster_path=None, timeout=10, memory_gb=1, sandbox=False)
    names = sorted(p.name for p in (out / "feedback").iterdir())
    assert names == ["Doe_John-2.md", "Doe_John.md", "doe_john-3.md"], names  # unique, even ignoring case
