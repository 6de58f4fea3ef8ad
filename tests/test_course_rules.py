"""Course-wide rules, checked over every notebook (issue 19): the test split never chooses; hidden checks say
what they guard; stated learner times are computed; stored outputs come from a quiet run; sections run in
order, and are referred to through labels.

A notebook that still breaks a rule is listed in KNOWN with what is left to do. Its test is a strict xfail: it
must keep failing, and the day the chapter is fixed it passes, the xfail turns into a failure, and the entry
has to go. No new notebook can join a list silently.
"""
from __future__ import annotations

import ast
import json
import re
from datetime import datetime
from pathlib import Path

import course
import learner_time
import pytest
from conftest import ROOT
from test_notebooks import cells
from test_notebooks import source as src

NOTEBOOKS = course.notebooks()
FIX = "issue 19/20: to be fixed with the chapter's corrections this round"
KNOWN = {
    "test_split_never_chooses": {},
    "hidden_checks_have_messages": {},
    "hidden_checks_quote_their_claim": {},
    "sections_run_in_order": {},
    "sections_referenced_through_labels": {},
}


def code_tree(cell: dict) -> ast.Module:
    lines = src(cell).splitlines(keepends=True)
    return ast.parse("".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!"))))  # no magics


def known(rule: str):
    """Parametrize over every notebook; the ones in KNOWN[rule] are strict xfails with their reason."""
    return pytest.mark.parametrize("path", [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN[rule][p.stem])) if p.stem in KNOWN[rule]
        else p for p in NOTEBOOKS], ids=lambda p: p.stem)


# ---- 1. The test split never chooses ---------------------------------------------------------------------------

def loaders_given_for_validation(path: Path) -> list[str]:
    """The loader expressions passed as `fit`'s validation loader (third positional or val_loader=) that name
    a test split."""
    found = []
    for cell in (c for c in cells(path) if c["cell_type"] == "code"):
        for node in ast.walk(code_tree(cell)):
            if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "fit":
                given = {k.arg: k.value for k in node.keywords}.get("val_loader")
                given = given if given is not None else (node.args[2] if len(node.args) > 2 else None)
                if given is not None and re.search(r"test", ast.unparse(given), re.I):
                    found.append(ast.unparse(node)[:120])
    return found


def test_the_static_check_finds_a_test_loader_given_to_fit(tmp_path):
    nb = tmp_path / "nb.ipynb"
    bad = "history = helpers.fit(model, train_loader, test_loader, loss_fn, optimizer, epochs=3)"
    ok = "history = helpers.fit(model, train_loader, val_loader, loss_fn, optimizer, epochs=3)"
    kw = "h = fit(model, train_loader, val_loader=noisy_test_loader, loss_fn=f, optimizer=o)"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": s, "metadata": {}} for s in (bad, ok, kw)]}))
    assert len(loaders_given_for_validation(nb)) == 2


@known("test_split_never_chooses")
def test_split_never_chooses(path):
    """No `fit` gets a test loader as its validation loader (it would pick epochs, early stopping, the best model
    by test accuracy). Use a validation split (chapter 3's tools; chapter 4's 3,200/800 split is the model)."""
    wrong = loaders_given_for_validation(path)
    assert not wrong, f"{path.name}: fit(...) validates on a test loader:\n" + "\n".join(wrong)


# ---- 2. A hidden check says which claim it guards ---------------------------------------------------------------

@known("hidden_checks_have_messages")
def test_hidden_checks_have_messages(path):
    """Every assert of a hidden (remove-cell) cell carries a message naming the claim it guards: a bare
    AssertionError in an instructor's papermill run says nothing."""
    bare = [ast.unparse(n)[:100] for c in cells(path) if c["cell_type"] == "code"
            and "remove-cell" in c["metadata"].get("tags", []) for n in ast.walk(code_tree(c))
            if isinstance(n, ast.Assert) and n.msg is None]
    assert not bare, f"{path.name}: {len(bare)} hidden asserts without a message, e.g. {bare[:3]}"


# A message names its claim by quoting it: `claim`, optionally a place in parentheses, then the words of the prose
# in single quotes ("claim (the VAE section) 'about 163 here' failed: ..."); a check that guards no sentence (a
# stored constant against its data file) starts "consistency: ". An apostrophe inside a word does not end a quote.
QUOTE = re.compile(r"\bclaim(?: \([^)]*\))? '(?P<quote>(?:[^']|(?<=\w)'(?=\w)){3,}?)'(?!\w)")
LOOSE_SHARE = 0.6   # of a quote's words of 4+ characters that must occur in the prose, when the quote is not verbatim


