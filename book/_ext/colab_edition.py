"""Point the Colab launch button and the ".ipynb" download at the Colab edition of each chapter.

The chapters' sources (notebooks/) are written in MyST: exercises and solutions as directives that
Colab and plain Jupyter show as raw text. scripts/notebook_editions.py generates colab/, the same
notebooks in plain Markdown with collapsed solutions; this extension makes the site hand those out.
A chapter with a graded assignment (assignments/, scripts/assignment.py) also offers its student
notebook in the download menu, next to the chapter's own.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def _rewrite(buttons: list, old: str, new: str) -> None:
    for button in buttons:
        if isinstance(button, dict):
            url = button.get("url")
            if isinstance(url, str) and "colab.research.google.com" in url and old in url:
                button["url"] = url.replace(old, new)
            _rewrite(button.get("buttons", []), old, new)


def _edition(app) -> str:
    """The folder of this site's language below colab/ and assignments/: "" (English) or "zh/"."""
    language = app.config.language or "en"
    return "" if language == "en" else language.split("_")[0] + "/"


def _launch_colab_edition(app, pagename, templatename, context, doctree):
    if pagename.startswith("notebooks/") and "header_buttons" in context:
        _rewrite(context["header_buttons"], "/notebooks/", f"/colab/{_edition(app)}")


def _offer_assignment(app, pagename, templatename, context, doctree):
    if not pagename.startswith("notebooks/") or "header_buttons" not in context:
        return
    name = pagename.split("/")[-1] + ".ipynb"
    if not (Path(app.srcdir) / "assignments" / _edition(app) / name).exists():
        return
    zh = _edition(app) == "zh/"
    button = {"type": "link", "text": "作业 .ipynb" if zh else "assignment .ipynb", "icon": "fas fa-file-code",
              "tooltip": "下载本章的评分作业（学生版笔记本）" if zh else
                         "Download this chapter's graded assignment (student notebook)",
              "label": "download-assignment-button",
              "url": context["pathto"](f"_downloads/assignments/{name}", 1)}
    for group in context["header_buttons"]:
        buttons = group.get("buttons", []) if isinstance(group, dict) else []
        if any(isinstance(b, dict) and b.get("label") == "download-source-button" for b in buttons):
            buttons.append(button)
            return
    # no download menu (the student edition turns it off): one that offers the assignment only
    context["header_buttons"].append({"type": "group", "tooltip": "Download", "icon": "fas fa-download",
                                      "buttons": [button], "label": "download-buttons"})


def _download_colab_edition(app, exception):
    if exception is not None or app.builder.name != "html":
        return
    assignments = Path(app.srcdir) / "assignments" / _edition(app)
    if assignments.is_dir():
        target = Path(app.outdir) / "_downloads" / "assignments"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in assignments.glob("*.ipynb"):
            shutil.copyfile(notebook, target / notebook.name)
    colab = Path(app.srcdir) / "colab" / _edition(app)
    sources = Path(app.outdir) / "_sources" / "notebooks"
    if not (colab.is_dir() and sources.is_dir()):
        return
    for page in sources.glob("*.ipynb"):
        edition = colab / page.name
        if edition.exists():
            shutil.copyfile(edition, page)


def setup(app):
    app.connect("html-page-context", _launch_colab_edition, priority=600)
    app.connect("html-page-context", _offer_assignment, priority=600)
    app.connect("build-finished", _download_colab_edition)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
