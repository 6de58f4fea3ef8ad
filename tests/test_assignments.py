"""The graded assignments (scripts/assignment.py, helpers/grading.py): one source, tests that
discriminate, hidden tests that stay hidden, and grading that survives hostile submissions."""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys

import assignment
import course
import notebook_editions
import pytest
import torch
from conftest import ROOT

from helpers import grading

WRONG = {p.stem: json.loads(p.read_text()) for p in (ROOT / "tests" / "assignments" / "wrong").glob("*.json")}
CHAPTERS = course.chapters()
# Chapters whose exercises are not marked up for grading yet (issue 21): the test below fails
# (strict xfail) as soon as one is, so this list can only shrink.
PENDING = set()
# every chapter with a graded question is built and graded below, finished or not
GRADED = [p for p in CHAPTERS if assignment.questions(json.loads(p.read_text(encoding="utf-8")))]
HIDDEN_MARK = "@helpers.grading.hidden_test"


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_at_least_three_automatically_graded_questions(path, request):
    if path.stem in PENDING:
        request.applymarker(pytest.mark.xfail(strict=True, reason="issue 21: not marked up yet"))
    qs = assignment.questions(load(path))
    assert sum(not q["manual"] for q in qs) >= 3, [q["id"] for q in qs]
    assert path.stem in WRONG and set(WRONG[path.stem]) == {q["id"] for q in qs if not q["manual"]}, \
        f"tests/assignments/wrong/{path.stem}.json needs a wrong answer to every graded question"


