"""The Chinese edition's catalogs: extract the English messages, check the translations, translate notebooks.

    .venv/bin/python scripts/i18n.py extract       # English changed: refresh locale/zh_CN/LC_MESSAGES/**.po
    .venv/bin/python scripts/i18n.py check         # exit 1 if a message is untranslated, fuzzy or broken;
                                                   # lists each one with its file and location
    .venv/bin/python scripts/i18n.py check FILE.po # the same for one catalog (translators' loop)
    .venv/bin/python scripts/i18n.py stats         # messages per catalog
    .venv/bin/python scripts/i18n.py config        # write _build/_config.zh.yml (the Chinese site's config)
    .venv/bin/python scripts/i18n.py build [HTML]  # build the Chinese site into HTML/zh (default _build/html/zh),
                                                   # warnings as errors, after the English one

The English text is the source. Sphinx's gettext builder (`jupyter-book build --builder custom
--custom-builder gettext`) extracts every paragraph, heading, list item and table cell of the book's
pages and notebooks, in MyST syntax, one catalog per page (`gettext_compact: false`); `extract` adds the
figures' alternative text (cell metadata `mystnb.image.alt`, which Sphinx does not extract) and merges
everything into the `.po` files with sphinx-intl: a changed English message becomes fuzzy or
untranslated until someone translates it. Code, outputs and figures are never translated.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale"
LANG = "zh_CN"
PO_DIR = LOCALE / LANG / "LC_MESSAGES"
POT_DIR = ROOT / "_build" / "gettext"
VENV_BIN = Path(sys.executable).parent
LIST_COMMAND = ".venv/bin/python scripts/i18n.py check"


# ---------------------------------------------------------------------------------------------- config
def zh_config(out: Path = ROOT / "_build" / "_config.zh.yml") -> Path:
    """The Chinese site's configuration: `_config.yml` with Sphinx's `language` set to Chinese and the
    search index split into words by jieba. Generated, so the two sites cannot drift apart."""
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    # local extensions are found relative to the config file: point them at the repository
    text = re.sub(r"(:\s*)book/_ext\b", rf"\g<1>{ROOT}/book/_ext", text)
    marker = "  config:\n"
    if marker not in text:
        raise SystemExit("_config.yml has no 'sphinx: config:' block to add the language to")
    text = text.replace(marker, marker + f"    language: {LANG}\n    html_search_language: zh\n", 1)
    text = text.replace("title: Hands-on PyTorch", "title: 动手学 PyTorch（Hands-on PyTorch）", 1)
    text = text.replace("author: The Hands-on PyTorch course team", "author: 动手学 PyTorch 课程团队", 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def build_zh(html: Path, work: Path | None = None) -> subprocess.CompletedProcess:
    """Build the Chinese site (warnings are errors, internal references checked) and put it at html/zh,
    next to the English site in html. Returns the finished jupyter-book process."""
    work = work or ROOT / "_build" / "zh"
    config = zh_config(work / "_config.zh.yml")
    proc = subprocess.run([str(VENV_BIN / "jupyter-book"), "build", str(ROOT), "--config", str(config),
                           "--path-output", str(work), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode == 0:
        target = html / "zh"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(work / "_build" / "html", target)
    return proc


# --------------------------------------------------------------------------------------------- extract
def alt_texts(notebook: Path) -> list[tuple[int, str]]:
    """(cell index, alt text) of every figure in a notebook."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(nb["cells"]):
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if alt:
            found.append((i, alt))
    return found


def relative_locations(catalog: Catalog) -> None:
    """Sphinx writes locations relative to the build folder (`../../work/main/notebooks/…`); keep them
    relative to the repository, so a catalog does not depend on where the repository was cloned."""
    for message in catalog:
        message.locations = [(_repo_path(path), line) for path, line in message.locations]


def _repo_path(path: str) -> str:
    path = path.replace("\\", "/")
    for top in ("notebooks/", "book/"):
        if top in path:
            return top + path.rsplit(top, 1)[1]
    return path


