"""The Chinese edition: what Sphinx's gettext translation leaves out, and a language switch on every page.

The English site is built into `_build/html/`, the Chinese one (Sphinx `language: zh_CN`, catalogs in
`locale/zh_CN/LC_MESSAGES/`, see scripts/i18n.py) into `_build/html/zh/`, page for page.

- Sphinx translates paragraphs and headings, but not a notebook's `#` title (myst-nb makes it the
  document title before the translation runs), a figure's alternative text (cell metadata
  `mystnb.image.alt`) nor the captions of the table of contents (sphinx-external-toc adds the
  toctrees after the translation): this applies the page's catalog to them, after Sphinx's own pass.
- Each page gets a link to the same page in the other language (and `<link rel="alternate">`).
- The theme's words that have no Chinese in its catalogs (tooltips, screen-reader labels) are
  replaced in the Chinese pages after the build (`UI`).
"""
from __future__ import annotations

import html
from os import path

from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

OTHER = {"en": ("zh", "中文", "zh-CN", "切换到中文版"), "zh": ("en", "English", "en", "Switch to the English edition")}
MARKUP = set("`*[]{}$<>_")


def _is_translated(config) -> bool:
    return bool(config.language) and config.language != "en"


class TranslateLeftovers(SphinxTransform):
    """Titles, figure descriptions and the table of contents' captions that Sphinx's Locale transform
    (priority 20) did not translate; after sphinx-external-toc inserts the toctrees (priority 100)."""

    default_priority = 105

    def apply(self, **kwargs) -> None:
        if not _is_translated(self.config):
            return
        dirs = [path.join(self.env.srcdir, d) for d in self.config.locale_dirs]
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalog, has_catalog = init_locale(dirs, self.config.language, domain)
        if not has_catalog:
            return
        for image in self.document.findall(nodes.image):
            alt = image.get("alt")
            if alt:
                image["alt"] = catalog.gettext(alt)
        for toctree in self.document.findall(addnodes.toctree):
            if toctree.get("caption"):
                toctree["caption"] = catalog.gettext(toctree["caption"])
        for title in self.document.findall(nodes.title):
            text = title.astext()
            translated = catalog.gettext(text)
            if translated != text and not (MARKUP & set(translated)):
                title.clear()  # (not `children = [...]`: the new node must know its parent)
                title += nodes.Text(translated)


def _edition(config) -> str:
    return "zh" if _is_translated(config) else "en"


def _switch(app, pagename, templatename, context, doctree):
    """A link to this page in the other edition: `zh/` below the English site, `..` above the Chinese."""
    if not app.config.language_switch:
        return
    up = "../" * pagename.count("/")
    if _edition(app.config) == "en":
        href = f"{up}zh/{pagename}.html"
    else:
        href = f"{up}../{pagename}.html"
    _, label, lang, title = OTHER[_edition(app.config)]
    link = (f'<nav class="language-switch" aria-label="{html.escape(title)}">'
            f'<a href="{html.escape(href)}" hreflang="{lang}" lang="{lang}" title="{html.escape(title)}">'
            f'{html.escape(label)}</a></nav>\n')
    if "body" in context:
        context["body"] = link + context["body"]
    context["metatags"] = context.get("metatags", "") + \
        f'\n<link rel="alternate" hreflang="{lang}" href="{html.escape(href)}" />'


CSS = """
.language-switch { text-align: right; margin: 0 0 0.5rem 0; font-size: 0.9rem; }
.language-switch a { padding: 0.15rem 0.6rem; border: 1px solid var(--pst-color-border); border-radius: 0.25rem; }
"""


def _add_css(app):
    static = path.join(app.outdir, "_static")
    app.add_css_file("language-switch.css")
    return static


# The theme's own words that its Chinese catalogs lack or that its templates hard-code in English
# (tooltips, labels for screen readers, the search box): replaced in the Chinese site's pages.
UI = {
    "Toggle primary sidebar": "显示或隐藏目录侧边栏", "Toggle secondary sidebar": "显示或隐藏本页目录",
    "System Settings": "跟随系统设置", "Color mode": "颜色模式", "Search this book...": "搜索本书……",
    "Launch interactive content": "启动交互式环境", "Source repositories": "源码库", "Repository": "源码库",
    "Source repository": "源码库", "Open issue": "提交问题", "Link to this heading": "链接到本标题",
    "Launch on Binder": "在 Binder 中打开", "Launch on Colab": "在 Colab 中打开", "Main": "主导航",
    "Page": "本页", "Binder logo": "Binder 标志", "Colab logo": "Colab 标志", "Skip to main content": "跳到正文",
    "Back to top": "回到顶部", "Section Navigation": "本节导航", "Site navigation": "网站导航",
    "Download this page": "下载本页", "Fullscreen mode": "全屏模式", "Contents": "目录",
}


def _localise_ui(outdir: str) -> None:
    import os
    import re

    words = "|".join(re.escape(w) for w in sorted(UI, key=len, reverse=True))
    attribute = re.compile(rf'((?:title|aria-label|placeholder|data-bs-title|alt)=")({words})(")')
    text = re.compile(rf"(>\s*)({words})(\s*<)")
    for folder, _, files in os.walk(outdir):
        for name in files:
            if name.endswith(".html"):
                page = path.join(folder, name)
                with open(page, encoding="utf-8") as f:
                    before = f.read()
                after = text.sub(lambda m: m.group(1) + UI[m.group(2)] + m.group(3),
                                 attribute.sub(lambda m: m.group(1) + UI[m.group(2)] + m.group(3), before))
                if after != before:
                    with open(page, "w", encoding="utf-8") as f:
                        f.write(after)


def _write_css(app, exception):
    if exception is None and app.builder.format == "html":
        static = path.join(app.outdir, "_static")
        with open(path.join(static, "language-switch.css"), "w", encoding="utf-8") as f:
            f.write(CSS)
        if _is_translated(app.config):
            _localise_ui(app.outdir)


def setup(app):
    # False for a site built without its other edition (the student edition, English only)
    app.add_config_value("language_switch", True, "html")
    app.add_transform(TranslateLeftovers)
    app.connect("html-page-context", _switch, priority=700)
    app.connect("builder-inited", _add_css)
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
