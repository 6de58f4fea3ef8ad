"""The assignment builder's markup rules, without running a chapter: what a work cell becomes in the
student notebook, and what the version stamp does and does not depend on."""
from __future__ import annotations

import copy
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