def extract_pot(pot_dir: Path = POT_DIR) -> list[Path]:
    """The English messages: Sphinx's gettext build of the book, plus the figures' alt text, into pot_dir."""
    if pot_dir.exists():
        shutil.rmtree(pot_dir)
    work = pot_dir.parent / (pot_dir.name + "-build")
    subprocess.run([str(VENV_BIN / "jupyter-book"), "build", str(ROOT), "--builder", "custom",
                    "--custom-builder", "gettext", "--path-output", str(work), "--quiet"],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    shutil.move(str(work / "_build" / "gettext"), str(pot_dir))
    shutil.rmtree(work)
    pots = sorted(pot_dir.rglob("*.pot"))
    for pot in pots:
        with pot.open("rb") as f:
            catalog = read_po(f)
        relative_locations(catalog)
        source = ROOT / pot.relative_to(pot_dir).with_suffix(".ipynb")
        if source.exists():
            rel = source.relative_to(ROOT).as_posix()
            for cell, alt in alt_texts(source):
                catalog.add(alt, locations=[(rel, cell * 10000)], auto_comments=["alt text of a figure"])
        with pot.open("wb") as f:
            write_po(f, catalog, width=0, omit_header=False)
    return pots


def extract() -> None:
    extract_pot()
    subprocess.run([str(VENV_BIN / "sphinx-intl"), "update", "-p", str(POT_DIR), "-l", LANG, "-d", str(LOCALE),
                    "-w", "0"], check=True, cwd=ROOT)
    print(f"== catalogs updated in {PO_DIR.relative_to(ROOT)}; now translate what `{LIST_COMMAND}` lists")


# ----------------------------------------------------------------------------------------------- check
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
ROLE = re.compile(r"\{[a-z:-]+\}`[^`]*`")
TITLED_ROLE = re.compile(r"^(\{[a-z:-]+\})`[^`<]*<([^`>]+)>`$")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
HTML_TAG = re.compile(r"</?[a-zA-Z][^>\n]*>")
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:[.,]\d+)*")  # a number glued to Chinese counts too
MONTH = re.compile(r"(?<!\d)(?:1[0-2]|[1-9])\s*月")
NUMBER_WORDS = {w: n for n, ws in enumerate([
    ("zero", "zeros", "zeroes"), ("one", "ones"), ("two", "twos"), ("three", "threes"), ("four", "fours"),
    ("five", "fives"), ("six", "sixes"), ("seven", "sevens"), ("eight", "eights"), ("nine", "nines"),
    ("ten", "tens")]) for w in ws}
SCALE = {"million": 10**6, "billion": 10**9, "万": 10**4, "亿": 10**8}
SCALED = re.compile(r"(?<![A-Za-z0-9_.,])(\d+(?:,\d{3})*(?:\.\d+)?)\s*(million|billion|万|亿)")
ASCII_PUNCT_IN_EMPHASIS = re.compile(r"\*\*[^*\s][^*]*?\*\*")
UNTOUCHED = ("alt text of a figure",)


def protected(text: str) -> dict[str, list[str]]:
    """What a translation must carry over unchanged: roles, inline code, math, link targets, HTML tags
    and numbers (each as a sorted list, so the order may change)."""
    rest = text
    found = {}
    for name, pattern in (("role", ROLE), ("inline code", INLINE_CODE), ("math", MATH)):
        # a role's target must survive; its title (`{ref}`section 4.2 <label>``) is prose, translated
        found[name] = sorted(TITLED_ROLE.sub(r"\1`<\2>`", m.group(0)) for m in pattern.finditer(rest))
        rest = pattern.sub(" ", rest)
    found["link target"] = sorted(LINK_TARGET.findall(rest))
    found["HTML tag"] = sorted(HTML_TAG.findall(rest))
    rest = LINK_TARGET.sub(" ", HTML_TAG.sub(" ", rest))
    rest = MONTH.sub(" ", rest)  # "2026 年 12 月": Chinese writes the month as a number
    # "1.2 million" and "120 万" are the same number: compare the values
    rest = SCALED.sub(lambda m: " %d " % round(float(m.group(1).replace(",", "")) * SCALE[m.group(2)]), rest)
    found["number"] = sorted(n.replace(",", "") for n in NUMBER.findall(rest))
    return found