def test_the_assignment_editions_follow_their_chapters():
    proc = subprocess.run([sys.executable, "scripts/assignment.py", "editions", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.stem)
def test_hidden_tests_are_in_nothing_a_learner_receives(path):
    chapter = load(path)
    hidden = [assignment.source(c) for c in chapter["cells"] if "grade-hidden" in assignment.tags(c)]
    assert hidden and all(HIDDEN_MARK in h for h in hidden)
    received = {
        "student notebook": (ROOT / "assignments" / path.name).read_text(encoding="utf-8"),
        "Colab edition": (ROOT / "colab" / path.name).read_text(encoding="utf-8"),
        "student edition": json.dumps(notebook_editions.student_edition(chapter)),
    }
    for where, text in received.items():
        assert "hidden_test" not in text and "grade-hidden" not in text, f"a hidden test in the {where}"
    for cell in hidden:
        assert "remove-cell" in next(c for c in chapter["cells"] if assignment.source(c) == cell)["metadata"]["tags"]


def test_a_placeholder_never_records_and_public_checks_say_what_is_wrong():
    with pytest.raises(grading.AnswerError, match=r"still `\.\.\.`"):
        grading.record("q-placeholder", x=...)
    with pytest.raises(grading.AnswerError, match=r"expected logits to have shape \(N, 10\), got \(32, 784\)"):
        grading.expect_shape(torch.zeros(32, 784), (None, 10), "logits")
    with pytest.raises(grading.AnswerError, match="a function"):
        grading.record("q-function", f=len)


def test_answers_are_saved_as_data_and_a_forged_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(grading.ANSWERS_ENV, str(tmp_path))
    grading.record("q-data", t=torch.arange(3), n=2.5, nested={"a": [1, (2, 3)]})
    back = grading.load_answer(tmp_path, "q-data")
    assert torch.equal(back["t"], torch.arange(3)) and back["n"] == 2.5 and back["nested"] == {"a": [1, [2, 3]]}

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    torch.save({"t0": Evil()}, tmp_path / "q-data.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        grading.load_answer(tmp_path, "q-data")
    assert not (tmp_path / "pwned").exists()


def test_answers_behind_a_symbolic_link_are_refused(tmp_path, monkeypatch):
    """A submission owns its answers folder: a link to the bundle's reference answers earns nothing."""
    reference, mine = tmp_path / "reference", tmp_path / "work"
    monkeypatch.setenv(grading.ANSWERS_ENV, str(reference))
    grading.record("q-link", x=1)
    mine.mkdir()
    (mine / "answers").symlink_to(reference)
    with pytest.raises(grading.AnswerError, match="symbolic link"):
        grading.load_answer(mine / "answers", "q-link")
    (mine / "files").mkdir()
    for ext in (".json", ".pt"):
        (mine / "files" / f"q-link{ext}").symlink_to(reference / f"q-link{ext}")
    with pytest.raises(grading.AnswerError, match="symbolic link"):
        grading.load_answer(mine / "files", "q-link")
    assert grading.load_answer(reference, "q-link") == {"x": 1}


def test_submission_file_names_map_to_roster_ids():
    roster = {"12345": "Ada", "67890": "Alan"}
    assert assignment.student_of("doe_12345_5555_05_cnn.ipynb", roster) == "12345"
    assert assignment.student_of("Alan Turing_67890_assignsubmission_file_05.ipynb", roster) == "67890"
    assert assignment.student_of("someone_99999.ipynb", roster) is None
    assert assignment.student_of("112345.ipynb", roster) is None  # no id inside a longer number


# ------------------------------------------------------------------ grading, at smoke size


def fill(student: dict, answers: dict[str, str]) -> dict:
    """The student notebook with the work cells of the given questions replaced."""
    nb = copy.deepcopy(student)
    for cell in nb["cells"]:
        g = cell.get("metadata", {}).get("grade", {})
        if g.get("role") == "work" and g.get("question") in answers:
            cell["source"] = answers[g["question"]]
    return nb


def reference_answers(folder) -> dict[str, str]:
    ref = load(folder / "bundle" / "reference_submission.ipynb")
    return {c["metadata"]["grade"]["question"]: assignment.source(c) for c in ref["cells"]
            if c.get("metadata", {}).get("grade", {}).get("role") == "work"}


def grade(folder, notebooks: dict[str, dict], tmp_path, *extra) -> dict[str, dict]:
    subs, out = tmp_path / "submissions", tmp_path / "grades"
    shutil.rmtree(subs, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    subs.mkdir()
    for name, nb in notebooks.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(nb))
    proc = subprocess.run([sys.executable, "scripts/assignment.py", "grade", str(folder), str(subs), "--out",
                           str(out), *extra], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


# the costly cases (a submission per question, nine hostile ones) on two chapters, as issue 21 asks
DEEP = [p for p in GRADED if p.stem in {"01_tensors", "02_autograd"}]


@pytest.fixture(scope="module")
def built(request, tmp_path_factory):
    """scripts/assignment.py build CHAPTER --smoke, once per chapter for this module."""
    out = tmp_path_factory.mktemp("assignments")
    proc = subprocess.run([sys.executable, "scripts/assignment.py", "build", request.param.stem, "--smoke",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = out / request.param.stem
    meta = json.loads((folder / "bundle" / "bundle.json").read_text())
    return folder, meta


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("built", GRADED, ids=lambda p: p.stem, indirect=True)
def test_reference_scores_full_marks_untouched_and_wrong_score_zero(built, tmp_path):
    folder, meta = built
    student = load(folder / "student.ipynb")
    rows = grade(folder, {"reference": load(folder / "bundle" / "reference_submission.ipynb"),
                          "untouched": student,
                          "wrong": fill(student, WRONG[meta["chapter"]])}, tmp_path)
    auto = [q for q in meta["questions"] if not q["manual"]]
    for q in auto:
        assert float(rows["reference"][q["id"]]) == q["points"], (q, rows["reference"])
        assert float(rows["untouched"][q["id"]]) == 0, (q, rows["untouched"])
        assert float(rows["wrong"][q["id"]]) == 0, (q, rows["wrong"])
    assert float(rows["reference"]["total"]) == sum(q["points"] for q in auto)
    feedback = (tmp_path / "grades" / "feedback" / "wrong.md").read_text()
    assert "hidden test:" in feedback and all(f"## {q['id']}: 0 /" in feedback for q in auto)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("built", DEEP, ids=lambda p: p.stem, indirect=True)
def test_each_question_is_graded_on_its_own(built, tmp_path):
    folder, meta = built
    student, right = load(folder / "student.ipynb"), reference_answers(folder)
    auto = [q for q in meta["questions"] if not q["manual"]]
    rows = grade(folder, {q["id"]: fill(student, {q["id"]: right[q["id"]]}) for q in auto}, tmp_path)
    for q in auto:
        row = rows[q["id"]]
        assert {k["id"]: float(row[k["id"]]) for k in auto} == {k["id"]: (k["points"] if k is q else 0)
                                                               for k in auto}, row


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("built", GRADED[:1], ids=lambda p: p.stem, indirect=True)
def test_a_submission_from_another_build_is_refused(built, tmp_path):
    folder, meta = built
    old = load(folder / "bundle" / "reference_submission.ipynb")
    old["metadata"]["course_assignment"]["version"] = "0123456789ab"
    rows = grade(folder, {"old": old}, tmp_path)
    assert rows["old"]["status"].startswith("refused: built from version 0123456789ab") and rows["old"]["total"] == "0"


HOSTILE = {
    # name: (a code cell put after the first question's answer cell; whether the run goes on to the
    # later questions' honest answers, which must then count, or leaves them to the hostile cell,
    # which must then earn nothing)
    "loops": ("while True:\n    pass\n", False),
    "allocates": ("hoard = []\nwhile True:\n    hoard.append(bytearray(10**8))\n", True),
    "prints": ("import os, sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)\n"
               "os.write(1, b'y' * 10**8)\n", True),
    "deletes": ("import pathlib, shutil, helpers\nroot = pathlib.Path(helpers.__file__).parents[1]\n"
                "for p in [root / 'helpers', root / 'notebooks', root / 'scripts', pathlib.Path(BUNDLE)]:\n"
                "    shutil.rmtree(p, ignore_errors=True)\n"
                "(root / 'helpers' / 'grading.py').write_text('')\n", True),
    "absent": ("import a_package_that_is_not_installed\n", True),
    "reads": ("import glob, os, pathlib, shutil, helpers\n"
              "root = pathlib.Path(helpers.__file__).parents[1]\n"
              "found = glob.glob(os.path.join(BUNDLE, 'reference', 'answers', '*'))\n"
              "chapters = glob.glob(str(root / 'notebooks' / '*.ipynb'))\n"
              "print(len(found), len(chapters))\n"
              "for f in found:\n    shutil.copy(f, os.environ['COURSE_ANSWERS_DIR'])\n", False),
    "replaces": ("import helpers\nhelpers.grading.hidden_test = lambda *a, **k: (lambda f: f)\n"
                 "helpers.grading.load_answer = lambda *a, **k: {}\n"
                 "for q in QUESTIONS:\n    helpers.grading.RECORDED[q] = {}\n", False),
    "forges": ("import os, torch\n\nclass Evil:\n    def __reduce__(self):\n"
               "        return (os.system, ('echo pwned > /tmp/pwned-by-a-submission',))\n\n"
               "folder = os.environ['COURSE_ANSWERS_DIR']\nos.makedirs(folder, exist_ok=True)\n"
               "for q in QUESTIONS:\n    torch.save({'t0': Evil()}, os.path.join(folder, q + '.pt'))\n"
               "    with open(os.path.join(folder, q + '.json'), 'w') as f:\n"
               "        f.write('{\"__dict__\": {\"x\": {\"__tensor__\": \"t0\"}}}')\n", False),
}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("built", DEEP, ids=lambda p: p.stem, indirect=True)
def test_hostile_submissions_get_what_their_honest_work_earned(built, tmp_path):
    """One question answered right, then something hostile: the points honest work earned and no
    more; the rest of the class (an honest reference) still gets full marks; the course is intact."""
    folder, meta = built
    student, right = load(folder / "student.ipynb"), reference_answers(folder)
    auto = [q for q in meta["questions"] if not q["manual"]]
    first, later = auto[0], [q["id"] for q in auto[1:]]
    before = {p: p.read_bytes() for p in (ROOT / "helpers").glob("*.py")}
    submissions = {"honest": load(folder / "bundle" / "reference_submission.ipynb")}
    for name, (code, goes_on) in HOSTILE.items():
        nb = fill(student, {first["id"]: right[first["id"]], **({q: right[q] for q in later} if goes_on else {})})
        at = max(i for i, c in enumerate(nb["cells"])
                 if c.get("metadata", {}).get("grade", {}) == {"question": first["id"], "role": "answer"})
        prelude = f"QUESTIONS = {later!r}\nBUNDLE = {str(folder / 'bundle')!r}\n"
        nb["cells"].insert(at + 1, {"cell_type": "code", "execution_count": None, "id": f"hostile-{name}",
                                    "metadata": {}, "outputs": [], "source": prelude + code})
        submissions[name] = nb
    rows = grade(folder, submissions, tmp_path, "--timeout", "60", "--memory-gb", "4")
    points = {q["id"]: q["points"] for q in auto}
    assert float(rows["honest"]["total"]) == sum(points.values()), rows["honest"]
    for name, (_, goes_on) in HOSTILE.items():
        row = rows[name]
        assert float(row[first["id"]]) == first["points"], (name, row)
        assert all(float(row[q]) == (points[q] if goes_on else 0) for q in later), (name, row)
    assert {p: p.read_bytes() for p in (ROOT / "helpers").glob("*.py")} == before
    assert (ROOT / "notebooks").is_dir() and (folder / "bundle" / "bundle.json").is_file()
    assert not os.path.exists("/tmp/pwned-by-a-submission")
    assert "time limit" in (tmp_path / "grades" / "feedback" / "loops.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_sandbox_has_no_network_a_private_loopback_and_only_its_scratch_writable(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the grader's sandbox needs root (Linux namespaces): run the tests as root, as CI does")
    cells = [
        "x = 1",  # the parameters cell
        "import socket\nsocket.create_connection(('pypi.org', 443), timeout=5)",
        "import socket\nserver = socket.socket()\nserver.bind(('127.0.0.1', 0))\nserver.listen()\n"
        "socket.create_connection(server.getsockname(), timeout=5)\nprint('loopback works')",
        f"open({str(ROOT / 'helpers' / 'sandbox-was-here')!r}, 'w')",
        "open('/tmp/mine', 'w').write('ok')\nopen('mine', 'w').write('ok')",
        f"import os\nprint(os.listdir({str(ROOT / 'notebooks')!r}), os.getuid())",
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]} if i == 0 else {}, "source": c}
                    for i, c in enumerate(cells)], "metadata": {}}
    (tmp_path / "probe.ipynb").write_text(json.dumps(nb))
    run = assignment.execute(tmp_path / "probe.ipynb", {"x": 2}, tmp_path / "work", timeout=120, memory_gb=4,
                             sandbox=True, hide=assignment.hidden_paths(tmp_path / "none", []))
    errors = {e["cell"]: e["error"] for e in run["log"]}
    assert run["status"] == "ok", run
    assert 1 in errors and ("unreachable" in errors[1] or "resolution" in errors[1] or "gaierror" in errors[1]), errors
    assert 2 not in errors and 4 not in errors and 5 not in errors, errors
    assert "PermissionError" in errors[3] or "Read-only" in errors[3], errors
    output = (tmp_path / "work" / "output.txt").read_text()
    assert "loopback works" in output and "[] 65534" in output, output
    assert not (ROOT / "helpers" / "sandbox-was-here").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_variant_build_has_its_own_version_and_answers(tmp_path):
    """`build --seed`: another version (a default-build notebook is refused), a reference that passes
    the variant's own hidden tests (build checks it), and last term's answers (the default build's)
    that fail them wherever the answer comes from training. Questions on fixed probe inputs (the same
    for everyone: a function's outputs) do not depend on the seed; book/instructors.md says so."""
    chapter = "04_mlp"
    metas, answers = {}, {}
    for name, extra in (("default", []), ("variant", ["--seed", "3"])):
        proc = subprocess.run([sys.executable, "scripts/assignment.py", "build", chapter, "--smoke", *extra,
                               "--out", str(tmp_path / name)], cwd=ROOT, capture_output=True, text=True,
                              timeout=800)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        bundle = tmp_path / name / chapter / "bundle"
        metas[name], answers[name] = json.loads((bundle / "bundle.json").read_text()), bundle / "reference" / "answers"
    assert metas["variant"]["params"]["seed"] == 3 and metas["variant"]["version"] != metas["default"]["version"]
    result = tmp_path / "result.json"
    variant = tmp_path / "variant" / chapter / "bundle"
    proc = subprocess.run([sys.executable, "scripts/assignment.py", "_test", str(variant), str(answers["default"]),
                           str(result)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    passed = {q: r["passed"] for q, r in json.loads(result.read_text()).items()}
    assert not any(passed.values()), f"the default build's answers pass the variant's tests: {passed}"