def message_text(node: ast.expr) -> str | None:
    """The text of an assert's message, "{}" for each formatted value; None if it is not a string literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = message_text(node.left), message_text(node.right)
        return None if left is None or right is None else left + right
    return None


def claim_quote(message: str) -> str | None:
    """The quoted words of a message that follows the form, "" for a consistency check, None otherwise."""
    if message.startswith("consistency: "):
        return ""
    found = QUOTE.search(message)
    return found["quote"] if found else None


def words(text: str) -> list[str]:
    """Lower-case words and numbers, markdown and LaTeX markup dropped (`\\times` reads as x, `\\to` as nothing)."""
    text = re.sub(r"\\(?:times|cdot)(?![a-zA-Z])|×", " x ", text)
    text = re.sub(r"\\to(?![a-zA-Z])|→", " ", text)
    return re.findall(r"[a-z0-9]+", text.lower())


def stem(word: str) -> str:
    """A crude stem, so that a quote's "rounds" finds the prose's "rounded"."""
    for end in ("ing", "ed", "es", "s"):
        if word.endswith(end) and len(word) - len(end) >= 3:
            word = word[:-len(end)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def prose_words(path: Path) -> list[str]:
    """The words a quote may come from: the markdown cells and the visible code cells (comments, printed text)."""
    return words("\n".join(src(c) for c in cells(path) if c["cell_type"] == "markdown"
                           or (c["cell_type"] == "code" and "remove-cell" not in c["metadata"].get("tags", []))))


def quote_found(quote: str, prose: list[str]) -> str | None:
    """"strict" when every fragment of the quote (split at "...") is a run of the prose's words, "loose" when at
    least LOOSE_SHARE of its words of 4+ characters (stemmed) occur in the prose, None otherwise."""
    fragments = [f for f in (words(part) for part in re.split(r"\.\.\.|…|\{\}", quote)) if f]
    if all(any(prose[i:i + len(f)] == f for i in range(len(prose) - len(f) + 1)) for f in fragments):
        return "strict"
    known = {stem(w) for w in prose}
    long = [stem(w) for f in fragments for w in f if len(w) >= 4 and re.search("[a-z]", w)]
    if long:
        return "loose" if sum(w in known for w in long) >= LOOSE_SHARE * len(long) else None
    return "loose" if {stem(w) for f in fragments for w in f} <= known else None   # numbers and short words only


def hidden_check_messages(path: Path) -> list[tuple[int, str | None, str]]:
    """(cell index, message text or None, message code) of each assert with a message in a hidden check cell
    (remove-cell; grade-hidden cells test a learner's answer, not the prose)."""
    return [(i, message_text(n.msg), ast.unparse(n.msg)) for i, c in enumerate(cells(path))
            if c["cell_type"] == "code" and "remove-cell" in c["metadata"].get("tags", [])
            and "grade-hidden" not in c["metadata"]["tags"]
            for n in ast.walk(code_tree(c)) if isinstance(n, ast.Assert) and n.msg is not None]


def unquoted_claims(path: Path) -> list[str]:
    """The hidden checks whose message does not quote a claim, or quotes words the notebook does not say."""
    prose, wrong = prose_words(path), []
    for i, text, code in hidden_check_messages(path):
        quote = None if text is None else claim_quote(text)
        if quote is None:
            wrong.append(f"cell {i}: no claim 'quoted words' (or consistency: ...): {code[:100]}")
        elif quote and quote_found(quote, prose) is None:
            wrong.append(f"cell {i}: the prose does not say {quote[:80]!r}")
    return wrong


def test_the_quote_rule_finds_what_it_should(tmp_path):
    assert claim_quote("claim: parameter count") is None
    assert claim_quote(message_text(ast.parse('f"claim \'about 0.8 million\' failed: {n}"').body[0].value)) \
        == "about 0.8 million"
    assert claim_quote("claim (the VAE section) 'float32's 8 bits' failed") == "float32's 8 bits"
    assert claim_quote("consistency: OPEN_LOOP differs from the file") == ""
    prose = words("The model has about **0.8 million** parameters, $16\\times 16$ of them rounded.")
    assert quote_found("about 0.8 million", prose) == "strict"
    assert quote_found("has about ... 16 x 16", prose) == "strict"
    assert quote_found("about 0.8 million parameters, rounds", prose) == "loose"
    assert quote_found("a sentence nobody wrote", prose) is None
    nb = tmp_path / "nb.ipynb"
    hidden = {"remove-cell"}
    sources = [("markdown", set(), "The model has about 0.8 million parameters."),
               ("code", hidden, 'assert n == 800_000, "claim: parameter count"'),
               ("code", hidden, 'assert n == 800_000, f"claim \'about 0.8 million\' failed: {n}"'),
               ("code", hidden, 'assert n == 800_000, f"claim \'a billion parameters\' failed: {n}"'),
               ("code", hidden, 'msg = "claim \'about 0.8 million\'"\nassert n == 800_000, msg'),
               ("code", hidden | {"grade-hidden"}, 'assert n == 800_000, "wrong count"')]
    nb.write_text(json.dumps({"cells": [{"cell_type": t, "source": s, "metadata": {"tags": sorted(g)}}
                                        for t, g, s in sources]}))
    assert [w.split(":")[0] for w in unquoted_claims(nb)] == ["cell 1", "cell 3", "cell 4"]


@known("hidden_checks_quote_their_claim")
def test_hidden_checks_quote_their_claim(path):
    """Issue 19's rule 3: a hidden check is as tight as its sentence, and its message quotes that sentence:
    `f"claim 'about 0.8 million' failed: {n}"`, with words the notebook's prose says (verbatim, or at least
    LOOSE_SHARE of the longer words); a check of a stored constant against its data file says "consistency: "."""
    wrong = unquoted_claims(path)
    assert not wrong, f"{path.name}: {len(wrong)} hidden checks do not quote their claim:\n" + "\n".join(wrong[:10])


# ---- 2b. A win comes with its error bar ------------------------------------------------------------------------

CLAIM = re.compile(r"\b(?:beats?|beating|edges? out|outperforms?|wins?|won|ahead of|loses to|better than|worse than"
                   r"|lower than|higher than)\b", re.I)
ERROR_BAR = re.compile(r"±|McNemar|\bp\s*[<=>]|seeds|standard (?:error|deviation)|about the same|(?:inside|within) the "
                       r"noise|s\.e\.|error bar|one seed|one run|paired", re.I)
# sentences that use the words without comparing two models or settings, each with its reason
NOT_A_COMPARISON = {
    ("03_data", "`prefetch_factor`"): "batches prepared ahead",
    ("03_data", "Workers pay a start-up"): "a timing, and timings are reported, not compared by tests",
    ("03_data", "An item can come out"): "a position in a stream",
    ("04_mlp", "The MLP's error on new points"): "a floor no model can pass",
    ("06_rnn", "**Baselines first.**"): "a principle",
    ("06_rnn", "The GRU turns with the cycle"): "a year's peak against the record",
    ("07_autoencoder", "Twos, threes"): "the geometry of a projection",
    ("07_autoencoder", "A denoising autoencoder is trained"): "the summary of 7.5, whose printed comparison "
                                                               "carries ± 1 s.e.",
    ("09_training_fast", "`prefetch_factor`"): "batches prepared ahead",
}


def comparisons_without_error_bars(path: Path) -> list[str]:
    """Sentences of the prose that say one thing beats, edges out or is better than another, in a paragraph that
    gives no error bar (±, a standard error, McNemar, seeds) and does not say "about the same"."""
    found = []
    for cell in (c for c in cells(path) if c["cell_type"] == "markdown"):
        text = re.sub(r"^(`{3,}).*?^\1[ \t]*$", " ", src(cell), flags=re.M | re.S)  # code blocks
        for paragraph in re.split(r"\n\s*\n|\n- ", text):
            if ERROR_BAR.search(paragraph):
                continue
            for sentence in (" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", paragraph.strip())):
                if CLAIM.search(sentence) and not any(
                        path.stem == stem and sentence.startswith(start) for stem, start in NOT_A_COMPARISON):
                    found.append(sentence[:160])
    return found