CJK = "\u3400-\u9fff\uf900-\ufaff"
FULLWIDTH_PUNCT = "，。：；！？、（）“”‘’《》【】…—"


def emphasis_problems(text: str) -> list[str]:
    """CommonMark only closes `**…**` if the inner edge is not punctuation or the outside is a space or
    punctuation: `的**（N,）**是` stays literal asterisks. Chinese text has no spaces, so check."""
    problems = []
    # code and roles start and end with a backtick, which CommonMark counts as punctuation
    stripped = INLINE_CODE.sub(lambda m: "`" * len(m.group(0)), ROLE.sub(lambda m: "`" * len(m.group(0)), text))
    for m in re.finditer(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1", stripped):
        inner = m.group(2)
        before = stripped[m.start() - 1] if m.start() > 0 else " "
        after = stripped[m.end()] if m.end() < len(stripped) else " "
        if _is_punct(inner[0]) and not (before.isspace() or _is_punct(before)):
            problems.append(f"emphasis {text[m.start():m.end()]!r} starts with punctuation after a letter: "
                            "add a space before it or move the punctuation out")
        if _is_punct(inner[-1]) and not (after.isspace() or _is_punct(after)):
            problems.append(f"emphasis {text[m.start():m.end()]!r} ends with punctuation before a letter: "
                            "add a space after it or move the punctuation out")
    return problems


def _is_punct(ch: str) -> bool:
    import unicodedata
    return unicodedata.category(ch).startswith("P") or ch in "`$<>|~^=+"


def message_problems(msgid: str, msgstr: str) -> list[str]:
    if not msgstr.strip():
        return ["untranslated"]
    problems = []
    want, got = protected(msgid), protected(msgstr)
    # Chinese writes "the zeros", "a seven" as digits: a digit the English names in words may be added
    worded = {str(NUMBER_WORDS[w]) for w in re.findall(r"[a-z]+", msgid.lower()) if w in NUMBER_WORDS}
    for kind in want:
        if want[kind] != got[kind]:
            from collections import Counter
            missing = sorted((Counter(want[kind]) - Counter(got[kind])).elements())
            extra = sorted((Counter(got[kind]) - Counter(want[kind])).elements())
            if kind == "number":
                extra = [x for x in extra if x not in worded]
                if not missing and not extra:
                    continue
            problems.append(f"{kind} changed: missing {missing}, extra {extra}")
    problems += emphasis_problems(msgstr)
    if msgid.count("**") != msgstr.count("**"):
        problems.append("a different number of ** (bold markers)")
    if re.search(f"[{CJK}]", msgid) is None and msgid != msgstr and re.search(f"[{CJK}]", msgstr) is None \
            and re.search("[A-Za-z]{3,}", _prose(msgid)):
        problems.append("the translation has no Chinese")
    return problems


def _prose(text: str) -> str:
    for pattern in (ROLE, INLINE_CODE, MATH, LINK_TARGET, HTML_TAG):
        text = pattern.sub(" ", text)
    return text


def catalogs() -> list[Path]:
    return sorted(PO_DIR.rglob("*.po"))


def check(paths: list[Path]) -> int:
    total = bad = 0
    for po in paths:
        with po.open("rb") as f:
            catalog = read_po(f)
        for message in catalog:
            if not message.id:
                continue
            total += 1
            problems = message_problems(message.id, message.string)
            if message.fuzzy:
                problems.insert(0, "fuzzy (the English changed: check the translation, then drop the fuzzy flag)")
            if problems:
                bad += 1
                where = ", ".join(f"{p}:{n}" for p, n in message.locations[:1]) or "?"
                print(f"{po.relative_to(ROOT)} ({where}): {'; '.join(problems)}\n    msgid: {message.id[:160]!r}")
    print(f"== {total} messages in {len(paths)} catalogs, {bad} need work")
    if bad:
        print(f"   list them again with: {LIST_COMMAND}")
    return 1 if bad else 0


def stats() -> None:
    grand = 0
    for po in catalogs():
        with po.open("rb") as f:
            n = sum(1 for m in read_po(f) if m.id)
        grand += n
        print(f"{po.relative_to(PO_DIR)}: {n}")
    print(f"total: {grand}")


# ------------------------------------------------------------------------------------------- notebooks
def load_catalog(notebook: Path) -> dict[str, str]:
    """msgid → msgstr of a notebook's or page's catalog; "" for a message untranslated or fuzzy."""
    po = PO_DIR / notebook.relative_to(ROOT).with_suffix(".po")
    with po.open("rb") as f:
        return {m.id: ("" if m.fuzzy else m.string) for m in read_po(f) if m.id}


def _loose(msgid: str) -> re.Pattern:
    """A message as it sits in a Markdown cell: Sphinx joined its lines with spaces."""
    return re.compile(r"\s+".join(re.escape(word) for word in msgid.split()))


def translate_notebook(nb: dict, notebook: Path) -> dict:
    """A copy of a notebook with its Markdown prose and figure descriptions in Chinese, its code
    (and code comments, outputs, figures) unchanged. Every message must be found and translated."""
    import copy
    table = load_catalog(notebook)
    untranslated = [k for k, v in table.items() if not v]
    table = {k: v for k, v in table.items() if v}
    nb = copy.deepcopy(nb)
    same = {k for k, v in table.items() if k == v}  # code, names, formulas: nothing to replace
    missing, used = [], set(same)
    for cell in nb["cells"]:
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if alt:
            if alt not in table:
                missing.append(alt)
            else:
                cell["metadata"]["mystnb"]["image"]["alt"] = table[alt]
                used.add(alt)
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        out = _translate_markdown(text, {k: v for k, v in table.items() if k not in same}, used)
        cell["source"] = out.splitlines(keepends=True)
    missing += untranslated + [k for k in table if k not in used]
    if missing:
        raise SystemExit(f"{notebook.relative_to(ROOT)}: {len(missing)} messages are untranslated or not found "
                         f"in the notebook, e.g. {missing[0][:80]!r}; run scripts/i18n.py extract, then "
                         f"{LIST_COMMAND}")
    return nb


def _translate_markdown(text: str, table: dict[str, str], used: set[str]) -> str:
    """Replace each block of a Markdown cell (heading, paragraph, list item, table cell, directive title)
    by its translation. Blocks are matched longest message first, so a short message inside a longer
    one is not replaced on its own."""
    spans: list[tuple[int, int, str]] = []
    for msgid in sorted(table, key=len, reverse=True):
        for m in _loose(msgid).finditer(text):
            if any(s < m.end() and m.start() < e for s, e, _ in spans):
                continue
            if not _whole(text, m.start(), m.end()):
                continue
            spans.append((m.start(), m.end(), table[msgid]))
            used.add(msgid)
    for start, end, string in sorted(spans, reverse=True):
        text = text[:start] + string + text[end:]
    return text


def _whole(text: str, start: int, end: int) -> bool:
    """A message is a whole block: it starts a line (after a list marker, heading hashes, quote or table
    bar) and ends one (or a table cell)."""
    before = text[text.rfind("\n", 0, start) + 1:start]
    after = text[end:text.find("\n", end) if "\n" in text[end:] else len(text)]
    return re.fullmatch(r"\s*(?:[-*+>]\s+|\d+[.)]\s+|#{1,6}\s+|\|\s*|.*\|\s*|:{3,}\{[\w-]+\}\s*|`{3,}\{[\w-]+\}\s*"
                        r"|\$\$\s*)*", before) is not None \
        and re.fullmatch(r"\s*(?:\|.*|\$\$.*)?", after) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["extract", "check", "stats", "config", "build"])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.command == "extract":
        extract()
    elif args.command == "check":
        return check([p.resolve() for p in args.files] or catalogs())
    elif args.command == "stats":
        stats()
    elif args.command == "config":
        print(zh_config())
    elif args.command == "build":
        html = args.files[0] if args.files else ROOT / "_build" / "html"
        proc = build_zh(html.resolve())
        if proc.returncode:
            print(proc.stdout[-6000:], proc.stderr[-6000:], sep="\n")
            print("== the Chinese site did not build; an untranslated or broken message? "
                  f"run {LIST_COMMAND}")
            return proc.returncode
        print(f"== the Chinese site is in {html / 'zh'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
