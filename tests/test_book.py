"""The site builds from the stored outputs with every Sphinx warning treated as an error."""
import re

import pytest
from conftest import ROOT
from course import toc_files as toc_pages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_every_toc_page_is_built_with_offline_math(site):
    for page in toc_pages():
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        # MathJax comes from the build itself, never from a CDN (the site must work offline)
        if 'class="math notranslate' in html:
            assert "_static/mathjax/tex-chtml.js" in html, page
        assert "cdn.jsdelivr" not in html, page
        assert not re.findall(r'<script[^>]+src="https?://', html), f"{page} loads a script from the internet"


def test_math_pages_exist():
    assert any("$$" in (ROOT / f"{p}.ipynb").read_text() for p in toc_pages() if p.startswith("notebooks/"))


def test_chapter_pages_carry_their_stored_outputs(site):
    html = (site / "notebooks" / "01_tensors.html").read_text(encoding="utf-8")
    assert "nearest-template accuracy on 1000 test digits: 0.804" in html
    assert html.count('class="cell_output') > 20 and '<img alt="_images/' not in html
    assert re.search(r'<img[^>]+src="\.\./_images/[0-9a-f]+\.png"', html)


def test_remove_cell_assertions_are_hidden_from_the_site(site):
    html = (site / "notebooks" / "02_autograd.html").read_text(encoding="utf-8")
    assert "assert max_error" not in html and "Checks the claims" not in html


def test_solutions_are_dropdowns(site):
    html = (site / "notebooks" / "01_tensors.html").read_text(encoding="utf-8")
    assert html.count('class="solution dropdown') >= 3


def test_chapters_offer_their_notebook_for_download(site):
    for page in [p for p in toc_pages() if p.startswith("notebooks/")]:
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        href = re.search(r'href="([^"]*_sources/%s\.ipynb)"' % re.escape(page), html)
        assert href, f"{page}: no download link for the .ipynb"
        downloaded = site / "_sources" / f"{page}.ipynb"
        # the download is the Colab edition (plain Markdown, collapsed solutions), not the MyST source
        assert downloaded.read_bytes() == (ROOT / "colab" / f"{page.split('/')[-1]}.ipynb").read_bytes(), page


def test_chapters_offer_their_assignment_and_no_page_holds_a_hidden_test(site):
    import json
    for notebook in sorted((ROOT / "assignments").glob("*.ipynb")):
        html = (site / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        assert f"_downloads/assignments/{notebook.name}" in html, notebook.name
        assert (site / "_downloads" / "assignments" / notebook.name).read_bytes() == notebook.read_bytes()
    hidden = []  # each hidden test's `def` line, in every chapter
    for page in toc_pages():
        path = ROOT / f"{page}.ipynb"
        if path.exists():
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
                if "grade-hidden" in cell["metadata"].get("tags", []):
                    hidden += re.findall(r"^def \w+\(.*$", "".join(cell["source"]), flags=re.M)
    assert hidden and any((ROOT / "assignments").glob("*.ipynb"))
    for path in site.rglob("*"):  # pages, the search index, downloads
        if path.is_file() and path.suffix in {".html", ".js", ".ipynb", ".txt", ".json"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            found = [line for line in hidden if line in text]
            assert not found, f"a hidden test in {path}: {found[0]}"


# ------------------------------------------------------------------------------------ the Chinese site
CJK = re.compile(r"[\u3400-\u9fff]")


def _article(html: str) -> str:
    """The page's article text without code blocks, inline code and tags."""
    body = re.search(r"<article.*?</article>", html, re.S).group(0)
    body = re.sub(r"<(pre|code|script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


def test_every_page_exists_in_chinese_with_its_title_and_navigation_translated(site):
    for page in toc_pages():
        html = (site / "zh" / f"{page}.html").read_text(encoding="utf-8")
        assert re.search(r'<html[^>]+lang="zh-CN"', html), page
        h1 = re.sub(r"<[^>]+>", "", re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1))
        title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
        assert CJK.search(h1) and CJK.search(title), f"{page}: title not translated ({h1!r}, {title!r})"
        captions = re.findall(r'class="caption-text">([^<]*)<', html)
        assert captions and all(CJK.search(c) for c in captions), f"{page}: navigation {captions}"
        text = _article(html)
        # (every message is translated, tests/test_i18n.py; the references page is mostly citations)
        assert len(CJK.findall(text)) > 50, f"{page}: little Chinese in the article"


def test_no_page_shows_raw_markdown_or_myst(site):
    """A translation that breaks its markup shows up as literal asterisks or roles: none on any page."""
    for edition in ("", "zh/"):
        for page in toc_pages():
            text = _article((site / f"{edition}{page}.html").read_text(encoding="utf-8"))
            raw = re.findall(r".{0,30}(?:\*\*|\{(?:numref|ref|doc|term)\}`).{0,30}", text)
            assert not raw, f"{edition}{page}: raw markup {raw[:3]}"


def test_every_page_links_to_the_same_page_in_the_other_language(site):
    for page in toc_pages():
        for edition, other in (("", "zh/"), ("zh/", "")):
            path = site / f"{edition}{page}.html"
            html = path.read_text(encoding="utf-8")
            href = re.search(r'<nav class="language-switch"[^>]*><a href="([^"]+)"', html)
            assert href, f"{edition}{page}: no language switch"
            assert (path.parent / href.group(1)).resolve() == (site / f"{other}{page}.html").resolve(), \
                (edition, page, href.group(1))


def test_the_chinese_site_hands_out_the_chinese_colab_edition(site):
    for page in [p for p in toc_pages() if p.startswith("notebooks/")]:
        name = page.split("/")[-1]
        html = (site / "zh" / f"{page}.html").read_text(encoding="utf-8")
        assert f"/colab/zh/{name}.ipynb" in html, f"{page}: the Colab button is not the Chinese edition"
        downloaded = site / "zh" / "_sources" / f"{page}.ipynb"
        assert downloaded.read_bytes() == (ROOT / "colab" / "zh" / f"{name}.ipynb").read_bytes(), page


def test_the_chinese_search_index_splits_chinese_words(site):
    """Sphinx's Chinese search splits text with jieba: the word 张量 (tensor) is an index term that
    leads to chapter 1 (without jieba whole runs of characters would be one term)."""
    import json
    text = (site / "zh" / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1:text.rindex(")")])
    def pages(kind):  # Sphinx keeps a word that is in a page's title in titleterms only, for that page
        found = index[kind].get("张量", [])
        return found if isinstance(found, list) else [found]

    assert pages("terms"), "张量 is not a search term"
    assert index["docnames"].index("notebooks/01_tensors") in pages("terms") + pages("titleterms")
    # and the splitter cut words out of running text: a word that only occurs inside sentences is a term
    assert index["terms"].get("梯度"), "梯度 (gradient) is not a search term: is jieba installed?"
