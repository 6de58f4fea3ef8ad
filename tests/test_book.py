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
