"""The built site in a real browser: Debian's headless Chromium driven by Playwright, offline.

Needs /usr/bin/chromium (apt-get install chromium; scripts/test.sh installs it).
Screenshots of every chapter go to artifacts/screenshots/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import re
from pathlib import Path

import course
import pytest
from conftest import ROOT
from course import toc_files as toc_pages

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# Known harmless console noise: the theme's first-visit message, and the browser's echo of a failed
# resource (every failed response is checked separately, with its URL, by Visit._response).
ALLOWED_CONSOLE = (re.compile(r"invalid theme mode", re.I), re.compile(r"^Failed to load resource"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # package.json pins it; scripts/test.sh runs npm ci


CHAPTERS = [str(p.relative_to(ROOT).with_suffix("")) for p in course.chapters()]
# every page in both editions: the English site and the Chinese one below zh/
PAGES = toc_pages() + [f"zh/{page}" for page in toc_pages()]
CJK = re.compile(r"[\u3400-\u9fff]")
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert Path(CHROMIUM).exists(), ("Debian's Chromium is missing: apt-get install chromium "
                                     "(scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("profile")), headless=True,
                                                       executable_path=CHROMIUM, args=FLAGS,
                                                       viewport={"width": 1280, "height": 900})
        yield context
        context.close()


class Visit:
    """Open one page and record what went wrong on the way: page errors, console errors, failed requests."""

    def __init__(self, context, url: str):
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("console", self._console)
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        self.page.on("response", self._response)
        self.response = self.page.goto(url, wait_until="load")

    def _console(self, msg):
        if msg.type == "error" and not any(p.search(msg.text) for p in ALLOWED_CONSOLE):
            self.problems.append(f"console error: {msg.text}")

    def _response(self, r):
        if r.status >= 400 and not r.url.endswith("/favicon.ico"):
            self.problems.append(f"HTTP {r.status}: {r.url}")

    def wait_for_math(self):
        self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        self.page.evaluate("() => MathJax.startup.promise")


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_cleanly_with_images_and_rendered_math(browser, served, page):
    visit = Visit(browser, f"{served}/{page}.html")
    assert visit.response.status == 200
    pg = visit.page
    if pg.locator("span.math, div.math").count():
        visit.wait_for_math()
        assert pg.locator("mjx-container").count() >= pg.locator("span.math, div.math").count()
    body = pg.locator("article").inner_text()
    assert "\\(" not in body and "\\[" not in body, "raw TeX left on the page: MathJax did not render it"
    # Lazy images: scroll through the page so every image loads, then check each really decoded.
    pg.evaluate("async () => { for (let y = 0; y < document.body.scrollHeight; y += 600) {"
                " window.scrollTo(0, y); await new Promise(r => setTimeout(r, 20)); }"
                " await Promise.all([...document.images].map(i => i.complete ? 0 :"
                " new Promise(r => { i.onload = i.onerror = r; }))); }")
    widths = pg.eval_on_selector_all("article img", "imgs => imgs.map(i => [i.src, i.complete && i.naturalWidth])")
    assert all(w for _, w in widths), f"images that did not load: {[s for s, w in widths if not w]}"
    outputs = pg.locator(".cell_output").all_inner_texts()
    assert not [o for o in outputs if "Traceback (most recent call last)" in o], "a stored output is a traceback"
    if "notebooks/" not in page:  # chapters are photographed with their solutions opened, below
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SCREENSHOTS / f"{page.replace('/', '_')}.png"), full_page=True)
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


@pytest.mark.parametrize("page", CHAPTERS + [f"zh/{c}" for c in CHAPTERS])
def test_chapter_shows_outputs_figures_colab_button_and_hidden_solutions(browser, served, page):
    visit = Visit(browser, f"{served}/{page}.html")
    pg = visit.page
    assert pg.locator(".cell_output").count() >= 5, "the chapter's stored outputs are not on the page"
    source = (ROOT / f"{page.removeprefix('zh/')}.ipynb").read_text()
    if '"image/png"' in source:  # a chapter with figures (chapter 10 has none) shows them
        assert pg.locator(".cell_output img").count() >= 1, "the chapter's figures are not on the page"
    colab = pg.locator("a[href*='colab.research.google.com']").first.get_attribute("href")
    # Colab opens the Colab edition (colab/, plain Markdown), not the MyST source in notebooks/
    edition = "zh/" if page.startswith("zh/") else ""  # the Chinese site opens the Chinese edition
    assert colab.endswith(f"/blob/main/colab/{edition}{Path(page).name}.ipynb"), colab
    # Solutions are collapsed dropdowns: the title shows, the body does not until clicked.
    solutions = pg.locator("div.solution.dropdown")
    assert solutions.count() >= 2
    first_body = solutions.first.locator("p").nth(1)
    assert not first_body.is_visible(), "solutions must start collapsed"
    solutions.first.locator(".admonition-title").click()
    first_body.wait_for(state="visible")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{page.replace('/', '_')}.png"), full_page=True)
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


def test_prev_next_navigation_follows_the_table_of_contents(browser, served):
    pages = toc_pages()
    visit = Visit(browser, f"{served}/{pages[0]}.html")
    pg = visit.page
    for expected in pages[1:]:
        pg.locator("a.right-next").click()
        pg.wait_for_load_state("load")
        assert pg.url.endswith(f"/{expected}.html"), (pg.url, expected)
    pg.locator("a.left-prev").click()
    pg.wait_for_load_state("load")
    assert pg.url.endswith(f"/{pages[-2]}.html")
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


def test_search_finds_a_chapter(browser, served):
    visit = Visit(browser, f"{served}/search.html?q=broadcasting")
    pg = visit.page
    pg.wait_for_selector("#search-results ul.search li", timeout=15000)
    hits = pg.locator("#search-results ul.search li a").all_inner_texts()
    assert any("Tensors" in h for h in hits), hits
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


@pytest.mark.parametrize("page", toc_pages())
def test_the_language_switch_leads_to_the_same_page_both_ways(browser, served, page):
    visit = Visit(browser, f"{served}/{page}.html")
    pg = visit.page
    pg.locator("nav.language-switch a").click()
    pg.wait_for_load_state("load")
    assert pg.url == f"{served}/zh/{page}.html", pg.url
    assert pg.evaluate("() => document.documentElement.lang") == "zh-CN"
    assert CJK.search(pg.locator("h1").first.inner_text()), "the Chinese page's title is not Chinese"
    pg.locator("nav.language-switch a").click()
    pg.wait_for_load_state("load")
    assert pg.url == f"{served}/{page}.html", pg.url
    assert pg.evaluate("() => document.documentElement.lang") == "en"
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


def test_chinese_search_finds_chapter_one(browser, served):
    """Searching 张量 (tensor) on the Chinese site finds chapter 1 (jieba splits the index into words)."""
    visit = Visit(browser, f"{served}/zh/search.html?q=张量")
    pg = visit.page
    pg.wait_for_selector("#search-results ul.search li", timeout=15000)
    hits = pg.locator("#search-results ul.search li a").all_inner_texts()
    links = pg.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
    assert any(link.split("?")[0].endswith("/zh/notebooks/01_tensors.html") for link in links), (hits, links)
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


def test_chinese_text_renders_with_a_cjk_font(browser, served):
    """The glyphs of Chinese text come from a font that has them (Debian's fonts-noto-cjk here), not from
    a fallback box: Chromium reports the platform fonts it used for a Chinese paragraph's text."""
    visit = Visit(browser, f"{served}/zh/notebooks/01_tensors.html")
    pg = visit.page
    # the first paragraph of the article whose own text is Chinese
    assert pg.evaluate("() => { const p = [...document.querySelectorAll('article p')].find("
                       "e => /[\\u4e00-\\u9fff]/.test(e.firstChild && e.firstChild.textContent || ''));"
                       " if (p) p.id = 'cjk-probe'; return !!p; }"), "no Chinese paragraph on the page"
    cdp = browser.new_cdp_session(pg)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#cjk-probe"})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cjk = [f for f in fonts if re.search(r"CJK|Han|Hei|Song|Ming|WenQuanYi|Droid Sans Fallback", f["familyName"])]
    assert cjk and sum(f["glyphCount"] for f in cjk) >= 2, f"no CJK font drew the Chinese text: {fonts}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / "zh_cjk_title.png"))
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


PATH_LIKE = re.compile(r"(^|/)_images/|\.(png|jpe?g|svg|gif)$|^[0-9a-f]{16,}$", re.I)


@pytest.mark.parametrize("page", PAGES)
def test_page_fits_a_desktop_and_a_phone_and_describes_its_figures(browser, served, page):
    """Figures have alternative text that says what they show; at 1,440 px no code block scrolls
    sideways (88-character lines fit); at 390 px (a phone) the page itself never scrolls sideways."""
    visit = Visit(browser, f"{served}/{page}.html")
    pg = visit.page
    alts = pg.eval_on_selector_all("article img", "imgs => imgs.map(i => i.getAttribute('alt') || '')")
    bad = [a for a in alts if (len(a.split()) < 4 and len(CJK.findall(a)) < 6) or PATH_LIKE.search(a.strip())]
    if page.startswith("zh/"):
        bad += [a for a in alts if not CJK.search(a) and "logo" not in a]
    assert not bad, f"{len(bad)} of {len(alts)} figures lack a description (alt text {bad[:3]!r}); " \
                    "set the cell's metadata mystnb.image.alt (CONTRIBUTING.md)"
    pg.set_viewport_size({"width": 1440, "height": 900})
    pg.wait_for_timeout(100)
    wide = pg.eval_on_selector_all(
        "article pre", "els => els.filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)"
                       ".map(e => e.innerText.split('\\n').reduce((a, b) => a.length >= b.length ? a : b))")
    assert not wide, f"{len(wide)} code blocks scroll sideways at 1,440 px; longest lines: {wide[:3]!r}"
    pg.set_viewport_size({"width": 390, "height": 844})
    pg.wait_for_timeout(200)
    overflow = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"at 390 px the page scrolls sideways by {overflow} px"
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}});
  return result.violations.map(v => `${v.id} (${v.impact}, ${v.nodes.length} elements): ${v.help}; e.g. ` +
    v.nodes.slice(0, 2).map(n => n.target.join(' ') + ' - ' + (n.failureSummary || '').replace(/\\s+/g, ' '))
     .join(' | '));
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_accessibility_violations(browser, served, page, theme):
    """axe-core (WCAG 2 A and AA rules: contrast, names, landmarks, alt text...) finds nothing, in the
    theme's light and dark modes, once math has rendered."""
    assert AXE.exists(), f"{AXE} is missing: run npm ci (scripts/test.sh does)"
    visit = Visit(browser, f"{served}/{page}.html")
    pg = visit.page
    if pg.locator("span.math, div.math").count():
        visit.wait_for_math()
    pg.evaluate("mode => { document.documentElement.dataset.theme = mode; "
                "document.documentElement.dataset.mode = mode; }", theme)
    pg.wait_for_timeout(100)
    assert pg.evaluate("() => document.documentElement.dataset.theme") == theme
    pg.add_script_tag(path=str(AXE))
    violations = pg.evaluate(AXE_RUN)
    assert not violations, f"{page} ({theme}): " + "\n".join(violations)
    assert not visit.problems, "\n".join(visit.problems)
    pg.close()


def test_the_accessibility_check_can_fail(browser, served):
    """The same check on a page made worse on purpose (grey text on white, an image without alt text)."""
    visit = Visit(browser, f"{served}/{toc_pages()[0]}.html")
    pg = visit.page
    pg.evaluate("() => { const p = document.querySelector('article p'); p.style.color = '#bbbbbb'; "
                "p.style.background = '#ffffff'; document.querySelector('article').appendChild("
                "Object.assign(document.createElement('img'), {src: '_static/none.png'})); }")
    pg.add_script_tag(path=str(AXE))
    ids = {v.split(" ")[0] for v in pg.evaluate(AXE_RUN)}
    assert {"color-contrast", "image-alt"} <= ids, ids
    pg.close()
