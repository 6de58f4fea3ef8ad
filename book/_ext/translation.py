"""The Chinese edition: what Sphinx's gettext translation leaves out, and a language switch on every page.

The English site is built into `_build/html/`, the Chinese one (Sphinx `language: zh_CN`, catalogs in
`locale/zh_CN/LC_MESSAGES/`, see scripts/i18n.py) into `_build/html/zh/`, page for page.

- Sphinx translates paragraphs and headings, but not a notebook's `#` title (myst-nb makes it the
  document title before the translation runs) nor a figure's alternative text (cell metadata
  `mystnb.image.alt`): this applies the page's catalog to both, after Sphinx's own pass.
- Each page gets a link to the same page in the other language (and `<link rel="alternate">`).
"""
from __future__ import annotations

import html
from os import path

from docutils import nodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

OTHER = {"en": ("zh", "中文", "zh-CN", "切换到中文版"), "zh": ("en", "English", "en", "Switch to the English edition")}
MARKUP = set("`*[]{}$<>_")


def _is_translated(config) -> bool:
    return bool(config.language) and config.language != "en"


class TranslateLeftovers(SphinxTransform):
    """Titles and figure descriptions that Sphinx's Locale transform (priority 20) did not translate."""

    default_priority = 25

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
        for title in self.document.findall(nodes.title):
            text = title.astext()
            translated = catalog.gettext(text)
            if translated != text and not (MARKUP & set(translated)):
                title.children = [nodes.Text(translated)]


def _edition(config) -> str:
    return "zh" if _is_translated(config) else "en"


def _switch(app, pagename, templatename, context, doctree):
    """A link to this page in the other edition: `zh/` below the English site, `..` above the Chinese."""
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


def _write_css(app, exception):
    if exception is None and app.builder.format == "html":
        static = path.join(app.outdir, "_static")
        with open(path.join(static, "language-switch.css"), "w", encoding="utf-8") as f:
            f.write(CSS)


def setup(app):
    app.add_transform(TranslateLeftovers)
    app.connect("html-page-context", _switch, priority=700)
    app.connect("builder-inited", _add_css)
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