def test_the_error_bar_rule_finds_what_it_should(tmp_path):
    nb = tmp_path / "nb.ipynb"
    texts = ["Dropout beats no cure.", "Dropout beats no cure (McNemar p = 0.01).",
             "A is better than B.\n\nB: 0.91 ± 0.01.", "They are about the same; A is ahead of B by 2 images."]
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": t, "metadata": {}} for t in texts]}))
    assert comparisons_without_error_bars(nb) == ["Dropout beats no cure.", "A is better than B."]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_win_comes_with_its_error_bar(path):
    """Issue 19's rule 2: a sentence that says A beats B states the uncertainty in its paragraph (± one standard
    error, McNemar's p on the same images, a spread over seeds), or says "about the same"."""
    bare = comparisons_without_error_bars(path)
    assert not bare, f"{path.name}: comparisons without an error bar: {bare[:5]}"


# ---- 3. Stated learner times are computed -----------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stated_learner_time_is_the_computed_one(path):
    computed = learner_time.chapter_times(path)
    stated = learner_time.stated(path)
    assert stated, f"{path.name}: no '**Time:** about ...' sentence; run scripts/learner_time.py --write"
    for part, said, count in zip(("chapter", "exercises"), stated, computed):
        assert abs(said - count) <= 0.25 * count, (
            f"{path.name}: states {said} min for the {part}, the content counts {count} min (more than a quarter "
            "apart): run .venv/bin/python scripts/learner_time.py --write")


