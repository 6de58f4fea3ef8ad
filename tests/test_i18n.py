"""The Chinese edition (scripts/i18n.py, locale/zh_CN): every message translated with its markup intact,
catalogs that match the current English, the Chinese Colab edition and the Chinese site."""
from __future__ import annotations

import json
import re

import i18n
import pytest
from babel.messages.pofile import read_po
from conftest import ROOT
from course import chapters
from course import toc_files as toc_pages

CJK = re.compile(r"[\u3400-\u9fff]")


def read(path):
    with open(path, "rb") as f:
        return read_po(f)


def test_every_message_is_translated_not_fuzzy_and_keeps_its_markup(capsys):
    code = i18n.check(i18n.catalogs())
    out = capsys.readouterr().out
    assert code == 0, out[-8000:]


def test_every_page_of_the_book_has_a_catalog():
    missing = [page for page in toc_pages() if not (i18n.PO_DIR / f"{page}.po").exists()]
    assert not missing, f"no catalog for {missing}: run .venv/bin/python scripts/i18n.py extract"


@pytest.mark.slow
def test_the_catalogs_hold_exactly_the_current_english_messages(tmp_path):
    """A changed English sentence is a new message: CI fails until the catalogs are refreshed and it is
    translated (CONTRIBUTING.md), so the two languages cannot drift apart."""
    pot_dir = tmp_path / "gettext"
    pots = i18n.extract_pot(pot_dir)
    assert len(pots) == len(toc_pages())
    for pot in pots:
        want = {m.id for m in read(pot) if m.id}
        po = i18n.PO_DIR / pot.relative_to(pot_dir).with_suffix(".po")
        have = {m.id for m in read(po) if m.id} if po.exists() else set()
        new, gone = sorted(want - have), sorted(have - want)
        assert not new and not gone, (
            f"{po.relative_to(ROOT)} is stale: {len(new)} English messages not in it (e.g. {new[:1]}), "
            f"{len(gone)} no longer in the English (e.g. {gone[:1]}); run .venv/bin/python scripts/i18n.py "
            f"extract, translate what `{i18n.LIST_COMMAND}` lists")


MSGID = ("Use `x.view(2, 3)` on 5,000 images, see {numref}`exercise-tensors-1` and [chapter 5](05_cnn.ipynb); "
         "$n^2$ is **fast**.")
GOOD = ("对 5,000 张图像使用 `x.view(2, 3)`，见 {numref}`exercise-tensors-1` 和 [第 5 章](05_cnn.ipynb)；"
        "$n^2$ **很快**。")


def test_a_faithful_translation_passes_the_checker():
    assert i18n.message_problems(MSGID, GOOD) == []
    assert i18n.message_problems("5,000 images", "5000 张图像") == []


@pytest.mark.parametrize("broken, problem", [
    (GOOD.replace("`x.view(2, 3)`", "`x.view(3, 2)`"), "inline code changed"),
    (GOOD.replace("exercise-tensors-1", "exercise-tensors-2"), "role changed"),
    (GOOD.replace("{numref}`exercise-tensors-1`", "练习 1"), "role changed"),
    (GOOD.replace("(05_cnn.ipynb)", "(06_rnn.ipynb)"), "link target changed"),
    (GOOD.replace("$n^2$", "$n^3$"), "math changed"),
    (GOOD.replace("5,000", "4,000"), "number changed"),
    (GOOD.replace("**很快**。", "**很快。**对"), "ends with punctuation"),
    (GOOD.replace("**很快**", "很快"), "bold markers"),
    ("", "untranslated"),
    ("Use `x.view(2, 3)` on 5,000 images, see {numref}`exercise-tensors-1` and [chapter 5](05_cnn.ipynb); "
     "$n^2$ is **quick**.", "no Chinese"),
])
def test_the_checker_catches_a_broken_translation(broken, problem):
    problems = i18n.message_problems(MSGID, broken)
    assert any(problem in p for p in problems), problems