def test_instructors_table_shows_the_computed_times():
    page = (ROOT / "book" / "instructors.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        row = re.search(rf"^\| {path.stem} \|.*\| (\d+) min \| (?:(\d+) min|—) \|$", page, re.M)
        assert row, f"book/instructors.md's learner-time table has no row for {path.stem}"
        for said, count in zip((int(row.group(1)), int(row.group(2) or 0)), learner_time.chapter_times(path)):
            assert abs(said - count) <= 0.25 * count, f"{path.stem}: table says {said} min, the content {count}"


def test_learner_time_counts_what_it_says():
    md = {"cell_type": "markdown", "metadata": {}, "source": "word " * 200 + "\n```{exercise}\n:label: x\nDo.\n```"}
    code = {"cell_type": "code", "metadata": {}, "source": "a = 1\nb = 2\n\nprint(a + b)\n"}
    hidden = {"cell_type": "code", "metadata": {"tags": ["remove-cell"]}, "source": "assert True\n"}
    e = learner_time.estimate([md, code, hidden])
    assert (e.words, e.code_cells, e.code_lines, e.exercises) == (201, 1, 3, 1)
    assert e.minutes() == pytest.approx(201 / 100 + 1 + 3 * 4 / 60 + 15)


# ---- 4. Stored outputs come from one quiet run ------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_run_is_timestamped_and_within_budget(path):
    """Every code cell carries nbclient's execution timestamps (jupyter execute / nbclient record them), and the
    stored run took no longer than the notebook's budget: timing outputs and timing prose come from a quiet run."""
    code = [c for c in cells(path) if c["cell_type"] == "code" and src(c).strip()]
    missing = [i for i, c in enumerate(code) if "iopub.execute_input" not in c["metadata"].get("execution", {})]
    assert not missing, f"{path.name}: {len(missing)} code cells without execution timestamps; execute with " \
                        "`jupyter execute --inplace` (nbclient), not a front end that drops them"
    stamps = [datetime.fromisoformat(v.replace("Z", "+00:00")) for c in code
              for k, v in c["metadata"]["execution"].items() if k in ("iopub.execute_input", "shell.execute_reply")]
    span = (max(stamps) - min(stamps)).total_seconds()
    budget = course.budget_seconds(path)
    assert span <= budget, f"{path.name}: the stored run took {span:.0f} s, its budget is {budget} s: it ran on a " \
                           "loaded machine; re-execute with nothing else running"


# ---- 5. Sections are numbered in order --------------------------------------------------------------------------

def section_numbers(path: Path) -> list[str]:
    return [m.group(1) for c in cells(path) if c["cell_type"] == "markdown"
            for m in re.finditer(r"^#{2,3} (\d+(?:\.\d+)+)\.? ", src(c), re.M)]


@known("sections_run_in_order")
def test_sections_run_in_order(path):
    numbers = section_numbers(path)
    if not path.stem[:2].isdigit():  # a reference page (pitfalls): numbered 1, 2, ... if at all, never N.M
        assert not numbers, f"{path.name}: chapter-style section numbers {numbers} on a reference page"
        return
    chapter = str(int(path.stem[:2]))
    expected = [f"{chapter}.{i}" for i in range(1, len(numbers) + 1)]
    assert numbers == expected, f"{path.name}: sections numbered {numbers}, expected {expected}"


# ---- 6. Sections are referred to through labels ---------------------------------------------------------------

HANDWRITTEN = re.compile(r"\b[Ss]ections?\s+\d+\.\d+(?![.\d]*\d)")
# the second number of a list ("sections 3.5 and 3.8", "sections {ref}`3.5 <x>` and 3.8")
LIST_TAIL = re.compile(r"(?:\x00|\b[Ss]ections?\s+\d+\.\d+)\s*(?:,|and|or|to|–|-)\s*(\d+\.\d+)(?![.\d]*\d)")
# a section named by its number alone ("as in 7.5", "the denoiser of 7.5")
BARE = re.compile(r"\b(?:in|of|see|from)\s+(\d+\.\d+)(?![.\d]*\d)(?!\s*(?:%|s\b|ms|µs|MB|GB|points))")
IN_CODE = re.compile(r"\b(?:[Ss]ections?|[Ee]xercises?)\s+\d+(?:\.\d+)?\b")
# a section of the chapter by its number alone in code: "(8.10)", "as in 7.2", "that 8.1 multiplies"
IN_CODE_BARE = re.compile(r"\((\d+\.\d+)\)|\b(?:that|in|of|see|from)\s+(\d+\.\d+)\b(?![.\d])")
REF = re.compile(r"\{ref\}`([^`<]*?)\s*<([\w-]+)>`")
TARGET_THEN_HEADING = re.compile(r"^\(([\w-]+)\)=[ \t]*\n#{2,3} (\d+(?:\.\d+)+)\.? ", re.M)
NOT_PROSE = re.compile(r"^(`{3,})(?!\{)[^\n]*\n.*?^\1[ \t]*$|^```[^\n]*$|\$\$.*?\$\$|`[^`\n]*`|\$[^$\n]*\$",
                       re.M | re.S)  # code blocks, directive fences, math, inline code


def section_labels() -> dict[str, str]:
    """label -> the number of the section heading it stands on, over every notebook."""
    return {m.group(1): m.group(2) for p in NOTEBOOKS for c in cells(p) if c["cell_type"] == "markdown"
            for m in TARGET_THEN_HEADING.finditer(src(c))}


def hand_written_references(text: str, sections: set[str]) -> list[str]:
    prose = NOT_PROSE.sub(" ", REF.sub("\x00", text))
    found = [f"'{m}'" for m in HANDWRITTEN.findall(prose)]
    found += [f"'... {n}' in a list" for n in LIST_TAIL.findall(prose)]
    found += [f"'{n}' alone" for n in BARE.findall(prose) if n in sections]
    return found


def test_the_reference_rule_finds_what_it_should():
    sections = {"3.5", "3.8", "7.5"}
    assert hand_written_references("see section 3.5.", sections) == ["'section 3.5'"]
    assert hand_written_references("sections {ref}`3.5 <a>` and 3.8", sections) == ["'... 3.8' in a list"]
    assert hand_written_references("the denoiser of 7.5 sees", sections) == ["'7.5' alone"]
    assert hand_written_references("a loss of 7.5 %, Goodfellow's section 8.1.3", sections) == []
    assert hand_written_references("```python\n# section 3.5\n```\nand {ref}`section 3.5 <a>`", sections) == []
    assert IN_CODE.findall('# section 3.5, exercise 2; print("sections 3.5 and 3.8"), 3.5 %') == [
        "section 3.5", "exercise 2", "sections 3.5"]
    bare = "# optional (8.10), as in 7.2; that 8.1 does; figsize=(4.6 * n), of 7.25"
    assert [a + b for a, b in IN_CODE_BARE.findall(bare)] == ["8.10", "7.2", "8.1", "7.25"]


@known("sections_referenced_through_labels")
def test_sections_are_referenced_through_labels(path):
    """Every numbered section carries a label; prose refers to it with {ref}`section 3.6 <label>`, and the
    number in the link text is the number of the heading the label stands on: renumber a section and this
    test names every stale reference in the prose. A reference to another book's section ("section 8.1.3"
    of a textbook) is not a section of this course. Code cells cannot link: a comment, a printed label or a
    hidden test's message names a section or an exercise in words ("the samplers section"), never by number."""
    labels = section_labels()
    numbered = set(section_numbers(path))
    labelled = {n for n in labels.values() if n.split(".")[0] == path.stem[:2].lstrip("0")}
    problems = [f"section {n} has no label (a `(label)=` line right above its heading)"
                for n in sorted(numbered - labelled)]
    for c in cells(path):
        if c["cell_type"] != "markdown":
            continue
        text = src(c)
        for shown, label in REF.findall(text):
            numbers = re.findall(r"\d+\.\d+", shown)
            if numbers and labels.get(label) != numbers[-1]:
                problems.append(f"{{ref}}`{shown} <{label}>` points at section {labels.get(label)}")
        problems += [f"hand-written {r}: write {{ref}}`section N.M <label>`"
                     for r in hand_written_references(text, numbered)]
    code = [src(c) for c in cells(path) if c["cell_type"] == "code"]
    problems += [f"'{m}' in a code cell: name it in words" for text in code for m in IN_CODE.findall(text)]
    problems += [f"'{n}' in a code cell: name the section in words" for text in code
                 for n in map("".join, IN_CODE_BARE.findall(text)) if n in numbered]
    assert not problems, f"{path.name}: " + "; ".join(problems[:8])


# ---- 7. Gated checks run at the defaults ------------------------------------------------------------------------

def parameters(path: Path) -> dict:
    """name -> default value, from the notebook's `parameters` cell (what papermill replaces)."""
    cell = next(c for c in cells(path) if "parameters" in c["metadata"].get("tags", []))
    return {t.id: ast.literal_eval(node.value) for node in code_tree(cell).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def gate_mismatches(path: Path) -> list[str]:
    """Gates are comparisons that switch a chapter's claim checks on only at the defaults they were measured
    with: `DEFAULTS = (dataset, epochs, lr) == ("embedded", 12, 1e-3)`, `if (DEFAULTS, ig_steps) == (True, 32)`.
    A gate that compares a parameter with anything but its default is false in the stored run and on CI, and
    the checks it guards never run. Returns each such comparison. Only tuple comparisons and assignments to a
    `..._DEFAULTS` name are gates; `if dataset == "full":` is a branch."""
    params, found = parameters(path), []
    for cell in (c for c in cells(path) if c["cell_type"] == "code"
                 and "parameters" not in c["metadata"].get("tags", [])):
        tree = code_tree(cell)
        gated = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id.endswith("DEFAULTS") for t in n.targets)]
        compares = {id(n): n for g in gated for n in ast.walk(g) if isinstance(n, ast.Compare)}
        compares.update({id(n): n for n in ast.walk(tree) if isinstance(n, ast.Compare)
                         and isinstance(n.left, ast.Tuple) and len(n.left.elts) > 1})
        for node in compares.values():
            if len(node.ops) != 1 or not isinstance(node.ops[0], (ast.Eq, ast.Is)):
                continue
            left, right = node.left, node.comparators[0]
            pairs = (zip(left.elts, right.elts) if isinstance(left, ast.Tuple) and isinstance(right, ast.Tuple)
                     else [(left, right)])
            for name, value in pairs:
                if not (isinstance(name, ast.Name) and name.id in params):
                    continue
                try:
                    literal = ast.literal_eval(value)
                except ValueError:
                    continue
                default = params[name.id]
                if literal != default or type(literal) is not type(default):
                    found.append(f"{name.id} compared with {literal!r}, its default is {default!r}")
    return found


def test_the_gate_rule_finds_what_it_should(tmp_path):
    nb = tmp_path / "nb.ipynb"
    sources = [("epochs = 12\nlr = 1e-3\ndataset = 'embedded'", ["parameters"]),
               ("DEFAULTS = (epochs, lr) == (12, 3e-3)\nif dataset == 'full':\n    pass", []),
               ("if (DEFAULTS, epochs) == (True, 10):\n    pass\nOK = (epochs, lr) == (12, 0.001)", [])]
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": s, "metadata": {"tags": t}}
                                        for s, t in sources]}))
    assert gate_mismatches(nb) == ["lr compared with 0.003, its default is 0.001",
                                   "epochs compared with 10, its default is 12"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_gated_checks_run_at_the_defaults(path):
    """A changed default with a stale gate would switch the chapter's claim checks off without a word."""
    wrong = gate_mismatches(path)
    assert not wrong, f"{path.name}: a gate compares a parameter with a value that is not its default: {wrong}"


def test_every_sentence_let_through_by_the_error_bar_rule_still_exists():
    """An entry of NOT_A_COMPARISON whose sentence is gone would let a new sentence through unread."""
    for stem, start in NOT_A_COMPARISON:
        path = next(p for p in NOTEBOOKS if p.stem == stem)
        prose = " ".join(" ".join(src(c).split()) for c in cells(path) if c["cell_type"] == "markdown")
        assert start in prose, f"{stem}: no sentence starts with {start!r}: remove it from NOT_A_COMPARISON"