def test_emphasis_next_to_chinese_needs_a_space_when_it_starts_with_code():
    assert i18n.emphasis_problems("用**`view`**改变形状")
    assert not i18n.emphasis_problems("用 **`view`** 改变形状")


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.stem)
def test_a_translated_notebook_changes_prose_only(path):
    """Every Markdown message and alt text is replaced; code, outputs and metadata other than the alt text
    stay byte for byte; no English message of the chapter is left in the Chinese notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    zh = i18n.translate_notebook(nb, path)
    assert len(zh["cells"]) == len(nb["cells"])
    for en_cell, zh_cell in zip(nb["cells"], zh["cells"]):
        assert en_cell["cell_type"] == zh_cell["cell_type"]
        if en_cell["cell_type"] == "code":
            assert en_cell["source"] == zh_cell["source"] and en_cell.get("outputs") == zh_cell.get("outputs")
    table = i18n.load_catalog(path)
    text = "\n".join("".join(c["source"]) for c in zh["cells"] if c["cell_type"] == "markdown")
    left = [m for m, t in table.items() if m != t and len(m) > 30 and i18n._loose(m).search(text)]
    assert not left, f"English left in the Chinese notebook: {left[:2]}"


def test_translating_a_notebook_without_its_translation_fails(monkeypatch):
    path = chapters()[0]
    table = i18n.load_catalog(path)
    dropped = next(k for k in table if len(k) > 40)
    monkeypatch.setattr(i18n, "load_catalog", lambda p: {**table, dropped: ""})
    with pytest.raises(SystemExit, match="untranslated or not found"):
        i18n.translate_notebook(json.loads(path.read_text(encoding="utf-8")), path)


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.stem)
def test_the_chinese_colab_edition_is_chinese(path):
    """colab/zh/: every prose cell of the English Colab edition is Chinese in the Chinese one, and the
    words the edition adds itself (exercise, solution) are Chinese too."""
    en = json.loads((ROOT / "colab" / path.name).read_text(encoding="utf-8"))
    zh = json.loads((ROOT / "colab" / "zh" / path.name).read_text(encoding="utf-8"))
    assert len(en["cells"]) == len(zh["cells"])
    english_prose = 0
    for e, z in zip(en["cells"], zh["cells"]):
        if e["cell_type"] != "markdown":
            continue
        prose = re.sub(r"`[^`]*`|\$[^$]*\$|<[^>]+>|\([^)]*\)", " ", "".join(e["source"]))
        if len(re.findall(r"[A-Za-z]{4,}", prose)) >= 3:
            english_prose += 1
            assert CJK.search("".join(z["source"])), f"{path.name}: a prose cell is not translated: {e['source'][:1]}"
    assert english_prose > 10
    text = "\n".join("".join(c["source"]) for c in zh["cells"])
    if "{exercise}" in path.read_text(encoding="utf-8"):
        assert "**练习 " in text and "<summary>参考答案</summary>" in text or "的参考答案" in text
    assert "**Exercise " not in text and "<summary>Solution" not in text


@pytest.mark.parametrize("path", sorted((ROOT / "assignments").glob("*.ipynb")), ids=lambda p: p.stem)
def test_a_chinese_assignment_is_graded_like_the_english_one(path):
    """assignments/zh/: the same cells in the same order with the same metadata (the question each graded
    cell answers) and the same code, and the same version stamp, so one grading bundle grades a
    submission in either language; only Markdown differs, and it is Chinese."""
    en = json.loads(path.read_text(encoding="utf-8"))
    zh = json.loads((ROOT / "assignments" / "zh" / path.name).read_text(encoding="utf-8"))
    assert zh["metadata"]["course_assignment"] == en["metadata"]["course_assignment"]
    assert [c["cell_type"] for c in zh["cells"]] == [c["cell_type"] for c in en["cells"]]
    def without_alt(metadata):  # a figure's description is prose: translated
        metadata = json.loads(json.dumps(metadata))
        metadata.get("mystnb", {}).get("image", {}).pop("alt", None)
        return metadata

    for e, z in zip(en["cells"], zh["cells"]):
        assert without_alt(z["metadata"]) == without_alt(e["metadata"])
        if e["cell_type"] == "code":
            assert z["source"] == e["source"] or z["source"][1:] == e["source"][1:]  # a form title may differ
    notes = [c for c in zh["cells"] if c["cell_type"] == "markdown" and "grade-note" in c.get("id", "")]
    assert notes and all("评分" in "".join(c["source"]) for c in notes)
